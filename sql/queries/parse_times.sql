-- Parse the time strings of relation time_input(i, raw), as every source's times are parsed
-- (the macro mt_parse_time, sql/views/030_time_macros.sql).
-- $zone: the zone a zoneless string is read in (NULL: such strings are errors, never UTC).
-- $dst: for a zoneless local time that does not exist (clocks skip it) or happens twice
--       (clocks go back): 'reject', 'earlier' or 'later' (the earlier or later candidate instant).
SELECT i, p.utc, p.zone_stated, p.precision_s, p.problem
FROM (SELECT i, mt_parse_time(raw, $zone, $dst) AS p FROM time_input)
