"""Time strings become UTC instants; zone and precision are kept; zoneless times are never
silently taken as UTC."""

import pandas as pd
import pytest

from pipeline.timestamps import PRECISION_DAY, PRECISION_MINUTE, PRECISION_SECOND, parse_times


def parse(*values, tz=None):
    return parse_times(pd.Series(list(values)), assume_tz=tz)


@pytest.mark.parametrize(
    "raw",
    [
        "2016-10-07T20:32:00Z",
        "2016-10-07 16:32:00-04:00",
        "2016-10-07T22:32:00+02:00",
        "Fri, 07 Oct 2016 20:32:00 +0000",  # RSS pubDate
        "Fri, 07 Oct 2016 16:32:00 EDT",
        "Fri Oct 07 20:32:00 +0000 2016",  # Twitter API
    ],
)
def test_stated_zones_all_land_on_the_same_instant(raw):
    p = parse(raw)
    assert p.error == [None]
    assert p.utc.iat[0] == pd.Timestamp("2016-10-07T20:32:00Z")
    assert p.zone_explicit[0]


def test_a_time_without_a_zone_is_an_error_unless_a_zone_is_named():
    p = parse("2016-10-07 16:32")
    assert pd.isna(p.utc.iat[0])
    assert "states no time zone" in p.error[0]
    named = parse("2016-10-07 16:32", tz="America/New_York")
    assert named.utc.iat[0] == pd.Timestamp("2016-10-07T20:32:00Z")
    assert not named.zone_explicit[0]


def test_precision_is_read_from_the_string():
    p = parse("2016-10-07T20:32:05Z", "2016-10-07T20:32Z", "2016-10-07", tz="UTC")
    assert list(p.precision_s) == [PRECISION_SECOND, PRECISION_MINUTE, PRECISION_DAY]


def test_garbage_and_blanks_are_reported_not_guessed():
    p = parse("yesterday-ish", "", None, "2016-13-01T00:00:00Z")
    assert p.error[0] == "unparseable time 'yesterday-ish'"
    assert p.error[1] == p.error[2] == "time is missing"
    assert p.error[3].startswith("unparseable")
    assert p.utc.isna().all()


def test_a_local_time_skipped_by_daylight_saving_is_an_error():
    # 2016-03-13 02:30 did not exist in New York (clocks jumped from 02:00 to 03:00).
    p = parse("2016-03-13 02:30", "2016-03-13 03:30", tz="America/New_York")
    assert p.error[0] is not None
    assert p.utc.iat[1] == pd.Timestamp("2016-03-13T07:30:00Z")


# --- the space of time strings: generated from known instants, read back to them -----------

from datetime import UTC, datetime  # noqa: E402
from datetime import timedelta as _td  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pipeline.timestamps import parse_times as _parse_times  # noqa: E402

INSTANTS = st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2035, 12, 31)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC))
OFFSETS = st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: m - m % 15)
NAMED = {"GMT": 0, "UT": 0, "EST": -300, "EDT": -240, "CST": -360, "CDT": -300, "PST": -480, "PDT": -420}


def _offset_text(minutes: int, colon: bool) -> str:
    sign = "-" if minutes < 0 else "+"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h:02d}:{m:02d}" if colon else f"{sign}{h:02d}{m:02d}"


@given(INSTANTS, OFFSETS, st.sampled_from(["iso", "iso_space", "iso_colonless", "iso_z", "iso_frac", "rfc", "rfc_noday"]))
@settings(max_examples=150, deadline=None)
def test_every_written_form_of_an_instant_reads_back_to_it(instant, offset, form):
    local = instant.astimezone(UTC) + _td(minutes=offset)
    text = {
        "iso": local.strftime("%Y-%m-%dT%H:%M:%S") + _offset_text(offset, True),
        "iso_space": local.strftime("%Y-%m-%d %H:%M:%S") + _offset_text(offset, True),
        "iso_colonless": local.strftime("%Y-%m-%dT%H:%M:%S") + _offset_text(offset, False),
        "iso_z": instant.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "iso_frac": instant.strftime("%Y-%m-%dT%H:%M:%S") + ".250Z",
        "rfc": local.strftime("%a, %d %b %Y %H:%M:%S ") + _offset_text(offset, False),
        "rfc_noday": local.strftime("%d %b %Y %H:%M:%S ") + _offset_text(offset, False),
    }[form]
    p = _parse_times(pd.Series([text]))
    want = pd.Timestamp(instant) + (pd.Timedelta(milliseconds=250) if form == "iso_frac" else pd.Timedelta(0))
    assert p.error == [None], text
    assert p.utc.iat[0] == want, text
    assert bool(p.zone_explicit[0]) and p.precision_s[0] == 1


@given(INSTANTS, st.sampled_from(sorted(NAMED)))
@settings(max_examples=60, deadline=None)
def test_rfc_822_zone_names_read_as_their_offsets(instant, name):
    local = instant + _td(minutes=NAMED[name])
    text = local.strftime("%a, %d %b %Y %H:%M:%S ") + name
    p = _parse_times(pd.Series([text]))
    assert p.utc.iat[0] == pd.Timestamp(instant) and p.error == [None], text


