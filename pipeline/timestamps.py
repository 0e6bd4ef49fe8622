"""Turning source time strings into UTC instants, keeping what the string did and did not say.

A time string says three things we keep: the instant (as UTC), whether a zone was stated, and
how finely it resolves (second, minute, day). Strings without a zone are never silently read as
UTC: the caller either names the zone they are in or gets an error for those rows.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from dateutil import parser as dateutil_parser

# A zone is stated by Z, a numeric offset after a time, or a zone name.
_ZONE = re.compile(
    r"(?:\d(?:Z|z)\b|\d\s*[+-]\d{2}:?\d{2}\b|\b(?:UTC|GMT|UT|[ECMP][SD]T|Z)\b)"
)
_HAS_SECONDS = re.compile(r"\d{1,2}:\d{2}:\d{2}")
_HAS_MINUTES = re.compile(r"\d{1,2}:\d{2}")

PRECISION_SECOND = 1
PRECISION_MINUTE = 60
PRECISION_DAY = 86400


def precision_of(raw: str) -> int:
    """Seconds the string resolves: 1, 60 or 86400 (a date without a time of day)."""
    if _HAS_SECONDS.search(raw):
        return PRECISION_SECOND
    if _HAS_MINUTES.search(raw):
        return PRECISION_MINUTE
    return PRECISION_DAY


def states_zone(raw: str) -> bool:
    return bool(_ZONE.search(raw))


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


def parse_times(raw: pd.Series, assume_tz: str | None = None) -> ParsedTimes:
    """Parse a column of time strings.

    Rows with a stated zone are converted to UTC. Rows without one are read in ``assume_tz``
    (an IANA name such as America/New_York) when given, and are errors otherwise.
    """
    text = raw.astype("string").str.strip()
    n = len(text)
    missing = text.isna() | (text == "")
    filled = text.fillna("")
    zone = filled.map(states_zone).to_numpy(dtype=bool)
    precision = filled.map(precision_of).to_numpy(dtype=np.int64)
    errors: list[str | None] = [None] * n

    utc = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    with_zone = ~missing.to_numpy() & zone
    without_zone = ~missing.to_numpy() & ~zone

    if with_zone.any():
        parsed = pd.to_datetime(text[with_zone], format="ISO8601", utc=True, errors="coerce")
        utc[with_zone] = parsed.astype("datetime64[us, UTC]")
    if without_zone.any() and assume_tz:
        naive = pd.to_datetime(text[without_zone], format="ISO8601", errors="coerce")
        if getattr(naive.dt, "tz", None) is None:
            local = naive.dt.tz_localize(assume_tz, ambiguous="NaT", nonexistent="NaT")
            utc[without_zone] = local.dt.tz_convert("UTC").astype("datetime64[us, UTC]")

    # Whatever ISO 8601 could not read (RFC 2822 dates, odd formats) goes row by row.
    pending = np.flatnonzero(utc.isna().to_numpy() & ~missing.to_numpy())
    for i in pending:
        s = filled.iat[i]
        dt = _parse_one(s)
        if dt is None:
            errors[i] = f"unparseable time {s!r}"
            continue
        if dt.tzinfo is None and not assume_tz:
            errors[i] = f"time {s!r} states no time zone (name one with --timezone)"
            continue
        if dt.tzinfo is None:
            try:
                ts = pd.Timestamp(dt).tz_localize(assume_tz, ambiguous="raise", nonexistent="raise")
            except Exception as exc:  # pytz/zoneinfo raise several types for DST gaps and folds
                errors[i] = f"time {s!r} does not exist or is ambiguous in {assume_tz}: {exc}"
                continue
        else:
            ts = pd.Timestamp(dt)
        utc.iat[i] = ts.tz_convert("UTC")
    for i in np.flatnonzero(missing.to_numpy()):
        errors[i] = "time is missing"
    return ParsedTimes(utc=utc, zone_explicit=zone, precision_s=precision, error=errors)


def now_utc() -> datetime:
    return datetime.now(UTC)
