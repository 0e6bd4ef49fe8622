-- Bring feed_state up to date with one merged batch's fetch rows (relation mt_state_batch: the
-- rows of `fetches` this batch added), reading neither the rest of the log nor other feeds.
-- A feed whose batch holds no fetch newer than its state's last attempt cannot be advanced this
-- way (a batch merged out of time order): the caller derives its state from the log instead
-- (feed_state_from_log), and this statement leaves it out.
-- arg_max skips NULLs, so last_error and retry_after_utc are the newest ones recorded (a feed
-- that recovered keeps its last error beside last_status = 'ok'), as feed_state_from_log has them.
INSERT OR REPLACE INTO feed_state
WITH b AS (
    SELECT source_id, count(*) AS n, min(started_utc) AS first_utc, max(started_utc) AS last_attempt_utc,
           arg_max(status, started_utc) AS last_status,
           arg_max(error, started_utc) AS last_error,
           arg_max(retry_after_utc, started_utc) AS retry_after_utc,
           max(started_utc) FILTER (WHERE status IN ('ok', 'not_modified', 'unchanged')) AS last_success_utc,
           arg_max(etag, started_utc) FILTER (WHERE status IN ('ok', 'not_modified', 'unchanged')
                                              AND etag IS NOT NULL) AS etag,
           arg_max(last_modified, started_utc) FILTER (WHERE status IN ('ok', 'not_modified', 'unchanged')
                                                       AND last_modified IS NOT NULL) AS last_modified,
           arg_max(body_sha256, started_utc) FILTER (WHERE status IN ('ok', 'not_modified', 'unchanged')
                                                     AND body_sha256 IS NOT NULL) AS body_sha256
    FROM mt_state_batch GROUP BY source_id
), fails AS (
    -- the batch's failures that count: after its own last success and after re-enabling
    SELECT f.source_id, count(*) AS k
    FROM mt_state_batch f JOIN b USING (source_id) JOIN sources s USING (source_id)
    WHERE f.status IN ('failed', 'not_a_feed')
      AND f.started_utc > coalesce(b.last_success_utc, '-infinity'::TIMESTAMPTZ)
      AND f.started_utc > coalesce(s.enabled_since_utc, '-infinity'::TIMESTAMPTZ)
    GROUP BY f.source_id
)
SELECT b.source_id, coalesce(st.fetches, 0) + b.n, b.last_attempt_utc, b.last_status,
       coalesce(b.last_error, st.last_error), coalesce(b.retry_after_utc, st.retry_after_utc),
       coalesce(b.last_success_utc, st.last_success_utc),
       (CASE WHEN b.last_success_utc IS NULL THEN coalesce(st.consecutive_failures, 0) ELSE 0 END
        + coalesce(fails.k, 0))::INTEGER,
       coalesce(b.etag, st.etag), coalesce(b.last_modified, st.last_modified),
       coalesce(b.body_sha256, st.body_sha256)
FROM b
LEFT JOIN feed_state st USING (source_id)
LEFT JOIN fails USING (source_id)
WHERE st.source_id IS NULL OR b.first_utc > st.last_attempt_utc;
