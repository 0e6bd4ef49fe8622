"""Reading CSV files (plain or gzip) record by record, remembering the line each record started on.

This is the reference reader: Python's csv module in strict mode, streaming, so memory stays
small for any file. A record it cannot read (an unterminated quote, stray text after a closing
quote) is rejected by its line and reading resumes on the next line, so one bad quote never
swallows the rest of the file. Large imports go through ``pipeline.sources.csv_scan``, which reads with
DuckDB and falls back to this reader where its line numbers cannot be checked.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import re
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.errors import UserError

GZIP_MAGIC = b"\x1f\x8b"
READ_CHUNK = 1 << 20
# The most one record may hold, in both readers (DuckDB's default max_line_size): a longer one is
# rejected by its line, never allowed to grow a buffer without bound.
MAX_RECORD = 2_000_000
TOO_LONG = f"a record longer than {MAX_RECORD:,} bytes, the most one row may hold"
csv.field_size_limit(MAX_RECORD)


class CsvFileError(UserError):
    """The file as a whole can't be used (unreadable, no header, a required column missing)."""


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def open_binary(path: Path):
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def truncated_gzip(path: Path, exc: BaseException) -> CsvFileError:
    return CsvFileError(f"{path}: not a complete gzip file ({exc}); was the download cut short?")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            h.update(chunk)
    return h.hexdigest()


_BARE_CR = re.compile(r"(?<=\r)(?!\n)")  # a lone CR ends a line too, as newline='' reads
NOT_UTF8 = "not UTF-8 text; convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)"


def lines(path: Path, undecodable: set[int] | None = None) -> Iterator[str]:
    """Physical lines as text (newlines kept), decoded as UTF-8 (a BOM is dropped). Lines are
    decoded one at a time, so a stray Latin-1 byte costs its own line only: it is given with the
    byte replaced and its number added to ``undecodable``; without that set it is an error."""
    raw = open_binary(path)
    n = 0
    try:
        try:
            for i, data in enumerate(raw):  # split on LF only: no multi-byte character holds one
                if i == 0 and data.startswith(codecs.BOM_UTF8):
                    data = data[len(codecs.BOM_UTF8):]
                bad = False
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    if undecodable is None:
                        raise CsvFileError(f"{path}:{n + 1}: {NOT_UTF8} (byte 0x{data[exc.start]:02x})") from None
                    text, bad = data.decode("utf-8", "replace"), True
                for part in (_BARE_CR.split(text) if "\r" in text else (text,)):
                    if part:
                        n += 1
                        if bad:
                            undecodable.add(n)
                        yield part
        except (EOFError, OSError, zlib.error) as exc:
            raise truncated_gzip(path, exc) from None
    finally:
        raw.close()


def read_header(path: Path, required: list[str]) -> list[str]:
    """The header's column names, checked: present, distinct, holding every required column."""
    try:
        first = next(csv.reader(lines(path), strict=True), None)
    except csv.Error as exc:
        raise CsvFileError(f"{path}:1: the header is not valid CSV: {exc}") from None
    except OSError as exc:
        raise CsvFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not first:
        raise CsvFileError(f"{path}: empty file, no header line")
    header = [h.strip() for h in first]
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise CsvFileError(f"{path}: line 1: column(s) {', '.join(map(repr, twice))} appear more than once in the header")
    missing = [c for c in required if c not in header]
    if missing:
        raise CsvFileError(f"{path}: line 1: missing column(s) {', '.join(missing)}; the header has {', '.join(header)}")
    return header


@dataclass
class Record:
    line: int  # the physical line the record starts on
    fields: list[str] | None  # None when rejected
    error: str | None = None
    span: int = 1  # physical lines it took (a record skipped for bad quoting takes its first only)


def iter_records(path: Path, width: int) -> Iterator[Record]:
    """Every record after the header, good or rejected, with its first line (blank lines are
    not records). Short records are padded; long ones are rejected, unless what is beyond the
    header's width is only empty fields (trailing delimiters)."""
    pending: deque[tuple[int, str]] = deque()
    undecodable: set[int] = set()
    source = enumerate(lines(path, undecodable), start=1)
    next(source, None)  # the header (read_header checked it)
    while True:
        taken: list[tuple[int, str]] = []

        def feed(taken=taken):
            while True:
                item = pending.popleft() if pending else next(source, None)
                if item is None:
                    return
                taken.append(item)
                yield item[1]

        reader = csv.reader(feed(), strict=True)
        try:
            for fields in reader:
                start, span = taken[0][0], len(taken)
                del taken[:]
                if not fields:  # a blank line is not a record
                    continue
                if undecodable and not undecodable.isdisjoint(range(start, start + span)):
                    yield Record(start, None, NOT_UTF8, span)
                    continue
                if len(fields) > width and not any(fields[width:]):
                    fields = fields[:width]  # trailing delimiters (exports often end rows with one)
                if len(fields) > width:
                    yield Record(start, None, f"{len(fields)} fields where the header has {width}", span)
                else:
                    yield Record(start, fields + [""] * (width - len(fields)) if len(fields) < width else fields)
            return
        except csv.Error as exc:
            start = taken[0][0] if taken else 0
            why = str(exc)
            if "unexpected end of data" in why or "EOF" in why:
                why = "a quoted field is never closed (unterminated quote); the row is skipped"
            yield Record(start, None, TOO_LONG if "field limit" in why else f"malformed CSV: {why}")
            pending.extendleft(reversed(taken[1:]))  # read on from the line after its start


@dataclass
class CsvRecords:
    path: Path
    sha256: str
    header: list[str]
    frame: pd.DataFrame  # every column as text ('' for empty), plus `_line`
    rejected: list[tuple[int, str]]  # (line, reason) of records that could not be read


def read_records(path: Path | str, required: list[str]) -> CsvRecords:
    """All records of a (small) CSV file; ``_line`` is the physical line where each starts."""
    path = Path(path)
    if not path.is_file():
        raise CsvFileError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    header = read_header(path, required)
    rows, starts, rejected = [], [], []
    for r in iter_records(path, len(header)):
        if r.fields is None:
            rejected.append((r.line, r.error))
        else:
            rows.append(r.fields)
            starts.append(r.line)
    frame = pd.DataFrame(rows, columns=header, dtype="string").fillna("")
    frame["_line"] = starts
    return CsvRecords(path=path, sha256=file_sha256(path), header=header, frame=frame, rejected=rejected)
