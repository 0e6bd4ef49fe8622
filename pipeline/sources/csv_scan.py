"""Reading a large CSV file into a temporary table with DuckDB, with the line of every record.

DuckDB's reader is parallel and streams (the whole file is never in Python), but it reports
line numbers only for the records it rejects, and after an unterminated quote it reads the rest
of the file as that one record. So:
- each good record spans 1 + (newlines inside its fields) lines, and each rejected one starts at
  the line its byte position falls on: the records' lines follow by arithmetic, and the sum is
  checked against the file's own line count (blank lines between records, which DuckDB skips
  silently, or any other disagreement, fail the check);
- a record with too few fields (DuckDB rejects it; the reference reader pads it) is read from
  the reject table's copy of its text, padded, and kept;
- where the check fails, or DuckDB met a quoting problem (after an unterminated quote it reads
  the rest of the file as one record, and it refuses a quote inside an unquoted field, which
  Python's reader takes as text), ``pipeline.sources.csvfile``'s reference reader reads the file
  instead, in chunks. Either way the result is the same table: the header's columns (text) and
  ``_line``; the property tests check both paths agree on random hostile files.
"""

from __future__ import annotations

import csv
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.sources.csvfile import (
    MAX_RECORD,
    NOT_UTF8,
    READ_CHUNK,
    TOO_LONG,
    CsvFileError,
    is_gzip,
    iter_records,
    open_binary,
    truncated_gzip,
)

REJECTS_LIMIT = 100_000  # beyond this many rejects the reference reader takes over
REFERENCE_CHUNK = 100_000


@dataclass
class Scan:
    table: str
    rows: int
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    method: str = "duckdb"
    spans: dict[int, int] = field(default_factory=dict)  # rejected record's line -> lines it took


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _line_starts(path: Path, positions: list[int]) -> tuple[list[int], int]:
    """The line each byte position falls on, and the last line that is not blank, in one
    streaming pass over the (decompressed) bytes."""
    want = sorted(set(positions))
    found: dict[int, int] = {}
    newlines, seen, j, last = 0, 0, 0, b""
    with open_binary(path) as f:
        try:
            while chunk := f.read(READ_CHUNK):
                end = seen + len(chunk)
                while j < len(want) and want[j] < end:
                    found[want[j]] = newlines + chunk.count(b"\n", 0, want[j] - seen) + 1
                    j += 1
                newlines += chunk.count(b"\n")
                seen = end
                last = (last + chunk)[-65536:]
        except (EOFError, OSError, zlib.error) as exc:
            raise truncated_gzip(path, exc) from None
    body = last.rstrip(b"\r\n \t")
    last_text_line = newlines - last[len(body):].count(b"\n") + 1 if body else 0
    return [found.get(p, newlines + 2) for p in positions], last_text_line


def _read_csv(path: Path, header: list[str], rejects: str, *, gzip: bool) -> str:
    cols = "{" + ", ".join(f"{_sql_str(h)}: 'VARCHAR'" for h in header) + "}"
    return (f"read_csv({_sql_str(str(path))}, header=true, auto_detect=false, "
            f"delim=',', quote='\"', escape='\"', columns={cols}, strict_mode=true, store_rejects=true, "
            f"rejects_table={_sql_str(rejects)}, rejects_scan={_sql_str(rejects + '_scan')}, "
            f"rejects_limit={REJECTS_LIMIT}, max_line_size={MAX_RECORD}, compression='{'gzip' if gzip else 'none'}')")


def _newlines(header: list[str]) -> str:
    # Counted only where a field holds a newline at all (most hold none: contains() is cheap).
    return " + ".join(f"CASE WHEN contains({_q(h)}, chr(10)) THEN length({_q(h)}) - length(replace({_q(h)}, chr(10), '')) "
                      "ELSE 0 END" for h in header)


def _pad(text: str, width: int) -> list[str] | None:
    """A rejected record's own text, read by the reference rules (short rows padded)."""
    try:
        rows = list(csv.reader(text.splitlines(keepends=True), strict=True))
    except csv.Error:
        return None
    if len(rows) != 1 or len(rows[0]) > width:
        return None
    return rows[0] + [""] * (width - len(rows[0]))


class _Mismatch(Exception):
    """DuckDB's records and the file's lines do not add up: the reference reader decides."""


