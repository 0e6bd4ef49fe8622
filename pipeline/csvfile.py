"""Reading CSV files (plain or gzip) into columns, remembering the line each record started on."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import UserError

GZIP_MAGIC = b"\x1f\x8b"


class CsvFileError(UserError):
    """The file as a whole can't be used (unreadable, no header, a required column missing)."""


@dataclass
class CsvRecords:
    path: Path
    sha256: str
    header: list[str]
    frame: pd.DataFrame  # every column as text ('' for empty), plus `_line`


def _open_text(data: bytes) -> io.StringIO:
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise CsvFileError(f"not a complete gzip file ({exc}); was the download cut short?") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvFileError(f"not UTF-8 text at byte {exc.start}") from None
    return io.StringIO(text, newline="")


def read_records(path: Path | str, required: list[str]) -> CsvRecords:
    """All records of a CSV file; ``_line`` is the physical line where each record starts."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CsvFileError(f"{path}: cannot read: {exc.strerror}") from None
    sha = hashlib.sha256(data).hexdigest()
    try:
        reader = csv.reader(_open_text(data))
        header = next(reader, None)
        if not header:
            raise CsvFileError("empty file, no header line")
        header = [h.strip() for h in header]
        twice = sorted({h for h in header if header.count(h) > 1})
        if twice:
            raise CsvFileError(f"line 1: column(s) {', '.join(map(repr, twice))} appear more than once in the header")
        missing = [c for c in required if c not in header]
        if missing:
            raise CsvFileError(
                f"line 1: missing column(s) {', '.join(missing)}; the header has {', '.join(header)}"
            )
        rows, lines = [], []
        start = reader.line_num + 1
        width = len(header)
        for record in reader:
            if record:  # a blank line is not a record
                rows.append((record + [""] * width)[:width] if len(record) != width else record)
                lines.append(start)
            start = reader.line_num + 1
    except CsvFileError as exc:
        raise CsvFileError(f"{path}: {exc}") from None
    except csv.Error as exc:
        raise CsvFileError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None
    frame = pd.DataFrame(rows, columns=header, dtype="string").fillna("")
    frame["_line"] = lines
    return CsvRecords(path=path, sha256=sha, header=header, frame=frame)
