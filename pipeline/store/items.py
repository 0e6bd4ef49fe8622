"""Writing to DuckDB: sources, items and events, in bulk and idempotently (reruns add nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from pipeline.config import ROLES
from pipeline.errors import UserError
from pipeline.store.database import query_one

SOURCE_KINDS = ("feed", "archive", "catalog")

ITEM_COLUMNS = [
    "source_id", "dedup_key", "guid", "url", "url_normalized", "title", "author", "summary",
    "published_raw", "updated_raw", "published_utc", "updated_utc", "time_precision_s",
    "time_zone_explicit", "time_flags", "first_seen_utc", "provenance",
]
EVENT_COLUMNS = [
    "event_id", "kind", "actor", "title", "ts_utc", "earliest_utc", "latest_utc", "ts_raw",
    "precision_minutes", "source_url", "source_quote", "confidence", "notes", "catalog",
    "catalog_line", "imported_utc",
]
# What makes an event row "changed" on re-import (bookkeeping columns excluded).
EVENT_CONTENT = [c for c in EVENT_COLUMNS if c not in ("catalog", "catalog_line", "imported_utc")]


class SourceConflict(UserError):
    pass


@dataclass(frozen=True)
class Source:
    source_id: int
    name: str
    role: str
    kind: str
    url: str | None
    enabled: bool


def find_source(con: duckdb.DuckDBPyConnection, name: str) -> Source | None:
    row = query_one(
        con, "SELECT source_id, name, role, kind, url, enabled FROM sources WHERE name = ?", [name]
    )
    return Source(*row) if row else None


def ensure_source(
    con: duckdb.DuckDBPyConnection,
    name: str,
    *,
    role: str,
    kind: str,
    url: str | None = None,
    tags: Sequence[str] = (),
    attribution: str | None = None,
    label: str | None = None,
    caveat: str | None = None,
) -> Source:
    """The source called ``name``, created if new. An existing one must agree on role and kind;
    a label or caveat given replaces the stored one (they are how it is shown, not data)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if kind not in SOURCE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SOURCE_KINDS)}, not {kind!r}")
    found = find_source(con, name)
    if found:
        if (found.role, found.kind) != (role, kind):
            raise SourceConflict(
                f"source {name!r} already exists as a {found.role} {found.kind}, "
                f"not a {role} {kind}; pick another name"
            )
        if label is not None or caveat is not None:
            con.execute("UPDATE sources SET label = coalesce(?, label), caveat = coalesce(?, caveat) "
                        "WHERE source_id = ?", [label, caveat, found.source_id])
        return found
    con.execute(
        "INSERT INTO sources (name, role, kind, url, tags, attribution, label, caveat) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [name, role, kind, url, list(tags), attribution, label, caveat],
    )
    return find_source(con, name)


def _staged(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:  # for events
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"staged frame lacks columns {missing}")
    return frame[columns]


@dataclass
class Written:
    new: int  # items stored now
    repeated: int  # rows whose key an earlier row of the same batch already had
    repeats: list[tuple[int, int]]  # a few (order, order of the first row with that key)


WRITE_COLUMNS = [c for c in ITEM_COLUMNS]
# Columns a source may give and others leave out (NULL): archive captures bound first sightings.
OPTIONAL_ITEM_COLUMNS = ["first_seen_lo_utc"]


KEY_HASH = "md5_number_lower(CAST({p}source_id AS VARCHAR) || ':' || {p}dedup_key)"  # see sql/011


def plan_items(con: duckdb.DuckDBPyConnection, relation: str) -> Written:
    """Which rows of ``relation`` are new items (kept in temp tables until ``store_planned``):
    see ``write_items``."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE mt_keys AS
                    SELECT _order, source_id, dedup_key, {KEY_HASH.format(p='')} AS key_hash,
                           first_value(_order) OVER (PARTITION BY source_id, dedup_key ORDER BY _order) AS first_order
                    FROM {relation}""")
    (repeated,) = query_one(con, "SELECT count(*) FROM mt_keys WHERE _order <> first_order")
    repeats = con.execute("SELECT _order, first_order FROM mt_keys WHERE _order <> first_order "
                          "ORDER BY _order LIMIT 3").fetchall()
    _find_stored(con)
    con.execute("""CREATE OR REPLACE TEMP TABLE mt_new AS
                   SELECT k._order FROM mt_keys k
                   WHERE k._order = k.first_order
                     AND NOT EXISTS (SELECT 1 FROM mt_found f WHERE f.source_id = k.source_id AND f.dedup_key = k.dedup_key)""")
    (new,) = query_one(con, "SELECT count(*) FROM mt_new")
    return Written(int(new), int(repeated), [tuple(r) for r in repeats])


def _find_stored(con: duckdb.DuckDBPyConnection) -> None:
    """mt_found: the stored items with a key in mt_keys. Candidates come from one narrow column
    (key_hash), so the cost per poll does not grow with the strings of every stored item; their
    full keys are then read by row id, for those rows only, and compared."""
    con.execute("""CREATE OR REPLACE TEMP TABLE mt_hits AS
                   SELECT i.rowid AS rid FROM items i WHERE i.key_hash IN (SELECT key_hash FROM mt_keys)""")
    lo, hi = query_one(con, "SELECT min(rid), max(rid) FROM mt_hits")
    con.execute("CREATE OR REPLACE TEMP TABLE mt_found (item_id BIGINT, source_id INTEGER, dedup_key VARCHAR)")
    if lo is not None:  # the range lets zone maps skip every row group without a hit
        con.execute("""INSERT INTO mt_found SELECT i.item_id, i.source_id, i.dedup_key FROM items i
                       WHERE i.rowid BETWEEN ? AND ? AND i.rowid IN (SELECT rid FROM mt_hits)
                         AND (i.source_id, i.dedup_key) IN (SELECT (source_id, dedup_key) FROM mt_keys)""", [lo, hi])
    con.execute("DROP TABLE mt_hits")


