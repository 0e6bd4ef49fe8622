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
# A numeric offset ending the string, after a time: +05:30, -0400.
_OFFSET = re.compile(r"\d(?:\.\d+)?\s*([+-])(\d{2}):?(\d{2})$")
MAX_OFFSET_MINUTES = 14 * 60  # UTC-12:00 .. UTC+14:00 are the zones in use
_HAS_MINUTES = re.compile(r"\d{1,2}:\d{2}")

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


# RFC 822 zone names and their offsets; other names are ambiguous and count as no zone.
_RFC822_ZONES = {"UT": "+0000", "UTC": "+0000", "GMT": "+0000", "Z": "+0000",
                 "EST": "-0500", "EDT": "-0400", "CST": "-0600", "CDT": "-0500",
                 "MST": "-0700", "MDT": "-0600", "PST": "-0800", "PDT": "-0700"}
_RFC822_NAME = re.compile(r"\s(" + "|".join(_RFC822_ZONES) + r")$")
_RFC822_FORMATS = ("%a, %d %b %Y %H:%M:%S %z", "%d %b %Y %H:%M:%S %z", "%a, %d %b %Y %H:%M %z")


def _vector_parse(text: pd.Series, rows: np.ndarray, out: pd.Series) -> None:
    """Fill ``out`` where ``rows`` parse as ISO 8601, then as RFC 2822 (the RSS pubDate form)."""
    if not rows.any():
        return
    iso = pd.to_datetime(text[rows], format="ISO8601", utc=True, errors="coerce")
    out[rows] = iso.astype("datetime64[us, UTC]")
    left = rows & out.isna().to_numpy()
    if not left.any():
        return
    rfc = text[left].str.replace(_RFC822_NAME, lambda m: " " + _RFC822_ZONES[m.group(1)], regex=True)
    for fmt in _RFC822_FORMATS:
        parsed = pd.to_datetime(rfc, format=fmt, utc=True, errors="coerce")
        hit = parsed.notna().to_numpy()
        if hit.any():
            out[rfc.index[hit]] = parsed[hit].astype("datetime64[us, UTC]")
            rfc = rfc[~hit]
        if rfc.empty:
            break


def parse_times(raw: pd.Series, assume_tz: str | None = None) -> ParsedTimes:
    """Parse a column of time strings.

    Rows with a stated zone are converted to UTC. Rows without one are read in ``assume_tz``
    (an IANA name such as America/New_York) when given, and are errors otherwise.
    Vectorised for ISO 8601 and RFC 2822; anything else is tried row by row.
    """
    text = raw.astype("string").str.strip().reset_index(drop=True)
    n = len(text)
    missing = (text.isna() | (text == "")).to_numpy()
    filled = text.fillna("")
    zone = filled.str.contains(_ZONE, regex=True).to_numpy(dtype=bool)
    precision = np.where(filled.str.contains(_HAS_SECONDS, regex=True).to_numpy(dtype=bool), PRECISION_SECOND,
                         np.where(filled.str.contains(_HAS_MINUTES, regex=True).to_numpy(dtype=bool),
                                  PRECISION_MINUTE, PRECISION_DAY))
    errors: list[str | None] = [None] * n

    utc = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    _vector_parse(text, ~missing & zone, utc)
    without_zone = ~missing & ~zone
    if without_zone.any() and assume_tz:
        naive = pd.to_datetime(text[without_zone], format="ISO8601", errors="coerce")
        if getattr(naive.dt, "tz", None) is None:
            local = naive.dt.tz_localize(assume_tz, ambiguous="NaT", nonexistent="NaT")
            utc[without_zone] = local.dt.tz_convert("UTC").astype("datetime64[us, UTC]")

    # Whatever the vectorised forms could not read goes row by row.
    pending = np.flatnonzero(utc.isna().to_numpy() & ~missing)
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
        try:
            utc.iat[i] = ts.tz_convert("UTC")
        except (OverflowError, ValueError):
            errors[i] = f"time {s!r} is out of range"
    for i in np.flatnonzero(missing):
        errors[i] = "time is missing"
    _refuse_impossible_offsets(filled, utc, errors)
    return ParsedTimes(utc=utc, zone_explicit=zone, precision_s=precision, error=errors)


def _refuse_impossible_offsets(text: pd.Series, utc: pd.Series, errors: list) -> None:
    """An offset beyond ±14:00 (a typo such as +99:00) is no zone on Earth: unparseable, never
    silently shifted by days."""
    parts = text.str.extract(_OFFSET)
    minutes = pd.to_numeric(parts[1], errors="coerce") * 60 + pd.to_numeric(parts[2], errors="coerce")
    for i in np.flatnonzero((minutes > MAX_OFFSET_MINUTES).fillna(False).to_numpy(dtype=bool)):
        utc.iat[i] = pd.NaT
        errors[i] = f"time {text.iat[i]!r} has offset {parts[0].iat[i]}{parts[1].iat[i]}:{parts[2].iat[i]}, outside ±14:00"


def now_utc() -> datetime:
    return datetime.now(UTC)
