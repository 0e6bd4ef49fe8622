"""Importing sourced event timelines (small, hand-made CSV files), and what every import reports.

The importer validates every row first, loads the good rows in one transaction together with a
ledger row in `imports`, and reports each bad row by file and line. A second import of the same
file changes nothing. Streams of items (of any size) are ``pipeline.sources.import_items``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import numpy as np
import pandas as pd

from pipeline.sources.csvfile import CsvFileError, read_records
from pipeline.store import items as store
from pipeline.store.database import transaction
from pipeline.timestamps import now_utc, parse_times

EVENT_KINDS = ("leak_release", "announcement", "pre_announcement", "scheduled_event")
CONFIDENCE = ("high", "medium", "low")
EVENT_REQUIRED = ["event_id", "kind", "title", "ts_utc", "earliest_utc", "latest_utc"]
# Rejected rows named one by one, at most (the count is always exact).
MAX_MESSAGES = 1000


@dataclass
class ImportReport:
    file: str
    rows_read: int = 0
    new: int = 0
    updated: int = 0
    duplicates: int = 0
    duplicate_examples: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # the first MAX_MESSAGES, by line
    rejected_total: int | None = None  # every rejected row (None: as many as listed)

    @property
    def n_rejected(self) -> int:
        return len(self.rejected) if self.rejected_total is None else self.rejected_total

    @property
    def unchanged(self) -> int:
        return self.rows_read - self.new - self.updated - self.duplicates - self.n_rejected

    def summary(self) -> str:
        parts = [f"{self.rows_read} rows read", f"{self.new} new"]
        if self.updated:
            parts.append(f"{self.updated} updated")
        parts.append(f"{self.unchanged} already stored")
        if self.duplicates:
            parts.append(f"{self.duplicates} repeated within the file ({'; '.join(self.duplicate_examples)})"
                         if self.duplicate_examples else f"{self.duplicates} repeated within the file")
        parts.append(f"{self.n_rejected} rejected")
        return f"{self.file}: " + ", ".join(parts)


class _RowErrors:
    """Collects the first error per row, as 'file:line: message'."""

    def __init__(self, path: Path, lines: pd.Series):
        self.path = path
        self.lines = lines.to_numpy()
        self.messages: dict[int, str] = {}

    def add(self, mask: np.ndarray, message) -> None:
        for i in np.flatnonzero(mask):
            if i not in self.messages:
                text = message(i) if callable(message) else message
                self.messages[i] = f"{self.path}:{self.lines[i]}: {text}"

    def add_times(self, column: str, parsed) -> None:
        for i, err in enumerate(parsed.error):
            if err and i not in self.messages:
                self.messages[i] = f"{self.path}:{self.lines[i]}: {column}: {err}"

    @property
    def bad(self) -> np.ndarray:
        mask = np.zeros(len(self.lines), dtype=bool)
        mask[list(self.messages)] = True
        return mask

    def listed(self) -> list[str]:
        return [self.messages[i] for i in sorted(self.messages)]

    def pairs(self) -> list[tuple[int, str]]:
        """(line, message) of every bad row, to merge with other rejections by line."""
        return [(int(self.lines[i]), self.messages[i]) for i in sorted(self.messages)]


def _event_frame(f: pd.DataFrame, errs: _RowErrors, path: Path, started) -> pd.DataFrame:
    """The timeline's rows as the events table holds them; every bad value is added to ``errs``."""
    ids = f["event_id"].str.strip()
    errs.add((ids == "").to_numpy(), "event_id is empty")
    errs.add(ids.duplicated().to_numpy() & (ids != "").to_numpy(),
             lambda i: f"event_id {ids.iat[i]!r} appears earlier in the file")
    kinds = f["kind"].str.strip()
    errs.add(~kinds.isin(EVENT_KINDS).to_numpy(),
             lambda i: f"kind {kinds.iat[i]!r} is not one of {', '.join(EVENT_KINDS)}")
    errs.add((f["title"].str.strip() == "").to_numpy(), "title is empty")
    times = {c: parse_times(f[c]) for c in ("ts_utc", "earliest_utc", "latest_utc")}
    for column, parsed in times.items():
        errs.add_times(column, parsed)
    ts, lo, hi = (times[c].utc for c in ("ts_utc", "earliest_utc", "latest_utc"))
    errs.add(((lo > ts) | (ts > hi)).fillna(False).to_numpy(),
             "times must satisfy earliest_utc <= ts_utc <= latest_utc")
    conf = f["confidence"].str.strip().str.lower() if "confidence" in f else pd.Series("", index=f.index)
    errs.add((~conf.isin(CONFIDENCE + ("",))).to_numpy(),
             lambda i: f"confidence {conf.iat[i]!r} is not one of {', '.join(CONFIDENCE)}")
    precision = (
        pd.to_numeric(f["precision_minutes"].replace("", None), errors="coerce")
        if "precision_minutes" in f else pd.Series(np.nan, index=f.index)
    )
    if "precision_minutes" in f:
        errs.add((precision.isna() & (f["precision_minutes"] != "")).to_numpy(),
                 lambda i: f"precision_minutes {f['precision_minutes'].iat[i]!r} is not a number")

    def text(column: str) -> pd.Series:
        return f[column].str.strip().replace("", None) if column in f else pd.Series(None, index=f.index, dtype="string")

    return pd.DataFrame(
        {
            "event_id": ids,
            "kind": kinds,
            "actor": text("actor"),
            "title": f["title"].str.strip(),
            "ts_utc": ts,
            "earliest_utc": lo,
            "latest_utc": hi,
            "ts_raw": text("ts_local").fillna(f["ts_utc"]),
            "precision_minutes": precision.astype("Int64"),
            "source_url": text("source_url"),
            "source_quote": text("source_quote"),
            "confidence": conf.replace("", None),
            "notes": text("notes"),
            "catalog": path.name,
            "catalog_line": f["_line"].astype("int64"),
            "imported_utc": started,
        }
    )


def import_events(con: duckdb.DuckDBPyConnection, path: Path | str) -> ImportReport:
    """Load a sourced timeline in the format of data/case_2016/timeline_2016.csv."""
    path = Path(path)
    started = now_utc()
    rec = read_records(path, EVENT_REQUIRED)
    f = rec.frame
    errs = _RowErrors(path, f["_line"])
    unreadable = [(line, f"{path}:{line}: {why}") for line, why in rec.rejected]
    frame = _event_frame(f, errs, path, started)
    good = frame[~errs.bad]
    report = ImportReport(file=str(path), rows_read=len(f) + len(unreadable),
                          rejected=[m for _, m in sorted(errs.pairs() + unreadable)])
    with transaction(con):
        catalog = store.ensure_source(con, f"catalog:{path.name}", role="release", kind="catalog")
        import_id = store.next_import_id(con)
        report.new, report.updated = store.upsert_events(con, good)
        store.record_import(
            con, import_id=import_id, kind="events", file_name=str(path), file_sha256=rec.sha256,
            source_id=catalog.source_id, started_utc=started, rows_read=report.rows_read,
            rows_new=report.new, rows_updated=report.updated, errors=report.rejected,
            source_name=catalog.name,
        )
    return report


def check_zone(name: str) -> str:
    """An IANA zone name, or a clear error naming the accepted form."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CsvFileError(f"--timezone {name!r} is not a time zone name; use an IANA name such as "
                           "America/New_York or UTC") from None
    return name
