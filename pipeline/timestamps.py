"""Turning source time strings into UTC instants, keeping what the string did and did not say.

A time string says three things we keep: the instant (as UTC), whether a zone was stated, and
how finely it resolves (second, minute, day). Strings without a zone are never silently read as
UTC: the caller either names the zone they are in or gets an error for those rows.
"""

from __future__ import annotations

import email.utils
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from dateutil import parser as dateutil_parser

from pipeline.config import SQL_DIR

PRECISION_SECOND = 1
PRECISION_MINUTE = 60
PRECISION_DAY = 86400


@dataclass
class ParsedTimes:
    """Column-wise result; ``utc`` is NaT exactly where ``error`` is set."""

    utc: pd.Series  # datetime64[us, UTC]
    zone_explicit: np.ndarray  # bool
    precision_s: np.ndarray  # int
    error: list[str | None]


def _parse_one(raw: str) -> datetime | None:
    try:
        return email.utils.parsedate_to_datetime(raw)  # RFC 822/2822, e.g. RSS pubDate
    except (TypeError, ValueError, IndexError):
        pass
    try:
        return dateutil_parser.parse(raw)
    except (ValueError, OverflowError):
        return None


DST_POLICIES = ("reject", "earlier", "later")
PROBLEMS = {
    "missing": lambda s, zone: "time is missing",
    "no_zone": lambda s, zone: f"time {s!r} states no time zone (name one with --timezone)",
    "offset": lambda s, zone: f"time {s!r} has an offset outside ±14:00, which no zone has",
    "nonexistent": lambda s, zone: (f"time {s!r} does not exist in {zone}: the clocks skip it when summer "
                                    "time starts (--dst earlier or --dst later reads it anyway)"),
    "ambiguous": lambda s, zone: (f"time {s!r} happens twice in {zone}: the clocks go back when summer time "
                                  "ends (--dst earlier or --dst later picks one)"),
}
_QUERY = None
_CONNECTION: tuple[int, object] | None = None


def time_query() -> str:
    """The SQL every source's times go through (sql/queries/parse_times.sql)."""
    global _QUERY
    if _QUERY is None:
        _QUERY = (SQL_DIR / "queries" / "parse_times.sql").read_text()
    return _QUERY


def _connection():
    """An in-memory DuckDB with the time macros, one per process.

    Single-threaded (the batches are small), and closed before any fork: a DuckDB instance's
    worker threads can hold locks at the moment of a fork, and the child then deadlocks the
    first time it opens DuckDB itself. Each process opens its own when it first needs one.
    """
    global _CONNECTION
    import duckdb

    if _CONNECTION is None or _CONNECTION[0] != os.getpid():
        con = duckdb.connect(config={"threads": 1})
        con.execute("SET TimeZone = 'UTC'")
        con.execute((SQL_DIR / "views" / "030_time_macros.sql").read_text())
        _CONNECTION = (os.getpid(), con)
    return _CONNECTION[1]


def _close_before_fork() -> None:
    global _CONNECTION
    if _CONNECTION is not None and _CONNECTION[0] == os.getpid():
        _CONNECTION[1].close()
    _CONNECTION = None


os.register_at_fork(before=_close_before_fork)


def row_by_row(s: str, assume_tz: str | None, dst: str):
    """The strings the SQL could not read: (instant or None, error or None)."""
    dt = _parse_one(s)
    if dt is None:
        return None, f"unparseable time {s!r}"
    if dt.tzinfo is not None and abs(dt.utcoffset().total_seconds()) > 14 * 3600:
        return None, PROBLEMS["offset"](s, None)
    if dt.tzinfo is None and not assume_tz:
        return None, PROBLEMS["no_zone"](s, None)
    if dt.tzinfo is None:
        shift = {"earlier": pd.Timedelta(hours=-1), "later": pd.Timedelta(hours=1)}.get(dst, "raise")
        ambiguous = {"earlier": True, "later": False}.get(dst, "raise")
        try:
            ts = pd.Timestamp(dt).tz_localize(assume_tz, ambiguous=ambiguous, nonexistent=shift)
        except Exception as exc:  # zoneinfo and pytz raise several types for DST gaps and folds
            kind = "ambiguous" if "ambiguous" in str(exc).lower() else "nonexistent"
            return None, PROBLEMS[kind](s, assume_tz)
    else:
        ts = pd.Timestamp(dt)
    try:
        return ts.tz_convert("UTC"), None
    except (OverflowError, ValueError):
        return None, f"time {s!r} is out of range"


def parse_times(raw: pd.Series, assume_tz: str | None = None, dst: str = "reject") -> ParsedTimes:
    """Parse a column of time strings, as sql/queries/parse_times.sql reads them.

    Rows with a stated zone are converted to UTC. Rows without one are read in ``assume_tz``
    (an IANA name such as America/New_York) when given, and are errors otherwise; a local time
    that does not exist or happens twice there is an error unless ``dst`` is earlier or later.
    What the SQL cannot read is tried row by row (RFC 822 oddities, dateutil's forms).
    """
    text = raw.astype("string").reset_index(drop=True)
    con = _connection()
    con.register("time_input", pd.DataFrame({"i": np.arange(len(text), dtype=np.int64), "raw": text}))
    try:
        out = con.execute(time_query() + " ORDER BY i", {"zone": assume_tz, "dst": dst}).df()
    finally:
        con.unregister("time_input")
    utc = pd.Series(out["utc"], dtype="datetime64[us, UTC]") if len(out) else pd.Series([], dtype="datetime64[us, UTC]")
    zone = out["zone_stated"].to_numpy(dtype=bool)
    precision = out["precision_s"].fillna(PRECISION_DAY).to_numpy(dtype=np.int64)
    errors: list[str | None] = [None] * len(text)
    for i, problem in zip(np.flatnonzero(out["problem"].notna().to_numpy()), out["problem"].dropna()):
        ts, errors[i] = resolve(text.iat[i], problem, assume_tz, dst)
        utc.iat[i] = pd.NaT if ts is None else ts
    return ParsedTimes(utc=utc, zone_explicit=zone, precision_s=precision, error=errors)


def resolve(s, problem: str, assume_tz: str | None, dst: str):
    """A string the SQL flagged: (instant or None, error or None). Those it could not read
    ('unread') are tried row by row; the others are errors, in words."""
    if problem == "unread":
        return row_by_row(s.strip(), assume_tz, dst)
    return None, PROBLEMS[problem](s.strip() if isinstance(s, str) else s, assume_tz)


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso_z(t: float) -> str:
    """Epoch seconds as ISO 8601 UTC to the second, e.g. 2016-10-07T20:32:00Z."""
    return datetime.fromtimestamp(round(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str, *, end: bool = False) -> datetime:
    """An instant a user typed: 2016-10-07, 2016-10-07T18:00Z or any ISO 8601 time; a time
    without a zone is UTC. With ``end``, a bare date means the last second of that day (a
    window "to 2016-10-08" includes the 8th)."""
    raw = str(text).strip()
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date or ISO 8601 time; write it like 2016-10-06 or "
                         "2016-10-07T18:00Z") from None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    if end and len(raw) == 10:
        t += timedelta(days=1) - timedelta(seconds=1)
    return t.astimezone(UTC)
