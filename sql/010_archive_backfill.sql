-- 010 archive backfill. An item first seen in an archive capture was added to the source some
-- time in (first_seen_lo_utc, first_seen_utc]: between the last good capture without it and the
-- first with it. NULL lower bound: unknown (a live poll's first sighting, an import, or the
-- first capture of a range).
ALTER TABLE items ADD COLUMN first_seen_lo_utc TIMESTAMPTZ;

-- The Internet Archive captures a backfill has dealt with: a rerun or a resumed run skips them.
-- outcome: ok (parsed as a feed or a front page), failed (not a feed, an error page, a 4xx/5xx
-- capture), redirect (a historical redirect, recorded, not followed), quarantined (a CDX row
-- with an impossible timestamp).
CREATE TABLE wayback_captures (
    url            VARCHAR NOT NULL,    -- the URL the user asked for
    capture_ts     VARCHAR NOT NULL,    -- the CDX timestamp, 14 digits, UTC
    original       VARCHAR,
    capture_utc    TIMESTAMPTZ,
    status         VARCHAR,             -- the CDX status code ('-' for a revisit)
    mimetype       VARCHAR,
    digest         VARCHAR,
    outcome        VARCHAR NOT NULL,
    items          INTEGER NOT NULL DEFAULT 0,   -- items in the capture
    items_new      INTEGER NOT NULL DEFAULT 0,   -- of which first seen here
    reason         VARCHAR,
    source_id      INTEGER NOT NULL,    -- the source the captures were loaded into
    done_utc       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source_id, url, capture_ts)
);

-- The GDELT 2.0 raw files a backfill has dealt with, one row per source, 15-minute batch and
-- table. status: ok, missing (no such file: a gap in GDELT's collection, never zero coverage),
-- failed (truncated, wrong size or MD5, not one zip entry, HTTP error). A rerun skips ok rows.
CREATE TABLE gdelt_files (
    source_id      INTEGER NOT NULL,
    label          VARCHAR NOT NULL,   -- YYYYMMDDHHMMSS: the batch ends here (items first seen in (label - 15 min, label])
    tbl            VARCHAR NOT NULL,   -- mentions or gkg
    url            VARCHAR NOT NULL,
    status         VARCHAR NOT NULL,
    reason         VARCHAR,
    rows_read      INTEGER NOT NULL,
    rows_kept      INTEGER NOT NULL,   -- after the domain and keyword filters
    items_new      INTEGER NOT NULL,
    rows_rejected  INTEGER NOT NULL,   -- wrong number of fields
    rejections     VARCHAR,            -- the first 50, as file:line: reason
    done_utc       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source_id, label, tbl)
);