WRITE_RANGE = 1_000_000  # rows of _order per INSERT when only some are new (bounds the hash table)


def store_planned(con: duckdb.DuckDBPyConnection, relation: str, *, item_ids: bool = False) -> int:
    """Insert the rows ``plan_items`` found new, with item_id = max(item_id) + _order. With
    ``item_ids``, leave mt_item_ids (_order, item_id): the stored item of every row of the batch,
    new or not (the merge records sightings with it; imports need no such map)."""
    (base,) = query_one(con, "SELECT coalesce(max(item_id), 0) FROM items")
    (new, lo, hi) = query_one(con, "SELECT count(*), min(_order), max(_order) FROM mt_new")
    (total,) = query_one(con, f"SELECT count(*) FROM {relation}")
    given = {d[0] for d in con.execute(f"SELECT * FROM {relation} LIMIT 0").description}
    cols = WRITE_COLUMNS + [c for c in OPTIONAL_ITEM_COLUMNS if c in given]
    head = (f"INSERT INTO items (item_id, key_hash, {', '.join(cols)}) "
            f"SELECT ? + s._order, {KEY_HASH.format(p='s.')}, {', '.join('s.' + c for c in cols)} FROM {relation} s")
    n = 0
    if new == total and new:  # a first load: every row is new, no filter (and no hash table) needed
        (n,) = query_one(con, head, [base])
    elif new:
        for start in range(lo, hi + 1, WRITE_RANGE):
            (k,) = query_one(con, head + " WHERE s._order >= ? AND s._order < ? AND s._order IN "
                             "(SELECT _order FROM mt_new WHERE _order >= ? AND _order < ?)",
                             [base, start, start + WRITE_RANGE, start, start + WRITE_RANGE])
            n += k
    if item_ids:
        con.execute("""CREATE OR REPLACE TEMP TABLE mt_item_ids AS
                       SELECT k._order, coalesce(f.item_id, ? + k.first_order) AS item_id
                       FROM mt_keys k LEFT JOIN mt_found f USING (source_id, dedup_key)""", [base])
    for t in ("mt_new", "mt_found", "mt_keys"):
        con.execute(f"DROP TABLE {t}")
    return int(n)


def write_items(con: duckdb.DuckDBPyConnection, relation: str) -> Written:
    """The one way items are stored, whatever their source (feed, CSV, archive backfill).

    ``relation`` (a table or view) has every column of ITEM_COLUMNS and ``_order``, an integer
    unique within it, at least 1. A row is new if its (source_id, dedup_key) is not stored;
    within the batch the first by ``_order`` wins. New rows get item_id = max(item_id) +
    _order. Call it inside the caller's transaction: with DuckDB's one writer, that is what
    keeps (source_id, dedup_key) unique (the table has no index that would, see sql/007).
    """
    planned = plan_items(con, relation)
    store_planned(con, relation)
    return planned


def upsert_events(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> tuple[int, int]:
    """Insert new events and replace changed ones; unchanged rows are left alone.

    Returns (new, updated). A catalog is the authority on its rows: a corrected time in the
    file replaces the stored one, and the catalog file and line say where it came from.
    """
    if frame.empty:
        return 0, 0
    staged = _staged(frame, EVENT_COLUMNS)
    con.register("staged_events", staged)
    try:
        differs = " OR ".join(f"s.{c} IS DISTINCT FROM e.{c}" for c in EVENT_CONTENT)
        new, updated = query_one(
            con,
            f"""
            SELECT count(*) FILTER (WHERE e.event_id IS NULL),
                   count(*) FILTER (WHERE e.event_id IS NOT NULL AND ({differs}))
            FROM staged_events s LEFT JOIN events e USING (event_id)
            """,
        )
        con.execute(
            f"""
            INSERT OR REPLACE INTO events ({", ".join(EVENT_COLUMNS)})
            SELECT {", ".join("s." + c for c in EVENT_COLUMNS)}
            FROM staged_events s LEFT JOIN events e USING (event_id)
            WHERE e.event_id IS NULL OR ({differs})
            """
        )
    finally:
        con.unregister("staged_events")
    return int(new), int(updated)


def record_import(
    con: duckdb.DuckDBPyConnection,
    *,
    import_id: int,
    kind: str,
    file_name: str,
    file_sha256: str,
    source_id: int | None,
    started_utc,
    rows_read: int,
    rows_new: int,
    rows_updated: int,
    errors: list[str],
    source_name: str | None = None,
    rows_rejected: int | None = None,
    options: str | None = None,
) -> None:
    con.execute(
        """
        INSERT INTO imports (import_id, kind, file_name, file_sha256, source_id, started_utc,
                             rows_read, rows_new, rows_updated, rows_rejected, errors, source_name, options)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        [import_id, kind, file_name, file_sha256, source_id, started_utc, rows_read, rows_new,
         rows_updated, len(errors) if rows_rejected is None else rows_rejected, errors[:1000],
         source_name, options],
    )


def next_import_id(con: duckdb.DuckDBPyConnection) -> int:
    """Reserve an import id up front, so rows can name the import that brought them."""
    (value,) = query_one(con, "SELECT nextval('import_id_seq')")
    return int(value)
