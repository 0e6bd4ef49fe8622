-- Feed health and coverage, from the fetch log and the per-feed state the merge keeps beside it.

-- One row per feed: last attempt and success, the validators for the next conditional GET,
-- consecutive failures since the last success (or since re-enabling), and when it is next due.
-- The numbers are the feed's state kept by the merge (sql/013), equal to what
-- feed_state_from_log() derives from the fetch log; a feed never fetched has NULL fetches.
CREATE OR REPLACE VIEW v_feed_health AS
SELECT s.source_id, s.name, s.url, s.role, s.tags, s.enabled, s.disabled_reason,
       s.poll_minutes,
       st.fetches, st.last_attempt_utc, st.last_status, st.last_error, st.last_success_utc,
       coalesce(st.consecutive_failures, 0) AS consecutive_failures,
       st.etag, st.last_modified, st.body_sha256, st.retry_after_utc
FROM sources s
LEFT JOIN feed_state st USING (source_id)
WHERE s.kind = 'feed';

-- Polls per feed per UTC hour: an hour with no successful poll is a gap in collection, not a
-- quiet hour. items_new counts items first seen in that hour.
CREATE OR REPLACE VIEW v_feed_coverage_hourly AS
SELECT s.name AS feed, s.role, time_bucket(INTERVAL 1 HOUR, f.started_utc) AS hour_utc,
       count(*) FILTER (WHERE f.status IN ('ok', 'not_modified', 'unchanged')) AS polls_ok,
       count(*) FILTER (WHERE f.status IN ('failed', 'not_a_feed')) AS polls_failed,
       coalesce(sum(f.items_new), 0) AS items_new
FROM fetches f JOIN sources s USING (source_id)
GROUP BY ALL;

-- Every hour of a window for every feed, with zeros where nothing was polled: gaps made visible.
CREATE OR REPLACE MACRO feed_coverage(start_utc, end_utc) AS TABLE
SELECT s.name AS feed, h.hour_utc,
       coalesce(c.polls_ok, 0) AS polls_ok, coalesce(c.polls_failed, 0) AS polls_failed,
       coalesce(c.items_new, 0) AS items_new,
       coalesce(c.polls_ok, 0) = 0 AS gap
FROM sources s
CROSS JOIN (SELECT unnest(generate_series(time_bucket(INTERVAL 1 HOUR, CAST(start_utc AS TIMESTAMPTZ)),
                                          CAST(end_utc AS TIMESTAMPTZ), INTERVAL 1 HOUR)) AS hour_utc) h
LEFT JOIN (
    -- The window's fetch rows only, before grouping: fetches are written in time order, so the
    -- filter on started_utc skips the rest of the log by zone maps (a year is 35M rows).
    SELECT f.source_id, time_bucket(INTERVAL 1 HOUR, f.started_utc) AS hour_utc,
           count(*) FILTER (WHERE f.status IN ('ok', 'not_modified', 'unchanged')) AS polls_ok,
           count(*) FILTER (WHERE f.status IN ('failed', 'not_a_feed')) AS polls_failed,
           coalesce(sum(f.items_new), 0) AS items_new
    FROM fetches f
    WHERE f.started_utc >= time_bucket(INTERVAL 1 HOUR, CAST(start_utc AS TIMESTAMPTZ))
      AND f.started_utc < CAST(end_utc AS TIMESTAMPTZ) + INTERVAL 1 HOUR
    GROUP BY ALL
) c ON c.source_id = s.source_id AND c.hour_utc = h.hour_utc
WHERE s.kind = 'feed'
ORDER BY feed, h.hour_utc;

-- Items with when each was first and last seen in a feed (the summary the merge keeps on the
-- item, sql/012; item_sightings has every sighting).
CREATE OR REPLACE VIEW v_item_sightings AS
SELECT i.item_id, s.name AS source, i.title, i.published_utc, i.time_flags,
       i.first_sighted_utc AS first_seen_utc, i.last_sighted_utc AS last_seen_utc, i.sightings
FROM items i JOIN sources s USING (source_id)
WHERE i.sightings > 0;
