-- Reading a source's time string, the one way every source does it (feeds, CSV imports,
-- archives): sql/queries/parse_times.sql uses these. A zone is "stated" by Z, a numeric offset
-- after a time, or an RFC 822 zone name; other strings are zoneless and are never read as UTC
-- unless the caller names their zone.
CREATE OR REPLACE MACRO mt_zone_stated(s) AS
    regexp_matches(s, '(?:\dZ\b|\dz\b|\d\s*[+-]\d{2}:?\d{2}\b|\b(?:UTC|GMT|UT|[ECMP][SD]T|Z)\b)');

-- Seconds the string resolves: 1 (it gives seconds), 60 (minutes), 86400 (a date alone).
CREATE OR REPLACE MACRO mt_precision_s(s) AS
    CASE WHEN regexp_matches(s, '\d{1,2}:\d{2}:\d{2}') THEN 1
         WHEN regexp_matches(s, '\d{1,2}:\d{2}') THEN 60 ELSE 86400 END;

-- A numeric offset ending the string, in minutes east of UTC (NULL if none): beyond ±14:00 no
-- zone on Earth has it, and the time is refused rather than shifted by days.
CREATE OR REPLACE MACRO mt_offset_minutes(s) AS
    CASE WHEN regexp_matches(s, '\d(?:\.\d+)?\s*[+-]\d{2}:?\d{2}$') THEN
        (CASE WHEN regexp_extract(s, '([+-])\d{2}:?\d{2}$', 1) = '-' THEN -1 ELSE 1 END)
        * (CAST(regexp_extract(s, '[+-](\d{2}):?\d{2}$', 1) AS INTEGER) * 60
           + CAST(regexp_extract(s, '[+-]\d{2}:?(\d{2})$', 1) AS INTEGER)) END;

-- RFC 822 zone names as numeric offsets, for strptime.
CREATE OR REPLACE MACRO mt_rfc822_numeric(s) AS
    CASE WHEN regexp_matches(s, '\s(?:UT|UTC|GMT|Z|EST|EDT|CST|CDT|MST|MDT|PST|PDT)$') THEN
        regexp_replace(s, '\s(?:UT|UTC|GMT|Z|EST|EDT|CST|CDT|MST|MDT|PST|PDT)$', ' ' ||
            CASE regexp_extract(s, '\s(UT|UTC|GMT|Z|EST|EDT|CST|CDT|MST|MDT|PST|PDT)$', 1)
                WHEN 'EST' THEN '-0500' WHEN 'EDT' THEN '-0400' WHEN 'CST' THEN '-0600'
                WHEN 'CDT' THEN '-0500' WHEN 'MST' THEN '-0700' WHEN 'MDT' THEN '-0600'
                WHEN 'PST' THEN '-0800' WHEN 'PDT' THEN '-0700' ELSE '+0000' END)
         ELSE s END;

-- A string with a stated zone as an instant: ISO 8601, then the RFC 2822 forms RSS uses.
CREATE OR REPLACE MACRO mt_parse_zoned(s) AS coalesce(
    CASE WHEN regexp_matches(s, '^\d{4}-\d{2}-\d{2}') THEN TRY_CAST(s AS TIMESTAMPTZ) END,
    try_strptime(mt_rfc822_numeric(s), '%a, %d %b %Y %H:%M:%S %z'),
    try_strptime(mt_rfc822_numeric(s), '%d %b %Y %H:%M:%S %z'),
    try_strptime(mt_rfc822_numeric(s), '%a, %d %b %Y %H:%M %z'));

-- A zoneless local time in a named zone: the instant(s) it can mean. A time the clocks skip
-- has none (both readings shown as earlier/later), one they repeat has two.
CREATE OR REPLACE MACRO mt_local_kind(local, zone) AS
    CASE WHEN local IS NULL OR zone IS NULL THEN NULL
         WHEN timezone(zone, timezone(zone, local)) <> local THEN 'nonexistent'
         WHEN timezone(zone, timezone(zone, local) - INTERVAL 1 HOUR) = local
           OR timezone(zone, timezone(zone, local) + INTERVAL 1 HOUR) = local THEN 'ambiguous' END;

CREATE OR REPLACE MACRO mt_local_instant(local, zone, dst) AS
    CASE mt_local_kind(local, zone)
        WHEN 'nonexistent' THEN CASE dst WHEN 'earlier' THEN timezone(zone, local) - INTERVAL 1 HOUR
                                         WHEN 'later' THEN timezone(zone, local) END
        WHEN 'ambiguous' THEN CASE
            WHEN dst = 'earlier' AND timezone(zone, timezone(zone, local) - INTERVAL 1 HOUR) = local
                THEN timezone(zone, local) - INTERVAL 1 HOUR
            WHEN dst = 'earlier' THEN timezone(zone, local)
            WHEN dst = 'later' AND timezone(zone, timezone(zone, local) - INTERVAL 1 HOUR) = local
                THEN timezone(zone, local)
            WHEN dst = 'later' THEN timezone(zone, local) + INTERVAL 1 HOUR END
        ELSE timezone(zone, local) END;

