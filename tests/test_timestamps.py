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
