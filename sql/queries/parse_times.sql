-- Parse the time strings of relation time_input(i, raw): every source's times go through here.
-- $zone: the zone a zoneless string is read in (NULL: such strings are errors, never UTC).
-- $dst: for a zoneless local time that does not exist (clocks skip it) or happens twice
--       (clocks go back): 'reject', 'earlier' or 'later' (the earlier or later candidate instant).
-- Output: utc, zone_stated, precision_s, and problem: NULL (parsed), 'missing', 'no_zone',
-- 'offset' (beyond ±14:00), 'nonexistent', 'ambiguous', or 'unread' (the caller tries harder).
WITH t AS (
    SELECT i, nullif(trim(raw), '') AS s FROM time_input
), f AS (
    SELECT i, s, mt_zone_stated(s) AS zone_stated, mt_precision_s(s) AS precision_s,
           mt_offset_minutes(s) AS offset_minutes
    FROM t
), z AS (
    SELECT *,
           CASE WHEN zone_stated AND coalesce(abs(offset_minutes) <= 840, TRUE) THEN mt_parse_zoned(s) END AS zoned,
           CASE WHEN NOT zone_stated THEN TRY_CAST(s AS TIMESTAMP) END AS naive
    FROM f
), n AS (
    SELECT *, CASE WHEN $zone IS NOT NULL THEN naive END AS local FROM z
), l AS (
    SELECT *, timezone($zone, local) AS a FROM n
), c AS (
    SELECT *,
           local IS NOT NULL AND timezone($zone, a) <> local AS nonexistent,
           local IS NOT NULL AND timezone($zone, a) = local
             AND (timezone($zone, a - INTERVAL 1 HOUR) = local OR timezone($zone, a + INTERVAL 1 HOUR) = local) AS ambiguous,
           local IS NOT NULL AND timezone($zone, a - INTERVAL 1 HOUR) = local AS b_ok
    FROM l
)
SELECT i,
       CASE WHEN s IS NULL THEN NULL
            WHEN zone_stated THEN zoned
            WHEN nonexistent THEN CASE $dst WHEN 'earlier' THEN a - INTERVAL 1 HOUR WHEN 'later' THEN a END
            WHEN ambiguous THEN CASE $dst WHEN 'earlier' THEN CASE WHEN b_ok THEN a - INTERVAL 1 HOUR ELSE a END
                                          WHEN 'later' THEN CASE WHEN b_ok THEN a ELSE a + INTERVAL 1 HOUR END END
            ELSE a END AS utc,
       coalesce(zone_stated, FALSE) AS zone_stated,
       precision_s,
       CASE WHEN s IS NULL THEN 'missing'
            WHEN zone_stated AND abs(offset_minutes) > 840 THEN 'offset'
            WHEN zone_stated AND zoned IS NULL THEN 'unread'
            WHEN zone_stated THEN NULL
            WHEN $zone IS NULL AND naive IS NOT NULL THEN 'no_zone'
            WHEN $zone IS NULL THEN 'unread'
            WHEN local IS NULL THEN 'unread'
            WHEN nonexistent AND $dst NOT IN ('earlier', 'later') THEN 'nonexistent'
            WHEN ambiguous AND $dst NOT IN ('earlier', 'later') THEN 'ambiguous'
       END AS problem
FROM c
