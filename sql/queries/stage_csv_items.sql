-- A scanned CSV file (relation mt_csv: the header's columns as text, and _line) as items of one
-- source, in one pass: parsed times (mt_parse_time, as for every source), keys, flags, and why
-- a row is refused.
-- The Python caller fills in the column names ({time}, {text}, ...) as quoted identifiers, or
-- NULL where the import names no such column.
-- Keys: the id column; else the normalised link; else a hash of the raw time, the author (when
-- there is one) and the text, so identical posts by different authors in the same minute stay
-- two items.
CREATE OR REPLACE TEMP TABLE mt_items AS
WITH c AS (
    SELECT _line, {time} AS raw_time, {text} AS text, nullif(trim({id}), '') AS id, {id} IS NOT NULL AS has_id,
           nullif(trim({url}), '') AS url, nullif(trim({author}), '') AS author,
           mt_parse_time({time}, $zone, $dst) AS p
    FROM mt_csv
)
SELECT c._line,
       CASE WHEN c.has_id THEN 'id:' || c.id
            WHEN u.normalized IS NOT NULL THEN 'url:' || u.normalized
            WHEN c.author IS NULL THEN 'title:' || sha1(c.raw_time || chr(31) || c.text)
            ELSE 'title:' || sha1(c.raw_time || chr(31) || c.author || chr(31) || c.text)
       END AS dedup_key,
       c.id AS guid, c.url, u.normalized AS url_normalized, c.text AS title, c.author,
       c.raw_time AS published_raw, c.p.utc AS published_utc, c.p.precision_s AS time_precision_s,
       c.p.zone_stated OR $zone IS NOT NULL AS time_zone_explicit,
       CASE WHEN NOT c.p.zone_stated AND $zone IS NOT NULL
                 AND c.p.utc > CAST($started AS TIMESTAMPTZ) + INTERVAL 10 MINUTE THEN ['zone_named', 'future']
            WHEN NOT c.p.zone_stated AND $zone IS NOT NULL THEN ['zone_named']
            WHEN c.p.utc > CAST($started AS TIMESTAMPTZ) + INTERVAL 10 MINUTE THEN ['future']
            ELSE []::VARCHAR[] END AS time_flags,
       CASE WHEN c.has_id AND c.id IS NULL THEN 'empty_id' ELSE c.p.problem END AS problem
FROM c LEFT JOIN mt_urls u ON u.url = c.url;
