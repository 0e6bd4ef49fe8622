-- 002 feeds: polling state that is not derivable from the fetch log, every sighting of an item,
-- and the ledger that makes loading a staged batch idempotent.

-- Set by ingestion after too many consecutive failures; cleared by `media-timing feeds enable`.
ALTER TABLE sources ADD COLUMN disabled_reason VARCHAR;
-- Failures before this instant no longer count against the feed (set when re-enabled).
ALTER TABLE sources ADD COLUMN enabled_since_utc TIMESTAMPTZ;
-- Per-feed polling interval; NULL means MEDIA_TIMING_POLL_MINUTES.
ALTER TABLE sources ADD COLUMN poll_minutes INTEGER;

-- Each fetch carries the key it was staged under, so loading a batch twice adds nothing.
ALTER TABLE fetches ADD COLUMN fetch_key VARCHAR;
CREATE UNIQUE INDEX fetches_fetch_key ON fetches (fetch_key);

-- Every time a parsed fetch contained an item: first and last seen are min and max of seen_utc.
CREATE TABLE item_sightings (
    item_id   BIGINT NOT NULL,
    fetch_id  BIGINT NOT NULL,
    seen_utc  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (item_id, fetch_id)
);

-- Staged batches (files written by fetchers) that have been merged into the database.
CREATE TABLE staged_batches (
    batch_id    VARCHAR PRIMARY KEY,
    loaded_utc  TIMESTAMPTZ NOT NULL,
    fetches     INTEGER NOT NULL,
    items_new   INTEGER NOT NULL
);