-- The general reading of one string: {utc, zone_stated, precision_s, problem}. problem is NULL
-- (read), 'missing', 'no_zone', 'offset' (beyond ±14:00), 'nonexistent', 'ambiguous', or
-- 'unread' (the caller tries harder, row by row).
CREATE OR REPLACE MACRO mt_parse_general(s, zone, dst) AS CASE
    WHEN s IS NULL THEN {'utc': NULL::TIMESTAMPTZ, 'zone_stated': FALSE, 'precision_s': NULL::INTEGER, 'problem': 'missing'}
    WHEN mt_zone_stated(s) AND abs(coalesce(mt_offset_minutes(s), 0)) > 840 THEN
        {'utc': NULL::TIMESTAMPTZ, 'zone_stated': TRUE, 'precision_s': mt_precision_s(s), 'problem': 'offset'}
    WHEN mt_zone_stated(s) THEN
        {'utc': mt_parse_zoned(s), 'zone_stated': TRUE, 'precision_s': mt_precision_s(s),
         'problem': CASE WHEN mt_parse_zoned(s) IS NULL THEN 'unread' END}
    WHEN TRY_CAST(s AS TIMESTAMP) IS NULL THEN
        {'utc': NULL::TIMESTAMPTZ, 'zone_stated': FALSE, 'precision_s': mt_precision_s(s), 'problem': 'unread'}
    WHEN zone IS NULL THEN
        {'utc': NULL::TIMESTAMPTZ, 'zone_stated': FALSE, 'precision_s': mt_precision_s(s), 'problem': 'no_zone'}
    ELSE {'utc': mt_local_instant(TRY_CAST(s AS TIMESTAMP), zone, dst), 'zone_stated': FALSE,
          'precision_s': mt_precision_s(s),
          'problem': CASE WHEN dst NOT IN ('earlier', 'later') THEN mt_local_kind(TRY_CAST(s AS TIMESTAMP), zone) END}
    END;

-- Every source's time strings are read here. The common forms are recognised cheaply: ISO
-- 8601 to the second in UTC (2016-10-07T20:32:00Z) and RSS's RFC 822 dates to the second in GMT
-- or with a numeric offset (Fri, 07 Oct 2016 20:32:00 GMT / -0400; the general reading takes
-- about ten times as long for these); everything else takes the general reading. The tests
-- check that each form reads the same either way.
CREATE OR REPLACE MACRO mt_parse_time(raw, zone, dst) AS CASE
    WHEN length(trim(raw)) = 20 AND substr(trim(raw), 20, 1) = 'Z' AND substr(trim(raw), 11, 1) IN ('T', ' ')
         AND TRY_CAST(trim(raw) AS TIMESTAMPTZ) IS NOT NULL THEN
        {'utc': TRY_CAST(trim(raw) AS TIMESTAMPTZ), 'zone_stated': TRUE, 'precision_s': 1, 'problem': NULL::VARCHAR}
    WHEN length(trim(raw)) = 29 AND suffix(trim(raw), ' GMT') AND substr(trim(raw), 4, 2) = ', '
         AND try_strptime(trim(raw), '%a, %d %b %Y %H:%M:%S GMT') IS NOT NULL THEN
        {'utc': timezone('UTC', try_strptime(trim(raw), '%a, %d %b %Y %H:%M:%S GMT')), 'zone_stated': TRUE,
         'precision_s': 1, 'problem': NULL::VARCHAR}
    WHEN length(trim(raw)) = 31 AND substr(trim(raw), 4, 2) = ', ' AND substr(trim(raw), 26, 2) IN (' +', ' -')
         AND TRY_CAST(substr(trim(raw), 28, 2) AS INTEGER) * 60 + TRY_CAST(substr(trim(raw), 30, 2) AS INTEGER) <= 840
         AND try_strptime(trim(raw), '%a, %d %b %Y %H:%M:%S %z') IS NOT NULL THEN
        {'utc': try_strptime(trim(raw), '%a, %d %b %Y %H:%M:%S %z'), 'zone_stated': TRUE, 'precision_s': 1,
         'problem': NULL::VARCHAR}
    ELSE mt_parse_general(nullif(trim(raw), ''), zone, dst) END;
