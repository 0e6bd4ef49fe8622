"""Writing to DuckDB: sources, items and events, in bulk and idempotently (reruns add nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from .config import ROLES
from .database import query_one
from .errors import UserError

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


def _staged(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"staged frame lacks columns {missing}")
    return frame[columns]


def insert_new_items(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> int:
    """Insert the rows whose (source_id, dedup_key) is not stored yet; return how many.

    The first row wins within the frame too. One statement, so it is all or nothing.
    """
    if frame.empty:
        return 0
    staged = _staged(frame, ITEM_COLUMNS).reset_index(drop=True)
    staged = staged.assign(_order=range(len(staged)))
    con.register("staged_items", staged)
    try:
        (count,) = query_one(
            con,
            f"""
            INSERT INTO items ({", ".join(ITEM_COLUMNS)})
            SELECT {", ".join("s." + c for c in ITEM_COLUMNS)}
            FROM staged_items s
            WHERE NOT EXISTS (SELECT 1 FROM items i
                              WHERE i.source_id = s.source_id AND i.dedup_key = s.dedup_key)
            QUALIFY row_number() OVER (PARTITION BY s.source_id, s.dedup_key ORDER BY s._order) = 1
            """,
        )
    finally:
        con.unregister("staged_items")
    return int(count)


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
