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
