-- Analyst views over the core tables. Re-created on every migrate; safe to query any time.

-- Items with their source's name and role, and the one definition of a usable time that every
-- analysis, chart and release event reads:
--   time_usable:  a parsed time with a stated (or named) zone, not in the future;
--   minute_usable: that, and precise to the minute (a date alone cannot place an item in a window).
CREATE OR REPLACE VIEW v_items AS
SELECT i.item_id, s.name AS source, s.role, i.published_utc, i.published_raw,
       i.time_precision_s, i.time_zone_explicit, i.time_flags, i.title, i.author, i.url,
       i.url_normalized, i.guid, i.first_seen_lo_utc, i.first_seen_utc, i.provenance, i.dedup_key, i.source_id,
       -- A claimed time later than the item's first sighting (an archive capture that already
       -- held it) is flagged 'after_first_seen' and not trusted, like a time in the future.
       coalesce(i.published_utc IS NOT NULL AND i.time_zone_explicit
                AND NOT list_has_any(coalesce(i.time_flags, []), ['future', 'after_first_seen']), false) AS time_usable,
       coalesce(i.published_utc IS NOT NULL AND i.time_zone_explicit
                AND NOT list_has_any(coalesce(i.time_flags, []), ['future', 'after_first_seen'])
                AND coalesce(i.time_precision_s, 1) <= 60, false) AS minute_usable
FROM items i JOIN sources s USING (source_id);

-- Events with the width of their time interval; day_only events are never a point in time.
CREATE OR REPLACE VIEW v_events AS
SELECT event_id, kind, actor, title, ts_utc, earliest_utc, latest_utc,
       epoch(latest_utc - earliest_utc) / 60 AS uncertainty_minutes,
       epoch(latest_utc - earliest_utc) >= 86400 - 1 AS day_only,
       ts_raw, precision_minutes, confidence, source_url, source_quote, notes, catalog, catalog_line
FROM events;

-- For every leak release, the other events whose intervals come within ±window_minutes of it,
-- with the signed gap (other minus release) at the best estimates and its bounds, and who came
-- first in the words the terminal and reports use.
CREATE OR REPLACE MACRO release_neighbours(window_minutes := 120) AS TABLE
SELECT r.event_id AS release_id, r.title AS release_title, r.ts_utc AS release_utc,
       a.event_id, a.kind, a.title, a.ts_utc,
       round(epoch(a.ts_utc - r.ts_utc) / 60, 1) AS gap_minutes,
       round(epoch(a.earliest_utc - r.latest_utc) / 60, 1) AS gap_min_minutes,
       round(epoch(a.latest_utc - r.earliest_utc) / 60, 1) AS gap_max_minutes,
       CASE WHEN a.latest_utc < r.earliest_utc THEN 'announcement first'
            WHEN a.earliest_utc > r.latest_utc THEN 'release first'
            ELSE 'order unknown (intervals overlap)' END AS came_first
FROM events r JOIN events a
  ON a.event_id <> r.event_id
 AND a.earliest_utc <= r.latest_utc + to_minutes(CAST(window_minutes AS BIGINT))
 AND a.latest_utc >= r.earliest_utc - to_minutes(CAST(window_minutes AS BIGINT))
WHERE r.kind = 'leak_release'
ORDER BY r.ts_utc, a.ts_utc;

-- Items of every source per UTC hour: a gap in collection must not be read as a quiet hour.
CREATE OR REPLACE VIEW v_items_hourly AS
SELECT s.name AS source, s.role, time_bucket(INTERVAL 1 HOUR, i.published_utc) AS hour_utc,
       count(*) AS items
FROM items i JOIN sources s USING (source_id)
WHERE i.published_utc IS NOT NULL
GROUP BY ALL;

-- Every import, newest first, with what it brought and what it rejected.
CREATE OR REPLACE VIEW v_imports AS
SELECT m.import_id, m.kind, coalesce(s.name, m.source_name) AS source, m.file_name, m.started_utc, m.rows_read,
       m.rows_new, m.rows_updated, m.rows_rejected, m.errors, m.file_sha256
FROM imports m LEFT JOIN sources s USING (source_id)
ORDER BY m.import_id DESC;

-- Results of the newest run of each claim.
CREATE OR REPLACE VIEW v_latest_results AS
SELECT r.*, a.claim_id, a.created_utc, a.null_model, a.window_minutes, a.surrogates, a.seed
FROM results r JOIN analysis_runs a USING (run_id)
WHERE a.created_utc = (SELECT max(created_utc) FROM analysis_runs b WHERE b.claim_id = a.claim_id);

-- Weekly digests sent by email: the email rows of the delivery ledger, one per week and
-- recipient list.
CREATE OR REPLACE VIEW digests AS
SELECT item AS week, recipients, message_id, subject, run_ids, status, attempts, last_error,
       created_utc, updated_utc, sent_utc
FROM deliveries WHERE channel = 'email';

-- Story onsets of each claim's newest run that measured them, earliest first per stream.
CREATE OR REPLACE VIEW v_story_onsets AS
SELECT a.claim_id, o.*, a.created_utc AS run_created_utc
FROM story_onsets o JOIN analysis_runs a USING (run_id)
WHERE a.created_utc = (SELECT max(b.created_utc) FROM analysis_runs b JOIN story_onsets ob USING (run_id)
                       WHERE b.claim_id = a.claim_id)
ORDER BY a.claim_id, o.source, o.onset_lo_utc NULLS LAST, o.story;
