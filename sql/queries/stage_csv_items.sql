-- A scanned CSV file (temp table mt_csv: the header's columns as text, and _line) with its
-- parsed times (mt_times), as items of one source: keys, times, flags and why a row is refused.
-- The Python caller fills in the column names ({time}, {text}, ...) as quoted identifiers, or
-- NULL where the import names no such column.
-- Keys: the id column; else the normalised link; else a hash of the raw time, the author (when
-- there is one) and the text, so identical posts by different authors in the same minute stay
-- two items.
CREATE OR REPLACE TEMP TABLE mt_items AS
SELECT c._line,
       CASE WHEN {id} IS NOT NULL THEN 'id:' || trim({id})
            WHEN u.normalized IS NOT NULL THEN 'url:' || u.normalized
            ELSE 'title:' || sha1(CASE WHEN nullif(trim({author}), '') IS NULL THEN {time} || chr(31) || {text}
                                       ELSE {time} || chr(31) || trim({author}) || chr(31) || {text} END)
       END AS dedup_key,
       nullif(trim({id}), '') AS guid,
       nullif(trim({url}), '') AS url,
       u.normalized AS url_normalized,
       {text} AS title,
       nullif(trim({author}), '') AS author,
       {time} AS published_raw,
       t.utc AS published_utc,
       t.precision_s AS time_precision_s,
       t.zone_stated OR $zone IS NOT NULL AS time_zone_explicit,
       CASE WHEN NOT t.zone_stated AND $zone IS NOT NULL THEN ['zone_named'] ELSE [] END
         || CASE WHEN t.utc > CAST($started AS TIMESTAMPTZ) + INTERVAL 10 MINUTE THEN ['future'] ELSE [] END
         AS time_flags,
       CASE WHEN {id} IS NOT NULL AND trim({id}) = '' THEN 'empty_id' ELSE t.problem END AS problem
FROM mt_csv c
JOIN mt_times t ON t.i = c._line
LEFT JOIN mt_urls u ON u.url = nullif(trim({url}), '');