def _scan_duckdb(con, path: Path, header: list[str], table: str, gzip: bool, scan: Scan,
                 keep: list[str]) -> None:
    """Into {table}_raw (DuckDB's records in file order) and {table}_lines (their lines), joined
    by position in the view {table}; recovered records go to {table}_recovered."""
    rejects = f"mt_rejects_{uuid.uuid4().hex[:8]}"
    raw = f"{table}_raw"
    try:
        # Every field is read and its newlines counted (they place the lines); only the kept
        # columns are stored.
        con.execute(f"CREATE TEMP TABLE {raw} AS SELECT {', '.join(_q(h) for h in keep)}, "
                    f"{_newlines(header)} AS _nl FROM {_read_csv(path, header, rejects, gzip=gzip)}")
    except duckdb.Error as exc:
        if "gzip" in str(exc).lower() or "compress" in str(exc).lower():
            raise CsvFileError(f"{path}: not a complete gzip file ({str(exc).splitlines()[0]})") from None
        raise _Mismatch(str(exc)) from None
    try:
        # line_byte_position counts from 1, and after a blank line the record's text begins with
        # that line's newline: both normalised here, and the sum checked below.
        bad = {}  # one record may carry several errors: one entry per record
        for lbp, kind, t, msg in con.execute(
                f"SELECT line_byte_position, error_type, csv_line, error_message FROM {rejects} "
                "ORDER BY line_byte_position, error_type = 'UNQUOTED VALUE' DESC").fetchall():
            pos = lbp - 1 + len(t or "") - len((t or "").lstrip("\r\n"))
            bad.setdefault(pos, (pos, kind, (t or "").lstrip("\r\n"), msg))
        bad = list(bad.values())
        if len(bad) >= REJECTS_LIMIT:
            raise _Mismatch("too many rejected records to place")
        if any(b[1] == "UNQUOTED VALUE" or "\n" in b[2].rstrip("\r\n") for b in bad):
            # A quote DuckDB could not close (it reads on to the end of the file) or lines it
            # joined into a rejected record: Python's reader (a quote inside an unquoted field is
            # text; a bad record is skipped by its first line only) decides.
            raise _Mismatch("a quoting problem")
        starts, last_line = _line_starts(path, [b[0] for b in bad])
        (n, multiline) = con.execute(f"SELECT count(*), count(*) FILTER (WHERE _nl > 0) FROM {raw}").fetchall()[0]
        simple = not bad and not multiline  # no record spans lines, none rejected: line = position + 2
        if simple:
            tail = n + 2
        else:
            tail = _place_lines(con, raw, f"{table}_lines", n, starts, [b[2] for b in bad])
        if tail - 1 != last_line and (n or bad):
            raise _Mismatch(f"records end on line {tail - 1}, the file's text on line {last_line}")
        scan.rows += n
        recovered = _recover_rejects(con, table, header, bad, starts, scan, keep)
        cols = ", ".join(f"coalesce(r.{_q(h)}, '') AS {_q(h)}" for h in keep)  # empty is text, not NULL
        if simple:
            select = f"SELECT {cols}, r.rowid + 2 AS _line FROM {raw} r"
        else:
            select = f"SELECT {cols}, l._line FROM {raw} r POSITIONAL JOIN {table}_lines l"
        if recovered:
            select += f" UNION ALL SELECT * FROM {table}_recovered"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS {select}")
    except BaseException:
        con.execute(f"DROP TABLE IF EXISTS {raw}")
        raise
    finally:
        con.execute(f"DROP TABLE IF EXISTS {rejects}")
        con.execute(f"DROP TABLE IF EXISTS {rejects}_scan")


LINE_CHUNK = 1_000_000  # records placed at a time: Python's memory stays the same for any file


class _Placer:
    """Start lines of the good records, a chunk at a time, from their spans (1 + newlines inside)
    and the rejected records' known start lines; memory for one chunk whatever the file's size."""

    def __init__(self, reject_starts: list[int], reject_text: list[str], first: int):
        self.rejects = [(start, max(1, text.rstrip("\n").count("\n") + 1))
                        for start, text in zip(reject_starts, reject_text)]
        self.j = 0
        self.next_line = first  # where the next record starts, rejects before it included

    def _skip_rejects_at(self, line: int) -> None:
        while self.j < len(self.rejects) and self.rejects[self.j][0] == line:
            line += self.rejects[self.j][1]
            self.j += 1
        self.next_line = line

    def place(self, spans: np.ndarray) -> np.ndarray:
        """The start lines of the next ``len(spans)`` good records (at least one)."""
        n = len(spans)
        base = np.empty(n, dtype=np.int64)  # where each starts, counting good records' lines only
        base[0] = 0
        np.cumsum(spans[:-1], out=base[1:])
        end = int(base[-1] + spans[-1])
        self._skip_rejects_at(self.next_line)
        origin = self.next_line
        shift = np.zeros(n, dtype=np.int64)  # lines of rejected records before each, as steps
        carry = 0
        while self.j < len(self.rejects):
            start, span = self.rejects[self.j]
            rel = start - origin - carry
            k = int(np.searchsorted(base, rel))
            if k >= n:  # after the chunk's last start: it must not begin inside that record
                if rel < end:
                    raise _Mismatch(f"a rejected record at line {start} falls inside another record")
                break
            if base[k] != rel:
                raise _Mismatch(f"a rejected record at line {start} falls inside another record")
            shift[k] += span
            carry += span
            self.j += 1
        lines = origin + base + np.cumsum(shift)
        self.next_line = int(lines[-1] + spans[-1])
        return lines

    def end(self) -> int:
        """The line after the last record (trailing rejects included)."""
        self._skip_rejects_at(self.next_line)
        if self.j < len(self.rejects):
            raise _Mismatch(f"a rejected record at line {self.rejects[self.j][0]} falls inside another record")
        return self.next_line