@given(INSTANTS, st.sampled_from(["America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata", "UTC"]),
       st.sampled_from(["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y/%m/%d %H:%M:%S"]))
@settings(max_examples=150, deadline=None)
def test_zoneless_local_times_read_in_the_named_zone(instant, zone, fmt):
    local = instant.astimezone(ZoneInfo(zone))
    text = local.strftime(fmt)
    p = _parse_times(pd.Series([text]), assume_tz=zone)
    naive = local.replace(tzinfo=None, second=local.second if "%S" in fmt else 0)
    folds = {naive.replace(fold=f).replace(tzinfo=ZoneInfo(zone)).utcoffset() for f in (0, 1)}
    if len(folds) > 1:  # the wall time happens twice here: refused, never guessed
        assert p.error[0] and "happens twice" in p.error[0], text
        return
    expected = naive.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    assert p.error == [None] and p.utc.iat[0] == pd.Timestamp(expected), text
    assert not bool(p.zone_explicit[0])
    assert p.precision_s[0] == (1 if "%S" in fmt else 60)


@pytest.mark.parametrize("text, policy, want", [
    ("2016-03-13 02:30:00", "earlier", "2016-03-13T06:30:00Z"),  # skipped in New York: read as EDT
    ("2016-03-13 02:30:00", "later", "2016-03-13T07:30:00Z"),  # ... or as EST
    ("2016-11-06 01:30:00", "earlier", "2016-11-06T05:30:00Z"),  # happens twice: the first (EDT)
    ("2016-11-06 01:30:00", "later", "2016-11-06T06:30:00Z"),  # ... or the second (EST)
])
def test_dst_policies_pick_a_documented_instant(text, policy, want):
    p = _parse_times(pd.Series([text]), assume_tz="America/New_York", dst=policy)
    assert p.error == [None] and p.utc.iat[0] == pd.Timestamp(want)


@pytest.mark.parametrize("text, words", [
    ("2016-03-13 02:30:00", "does not exist in America/New_York"),
    ("2016-11-06 01:30:00", "happens twice in America/New_York"),
])
def test_dst_gaps_and_folds_are_refused_in_plain_words(text, words):
    p = _parse_times(pd.Series([text]), assume_tz="America/New_York")
    assert words in p.error[0] and "--dst" in p.error[0]
    assert "ambiguous=" not in p.error[0] and "nonexistent=" not in p.error[0]  # no pandas argument names
    assert pd.isna(p.utc.iat[0])


def test_the_fast_readings_read_exactly_as_the_general_one():
    """mt_parse_time reads the commonest forms (ISO in UTC to the second, RFC 822 in GMT or with
    a numeric offset) on short paths; every string must read there exactly as the general
    reading reads it: valid ones, and near misses (impossible dates and hours, offsets past
    ±14:00, a wrong weekday, lower case, one-digit days, stray spaces)."""
    import random

    import duckdb

    from pipeline.config import SQL_DIR

    rng = random.Random(11)
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Fry"]
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Foo"]
    strings = []
    for _ in range(4000):
        y, mo, d = rng.choice([1999, 2016, 2024, 2038]), rng.randrange(13), rng.choice([1, 7, 28, 29, 30, 31, 32])
        h, mi, s = rng.choice([0, 9, 23, 24]), rng.choice([0, 32, 59, 60]), rng.choice([0, 5, 59, 61])
        off = rng.choice([0, 60, -240, 330, 840, 841, -840, -900, 959])
        zone = rng.choice(["GMT", "gmt", "UTC", "UT", "EDT", _offset_text(off, False), _offset_text(off, True), "-0000"])
        day = f"{d:02d}" if rng.random() < 0.8 else str(d)
        text = f"{rng.choice(days)}, {day} {months[mo]} {y} {h:02d}:{mi:02d}:{s:02d} {zone}"
        if rng.random() < 0.3:
            text = f"{y}-{mo + 1:02d}-{d:02d}{rng.choice('T ')}{h:02d}:{mi:02d}:{s:02d}Z"
        if rng.random() < 0.1:
            text = rng.choice([" ", "  "]) + text + rng.choice(["", " "])
        strings.append(text)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute((SQL_DIR / "views" / "030_time_macros.sql").read_text())
    con.execute("CREATE TABLE s AS SELECT unnest(?) AS raw", [strings])
    differ = con.execute("""SELECT raw, mt_parse_time(raw, NULL, 'reject') AS fast,
                                   mt_parse_general(nullif(trim(raw), ''), NULL, 'reject') AS general
                            FROM s WHERE fast IS DISTINCT FROM general""").fetchall()
    assert differ == []
    (fast_read,) = con.execute("SELECT count(*) FROM s WHERE mt_parse_time(raw, NULL, 'reject').utc IS NOT NULL").fetchone()
    assert fast_read > 500  # the sample reaches the short paths, not only the near misses (994 of 4000)
