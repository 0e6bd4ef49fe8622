-- 001 core: where data comes from (sources, fetches, imports), what it says (items, events),
-- and what we concluded from it (analysis_runs, results). All instants are TIMESTAMPTZ in UTC;
-- every parsed time keeps the source's own string beside it.

CREATE SEQUENCE source_id_seq START 1;
CREATE TABLE sources (
    source_id    INTEGER PRIMARY KEY DEFAULT nextval('source_id_seq'),
    name         VARCHAR NOT NULL UNIQUE,
    -- news: outlets whose attention we measure; release: leak/release channels;
    -- announcement: competing announcements (officials, campaigns, their streams).
    role         VARCHAR NOT NULL CHECK (role IN ('news', 'release', 'announcement')),
    -- feed: polled over HTTP; archive: a historical stream imported from a file;
    -- catalog: a hand-sourced timeline of events.
    kind         VARCHAR NOT NULL CHECK (kind IN ('feed', 'archive', 'catalog')),
    url          VARCHAR,
    tags         VARCHAR[] NOT NULL DEFAULT [],
    attribution  VARCHAR,
    enabled      BOOLEAN NOT NULL DEFAULT TRUE,
    created_utc  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per HTTP poll of a feed, whatever happened.
CREATE SEQUENCE fetch_id_seq START 1;
CREATE TABLE fetches (
    fetch_id         BIGINT PRIMARY KEY DEFAULT nextval('fetch_id_seq'),
    source_id        INTEGER NOT NULL,
    started_utc      TIMESTAMPTZ NOT NULL,
    -- ok: parsed and loaded; not_modified: HTTP 304; unchanged: same body hash as last time;
    -- not_a_feed: an HTML page or empty body; failed: network/HTTP/size/deadline error.
    status           VARCHAR NOT NULL
                     CHECK (status IN ('ok', 'not_modified', 'unchanged', 'not_a_feed', 'failed')),
    http_status      INTEGER,
    url              VARCHAR NOT NULL,
    final_url        VARCHAR,
    bytes            BIGINT,
    latency_ms       DOUBLE,
    etag             VARCHAR,
    last_modified    VARCHAR,
    body_sha256      VARCHAR,
    parser           VARCHAR,
    bozo             BOOLEAN,
    bozo_reason      VARCHAR,
    items_total      INTEGER,
    items_new        INTEGER,
    items_seen       INTEGER,
    retry_after_utc  TIMESTAMPTZ,
    error            VARCHAR
);

-- News items and stream posts. (source_id, dedup_key) identifies an item within its source.
CREATE SEQUENCE item_id_seq START 1;
CREATE TABLE items (
    item_id             BIGINT PRIMARY KEY DEFAULT nextval('item_id_seq'),
    source_id           INTEGER NOT NULL,
    -- 'guid:…', 'id:…', 'url:<normalised url>' or 'title:<sha1>': the first the source gives.
    dedup_key           VARCHAR NOT NULL,
    guid                VARCHAR,
    url                 VARCHAR,
    url_normalized      VARCHAR,
    title               VARCHAR,
    author              VARCHAR,
    summary             VARCHAR,
    published_raw       VARCHAR,
    updated_raw         VARCHAR,
    published_utc       TIMESTAMPTZ,
    updated_utc         TIMESTAMPTZ,
    -- Seconds the source's clock resolves: 1 (to the second), 60 (to the minute), 86400 (day only).
    time_precision_s    INTEGER,
    -- FALSE when the source gave a time without a zone: published_utc then assumes UTC and is flagged.
    time_zone_explicit  BOOLEAN,
    -- Any of: no_zone, future, missing, unparseable.
    time_flags          VARCHAR[] NOT NULL DEFAULT [],
    first_seen_utc      TIMESTAMPTZ NOT NULL,
    -- 'fetch:<fetch_id>' or 'import:<import_id>:<file>:<line>'.
    provenance          VARCHAR NOT NULL,
    UNIQUE (source_id, dedup_key)
);

-- Leak releases, announcements and scheduled events from sourced timelines.
-- The true time lies in [earliest_utc, latest_utc]; ts_utc is the best estimate inside it.
CREATE TABLE events (
    event_id           VARCHAR PRIMARY KEY,
    kind               VARCHAR NOT NULL
                       CHECK (kind IN ('leak_release', 'announcement', 'pre_announcement', 'scheduled_event')),
    actor              VARCHAR,
    title              VARCHAR NOT NULL,
    ts_utc             TIMESTAMPTZ NOT NULL,
    earliest_utc       TIMESTAMPTZ NOT NULL,
    latest_utc         TIMESTAMPTZ NOT NULL,
    ts_raw             VARCHAR,
    precision_minutes  INTEGER,
    source_url         VARCHAR,
    source_quote       VARCHAR,
    confidence         VARCHAR CHECK (confidence IN ('high', 'medium', 'low')),
    notes              VARCHAR,
    catalog            VARCHAR NOT NULL,
    catalog_line       INTEGER,
    imported_utc       TIMESTAMPTZ NOT NULL,
    CHECK (earliest_utc <= ts_utc AND ts_utc <= latest_utc)
);

-- One row per file import, so any item or event can be traced to the file it came from.
CREATE SEQUENCE import_id_seq START 1;
CREATE TABLE imports (
    import_id      BIGINT PRIMARY KEY DEFAULT nextval('import_id_seq'),
    kind           VARCHAR NOT NULL CHECK (kind IN ('events', 'items')),
    file_name      VARCHAR NOT NULL,
    file_sha256    VARCHAR NOT NULL,
    source_id      INTEGER,
    started_utc    TIMESTAMPTZ NOT NULL,
    rows_read      INTEGER NOT NULL,
    rows_new       INTEGER NOT NULL,
    rows_updated   INTEGER NOT NULL,
    rows_rejected  INTEGER NOT NULL,
    errors         VARCHAR[] NOT NULL DEFAULT []
);

-- A reproducible analysis: run_id is a hash of the parameters and the data snapshot, so a rerun
-- on the same data with the same parameters is the same run, not a new one.
CREATE TABLE analysis_runs (
    run_id          VARCHAR PRIMARY KEY,
    created_utc     TIMESTAMPTZ NOT NULL,
    claim_id        VARCHAR,
    null_model      VARCHAR NOT NULL,
    window_minutes  DOUBLE NOT NULL,
    surrogates      INTEGER NOT NULL,
    seed            BIGINT NOT NULL,
    parameters      JSON NOT NULL,
    data_snapshot   JSON NOT NULL,
    code_version    VARCHAR NOT NULL
);

CREATE TABLE results (
    run_id            VARCHAR NOT NULL,
    release_id        VARCHAR NOT NULL,   -- an event_id, or 'pooled' for a test over all releases
    stream            VARCHAR NOT NULL,   -- the announcement stream tested against the release
    statistic         VARCHAR NOT NULL,   -- e.g. count_within_window
    observed          DOUBLE,
    observed_min      DOUBLE,
    observed_max      DOUBLE,
    pvalue            DOUBLE,
    pvalue_min        DOUBLE,
    pvalue_max        DOUBLE,
    qvalue            DOUBLE,             -- Benjamini-Hochberg over the run's per-release p-values
    details           JSON,
    PRIMARY KEY (run_id, release_id, stream, statistic)
);