def _place(spans: np.ndarray, reject_starts: list[int], reject_text: list[str], first: int):
    """All of it at once (for tests and small files): the lines, and the line after the last."""
    placer = _Placer(reject_starts, reject_text, first)
    lines = placer.place(spans) if len(spans) else np.empty(0, dtype=np.int64)
    return lines, placer.end()


def _place_lines(con, raw: str, lines_table: str, n: int, starts: list[int], texts: list[str]) -> int:
    """The lines of the records of ``raw`` (in file order) into ``lines_table``, a chunk at a
    time; returns the line after the last record."""
    placer = _Placer(starts, texts, 2)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {lines_table} (_line BIGINT)")
    for lo in range(0, n, LINE_CHUNK):
        spans = 1 + con.execute(f"SELECT _nl::INTEGER AS _nl FROM {raw} WHERE rowid >= ? AND rowid < ?",
                                [lo, lo + LINE_CHUNK]).fetchnumpy()["_nl"].astype(np.int64)
        con.register("mt_lines_chunk", pd.DataFrame({"_line": placer.place(spans)}))
        con.execute(f"INSERT INTO {lines_table} SELECT _line FROM mt_lines_chunk")
        con.unregister("mt_lines_chunk")
    return placer.end()


def _recover_rejects(con, table, header, bad, starts, scan: Scan, keep: list[str]) -> int:
    rows = []
    kept = [header.index(h) for h in keep]
    for (_, kind, text, message), line in zip(bad, starts):
        fields = _pad(text or "", len(header)) if kind == "MISSING COLUMNS" else None
        if fields is not None:
            rows.append([fields[i] for i in kept] + [line])
        elif kind == "TOO MANY COLUMNS":
            n = len(next(csv.reader((text or "").splitlines(keepends=True)), []))
            scan.rejected.append((line, f"{n} fields where the header has {len(header)}"))
            scan.spans[line] = (text or "").rstrip("\r\n").count("\n") + 1
        elif kind in ("LINE SIZE OVER MAXIMUM", "INVALID ENCODING"):
            scan.rejected.append((line, TOO_LONG if kind == "LINE SIZE OVER MAXIMUM" else NOT_UTF8))
        else:
            scan.rejected.append((line, f"malformed CSV: {(message or kind).splitlines()[0]}"))
    cols = ", ".join(f"{_q(h)} VARCHAR" for h in keep)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_recovered ({cols}, _line BIGINT)")
    if rows:
        con.register("mt_recovered", pd.DataFrame(rows, columns=[*keep, "_line"]))
        con.execute(f"INSERT INTO {table}_recovered SELECT * FROM mt_recovered")
        con.unregister("mt_recovered")
        scan.rows += len(rows)
    return len(rows)


def _scan_reference(con, path: Path, header: list[str], table: str, scan: Scan, keep: list[str]) -> None:
    cols = ", ".join(f"{_q(h)} VARCHAR" for h in keep)
    drop(con, table)
    con.execute(f"CREATE TEMP TABLE {table} ({cols}, _line BIGINT)")
    scan.rows, scan.rejected, scan.method, scan.spans = 0, [], "reference", {}
    rows: list[list] = []
    kept = [header.index(h) for h in keep]

    def flush():
        if rows:
            con.register("mt_chunk", pd.DataFrame(rows, columns=[*keep, "_line"]))
            con.execute(f"INSERT INTO {table} SELECT * FROM mt_chunk")
            con.unregister("mt_chunk")
            scan.rows += len(rows)
            rows.clear()
    for r in iter_records(path, len(header)):
        if r.fields is None:
            scan.rejected.append((r.line, r.error))
            scan.spans[r.line] = r.span
            continue
        rows.append([r.fields[i] for i in kept] + [r.line])
        if len(rows) >= REFERENCE_CHUNK:
            flush()
    flush()


def drop(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Everything a scan made: the relation and what it is built from."""
    # A view after DuckDB's read, a table after the reference reader's: DuckDB's DROP VIEW IF
    # EXISTS refuses a table of that name, so ask the catalog which it is.
    if con.execute("SELECT 1 FROM duckdb_views() WHERE temporary AND view_name = ?", [table]).fetchone():
        con.execute(f"DROP VIEW {table}")
    for t in (table, f"{table}_raw", f"{table}_recovered", f"{table}_lines"):
        con.execute(f"DROP TABLE IF EXISTS {t}")


def scan_csv(con: duckdb.DuckDBPyConnection, path: Path, header: list[str], table: str,
             keep: list[str] | None = None) -> Scan:
    """Every record of ``path`` after its header, readable as the relation ``table``: the
    header's columns as text (only those in ``keep``, if given; every record is still read and
    checked whole) and ``_line``. ``drop(con, table)`` removes it."""
    drop(con, table)
    scan = Scan(table, 0)
    keep = list(header) if keep is None else [h for h in header if h in keep]
    try:
        _scan_duckdb(con, path, header, table, is_gzip(path), scan, keep)
    except _Mismatch:
        _scan_reference(con, path, header, table, scan, keep)
    scan.rejected.sort()
    return scan
