-- 007: items without in-memory indexes. DuckDB keeps ART indexes (a PRIMARY KEY, a UNIQUE
-- constraint) in memory and updates them row by row: for items that made memory grow with the
-- table (an import of 5.5M rows could not commit within 600 MB) and every insert slower as the
-- table grew (5.5M rows: 2.8 s without the indexes, 13.8 s with them). Uniqueness of
-- (source_id, dedup_key) and of item_id is kept by the one writer instead: every insert is an
-- anti-join on the key, first row wins, in one transaction, under DuckDB's single-writer lock;
-- the tests check it after kills and reruns. Item ids are max(item_id) + the row's order in its
-- batch, assigned by that writer (a sequence's nextval() per row cost 4 s of 9 for 5.5M rows);
-- there is no default, so a writer that forgot one fails instead of colliding.
CREATE TABLE items_rebuilt (
    item_id             BIGINT NOT NULL,
    source_id           INTEGER NOT NULL,
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
    time_precision_s    INTEGER,
    time_zone_explicit  BOOLEAN,
    time_flags          VARCHAR[] NOT NULL DEFAULT [],
    first_seen_utc      TIMESTAMPTZ NOT NULL,
    provenance          VARCHAR NOT NULL
);
INSERT INTO items_rebuilt SELECT * FROM items ORDER BY item_id;
DROP TABLE items;
ALTER TABLE items_rebuilt RENAME TO items;
