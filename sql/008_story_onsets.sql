-- 008 story onsets: when each story of a claim broke in each stream, stored with the run that
-- measured them (media-timing analyze / the analyze_timing DAG; media-timing onsets prints them).
-- One row per (run, story, stream); the stream 'all streams' is every stream of the run together.
-- Times are UTC; an onset is the interval [onset_lo_utc, onset_hi_utc) of its first item.
CREATE TABLE story_onsets (
    run_id           VARCHAR NOT NULL,
    story            VARCHAR NOT NULL,
    source           VARCHAR NOT NULL,
    onset_lo_utc     TIMESTAMPTZ,        -- NULL: the rule matched nothing in this stream
    onset_hi_utc     TIMESTAMPTZ,
    first_title      VARCHAR,
    first_author     VARCHAR,            -- the outlet or account (author, else the source)
    first_url        VARCHAR,
    outlet2_utc      TIMESTAMPTZ,        -- when a 2nd distinct outlet first had the story
    outlet3_utc      TIMESTAMPTZ,
    burst_start_utc  TIMESTAMPTZ,        -- Kleinberg burst start (NULL: no burst)
    n_items          INTEGER NOT NULL,   -- near-duplicate copies counted once per outlet
    n_outlets        INTEGER NOT NULL,
    anchor_event     VARCHAR,            -- the sourced event the story belongs to
    lag_minutes      DOUBLE,             -- onset minus the end of the anchor's interval
    rules_sha256     VARCHAR NOT NULL,   -- the story rules file the run used
    PRIMARY KEY (run_id, story, source)
);
