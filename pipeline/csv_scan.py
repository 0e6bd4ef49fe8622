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
  Python's reader takes as text), ``pipeline.csvfile``'s reference reader reads the file
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

from .csvfile import READ_CHUNK, CsvFileError, is_gzip, iter_records, open_binary

REJECTS_LIMIT = 100_000  # beyond this many rejects the reference reader takes over
REFERENCE_CHUNK = 100_000


@dataclass
class Scan:
    table: str
    rows: int
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    method: str = "duckdb"


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
            raise CsvFileError(f"{path}: not a complete gzip file ({exc}); was the download cut short?") from None
    body = last.rstrip(b"\r\n \t")
    last_text_line = newlines - last[len(body):].count(b"\n") + 1 if body else 0
    return [found.get(p, newlines + 2) for p in positions], last_text_line


def _read_csv(path: Path, header: list[str], rejects: str, *, gzip: bool) -> str:
    cols = "{" + ", ".join(f"{_sql_str(h)}: 'VARCHAR'" for h in header) + "}"
    return (f"read_csv({_sql_str(str(path))}, header=true, auto_detect=false, "
            f"delim=',', quote='\"', escape='\"', columns={cols}, strict_mode=true, store_rejects=true, "
            f"rejects_table={_sql_str(rejects)}, rejects_scan={_sql_str(rejects + '_scan')}, "
            f"rejects_limit={REJECTS_LIMIT}, compression='{'gzip' if gzip else 'none'}')")


def _newlines(header: list[str]) -> str:
    return " + ".join(f"coalesce(length({_q(h)}) - length(replace({_q(h)}, chr(10), '')), 0)" for h in header)


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


def _scan_duckdb(con, path: Path, header: list[str], table: str, gzip: bool, scan: Scan) -> None:
    rejects = f"mt_rejects_{uuid.uuid4().hex[:8]}"
    raw = f"{table}_raw"
    try:
        con.execute(f"CREATE TEMP TABLE {raw} AS SELECT *, {_newlines(header)} AS _nl "
                    f"FROM {_read_csv(path, header, rejects, gzip=gzip)}")
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
        starts, last_line = _line_starts(path, [b[0] for b in bad])
        spans = 1 + con.execute(f"SELECT _nl FROM {raw} ORDER BY rowid").fetchnumpy()["_nl"].astype(np.int64)
        good_lines, tail = _place(spans, starts, [b[2] for b in bad], 2)
        if any(b[1] == "UNQUOTED VALUE" or "\n" in b[2].rstrip("\r\n") for b in bad):
            # A quote DuckDB could not close (it reads on to the end of the file) or lines it
            # joined into a rejected record: Python's reader (a quote inside an unquoted field is
            # text; a bad record is skipped by its first line only) decides.
            raise _Mismatch("a quoting problem")
        if tail - 1 != last_line and (spans.size or bad):
            raise _Mismatch(f"records end on line {tail - 1}, the file's text on line {last_line}")
        lines_frame = pd.DataFrame({"_line": good_lines.astype(np.int64)})
        con.register("mt_lines", lines_frame)
        cols = ", ".join(f"coalesce({_q(h)}, '')" for h in header)  # an empty field is text, not NULL
        con.execute(f"INSERT INTO {table} SELECT {cols}, l._line FROM {raw} POSITIONAL JOIN mt_lines l")
        con.unregister("mt_lines")
        scan.rows += len(lines_frame)
        _recover_rejects(con, table, header, bad, starts, scan)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {raw}")
        con.execute(f"DROP TABLE IF EXISTS {rejects}")
        con.execute(f"DROP TABLE IF EXISTS {rejects}_scan")


def _place(spans: np.ndarray, reject_starts: list[int], reject_text: list[str], first: int):
    """The start line of every good record, given their spans and the rejected records' known
    start lines and texts; and the line after the last record."""
    n = len(spans)
    before = np.concatenate([[0], np.cumsum(spans)])  # good lines before record i, no rejects
    shift = np.zeros(n + 1, dtype=np.int64)
    extra = 0
    for start, text in zip(reject_starts, reject_text):
        k = int(np.searchsorted(before, start - first - extra))  # good records before the reject
        if k > n or before[min(k, n)] != start - first - extra:
            raise _Mismatch(f"a rejected record at line {start} falls inside another record")
        span = max(1, text.rstrip("\n").count("\n") + 1)
        shift[k] += span
        extra += span
    shift = np.cumsum(shift)
    return first + before[:n] + shift[:n], first + before[n] + shift[n]


def _recover_rejects(con, table, header, bad, starts, scan: Scan) -> None:
    rows = []
    for (_, kind, text, message), line in zip(bad, starts):
        fields = _pad(text or "", len(header)) if kind == "MISSING COLUMNS" else None
        if fields is not None:
            rows.append(fields + [line])
        elif kind == "TOO MANY COLUMNS":
            n = len(next(csv.reader([text or ""]), []))
            scan.rejected.append((line, f"{n} fields where the header has {len(header)}"))
        else:
            scan.rejected.append((line, f"malformed CSV: {(message or kind).splitlines()[0]}"))
    if rows:
        frame = pd.DataFrame(rows, columns=[*header, "_line"])
        con.register("mt_recovered", frame)
        con.execute(f"INSERT INTO {table} SELECT * FROM mt_recovered")
        con.unregister("mt_recovered")
        scan.rows += len(rows)


def _scan_reference(con, path: Path, header: list[str], table: str, scan: Scan) -> None:
    con.execute(f"DELETE FROM {table}")
    scan.rows, scan.rejected, scan.method = 0, [], "reference"
    rows: list[list] = []

    def flush():
        if rows:
            con.register("mt_chunk", pd.DataFrame(rows, columns=[*header, "_line"]))
            con.execute(f"INSERT INTO {table} SELECT * FROM mt_chunk")
            con.unregister("mt_chunk")
            scan.rows += len(rows)
            rows.clear()
    for r in iter_records(path, len(header)):
        if r.fields is None:
            scan.rejected.append((r.line, r.error))
            continue
        rows.append(r.fields + [r.line])
        if len(rows) >= REFERENCE_CHUNK:
            flush()
    flush()


def scan_csv(con: duckdb.DuckDBPyConnection, path: Path, header: list[str], table: str) -> Scan:
    """Every record of ``path`` after its header into the temporary table ``table``."""
    cols = ", ".join(f"{_q(h)} VARCHAR" for h in header)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} ({cols}, _line BIGINT)")
    scan = Scan(table, 0)
    try:
        _scan_duckdb(con, path, header, table, is_gzip(path), scan)
    except _Mismatch:
        _scan_reference(con, path, header, table, scan)
    scan.rejected.sort()
    return scan
