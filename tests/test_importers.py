"""Importing timelines and streams: idempotent, bad rows named by file and line, good rows kept,
nothing half-written."""

import gzip

import pandas as pd
import pytest

from pipeline.config import CASE_2016_DIR
from pipeline.sources.csvfile import CsvFileError
from pipeline.sources.import_items import import_items
from pipeline.sources.importers import import_events
from pipeline.store.database import query_one

HEADER = "event_id,kind,actor,title,ts_utc,earliest_utc,latest_utc,confidence\n"


def count(con, table):
    return query_one(con, f"SELECT count(*) FROM {table}")[0]


def test_the_bundled_timeline_imports_once(con):
    first = import_events(con, CASE_2016_DIR / "timeline_2016.csv")
    assert (first.rows_read, first.new, first.rejected) == (66, 66, [])
    second = import_events(con, CASE_2016_DIR / "timeline_2016.csv")
    assert (second.new, second.updated, second.unchanged) == (0, 0, 66)
    assert count(con, "events") == 66
    e015 = con.execute("SELECT ts_utc, earliest_utc, latest_utc, ts_raw FROM events WHERE event_id='E015'").fetchall()[0]
    assert e015[0] == pd.Timestamp("2016-10-07T20:32:00Z")
    assert e015[3] == "2016-10-07T16:32:00-04:00"  # the catalog's own local string is kept


def test_bad_rows_are_named_by_line_and_good_rows_load(con, tmp_path):
    f = tmp_path / "timeline.csv"
    f.write_text(
        HEADER
        + "A1,leak_release,X,Good one,2016-10-07T20:32:00Z,2016-10-07T20:32:00Z,2016-10-07T20:33:00Z,high\n"
        + "A2,leak_release,X,Bad time,2016-10-07T25:99:00Z,2016-10-07T20:32:00Z,2016-10-07T20:33:00Z,high\n"
        + 'A3,announcement,X,"Multi\nline title",2016-10-07T20:00:00Z,2016-10-07T19:00:00Z,2016-10-07T21:00:00Z,medium\n'
        + "A4,rumour,X,Bad kind,2016-10-07T20:00:00Z,2016-10-07T20:00:00Z,2016-10-07T20:00:00Z,high\n"
        + "A5,announcement,X,Inverted,2016-10-07T20:00:00Z,2016-10-07T21:00:00Z,2016-10-07T22:00:00Z,high\n"
        + "A6,announcement,X,No zone,2016-10-07 20:00,2016-10-07T20:00:00Z,2016-10-07T20:00:00Z,high\n"
    )
    report = import_events(con, f)
    assert report.new == 2
    assert [r.split(": ", 1)[0] for r in report.rejected] == [f"{f}:3", f"{f}:6", f"{f}:7", f"{f}:8"]
    assert "ts_utc: unparseable time" in report.rejected[0]
    assert "kind 'rumour' is not one of" in report.rejected[1]
    assert "earliest_utc <= ts_utc <= latest_utc" in report.rejected[2]
    assert "states no time zone" in report.rejected[3]
    assert sorted(r[0] for r in con.execute("SELECT event_id FROM events").fetchall()) == ["A1", "A3"]
    ledger = con.execute("SELECT rows_read, rows_new, rows_rejected FROM imports").fetchall()
    assert ledger == [(6, 2, 4)]


def test_a_corrected_catalog_row_updates_the_event(con, tmp_path):
    f = tmp_path / "t.csv"
    row = "A1,leak_release,X,Title,{t},2016-10-07T20:00:00Z,2016-10-07T21:00:00Z,high\n"
    f.write_text(HEADER + row.format(t="2016-10-07T20:30:00Z"))
    import_events(con, f)
    f.write_text(HEADER + row.format(t="2016-10-07T20:45:00Z"))
    again = import_events(con, f)
    assert (again.new, again.updated) == (0, 1)
    assert query_one(con, "SELECT ts_utc FROM events")[0] == pd.Timestamp("2016-10-07T20:45:00Z")


def test_a_missing_column_stops_the_file_with_its_name(con, tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("event_id,kind,title,ts_utc\nA1,leak_release,T,2016-10-07T20:30:00Z\n")
    with pytest.raises(CsvFileError, match=r"t.csv: line 1: missing column\(s\) earliest_utc, latest_utc"):
        import_events(con, f)
    assert count(con, "events") == 0


def test_a_gzip_stream_imports_once_and_keeps_raw_times(con):
    path = CASE_2016_DIR / "trump_tweets_2016.csv.gz"
    kw = dict(source="trump", role="announcement", time_column="created_at_utc",
              text_column="text", id_column="tweet_id")
    first = import_items(con, path, **kw)
    assert (first.rows_read, first.new, first.rejected) == (946, 946, [])
    assert import_items(con, path, **kw).new == 0
    assert count(con, "items") == 946
    raw, utc, zone, prec = con.execute(
        "SELECT published_raw, published_utc, time_zone_explicit, time_precision_s FROM items "
        "WHERE guid = '784609194234306560'").fetchall()[0]  # 'Here is my statement.'
    assert raw == "2016-10-08T04:19:43Z"
    assert utc == pd.Timestamp("2016-10-08T04:19:43Z")
    assert zone and prec == 1


def test_a_stream_without_ids_dedups_on_time_and_text(con, tmp_path):
    f = tmp_path / "s.csv.gz"
    with gzip.open(f, "wt") as g:
        g.write("when,text\n2016-10-07T20:00:00Z,hello\n2016-10-07T20:00:00Z,hello\n2016-10-07T20:01:00Z,hello\n")
    report = import_items(con, f, source="s", time_column="when", text_column="text")
    assert (report.new, report.duplicates) == (2, 1)
    assert import_items(con, f, source="s", time_column="when", text_column="text").new == 0


def test_zoneless_stream_times_need_a_named_zone(con, tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("when,text\n2016-10-07 16:32,a\n2016-10-07T20:33:00Z,b\n")
    report = import_items(con, f, source="s", time_column="when", text_column="text")
    assert report.new == 1 and "states no time zone" in report.rejected[0]
    named = import_items(con, f, source="s2", time_column="when", text_column="text",
                         timezone="America/New_York")
    assert named.new == 2
    flags = con.execute("SELECT published_utc, time_flags, time_zone_explicit FROM v_items WHERE source='s2' "
                        "ORDER BY 1").fetchall()
    # The zone was named by the importer: explicit, usable, and its provenance kept.
    assert flags == [(pd.Timestamp("2016-10-07T20:32:00Z"), ["zone_named"], True),
                     (pd.Timestamp("2016-10-07T20:33:00Z"), [], True)]
    options = con.execute("SELECT options ->> 'timezone' FROM imports WHERE source_name = 's2'").fetchall()
    assert options == [("America/New_York",)]
    from pipeline.analysis.claims import StreamSpec
    from pipeline.analysis.loading import load_stream

    assert load_stream(con, StreamSpec(label="s2", source="s2")).n == 2  # none excluded as "no zone"


def test_future_times_are_flagged(con, tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("when,text\n2099-01-01T00:00:00Z,later\n")
    import_items(con, f, source="s", time_column="when", text_column="text")
    assert query_one(con, "SELECT time_flags FROM items")[0] == ["future"]


def test_a_source_keeps_its_role(con, tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("when,text\n2016-10-07T20:33:00Z,b\n")
    import_items(con, f, source="s", time_column="when", text_column="text", role="news")
    from pipeline.store.items import SourceConflict

    with pytest.raises(SourceConflict, match="already exists as a news archive"):
        import_items(con, f, source="s", time_column="when", text_column="text", role="announcement")


def test_identical_posts_by_different_authors_are_not_merged_and_repeats_are_named(con, tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("when,text,who\n"
                 "2016-10-07T20:00:00Z,RT @wikileaks: Podesta emails,alice\n"
                 "2016-10-07T20:00:00Z,RT @wikileaks: Podesta emails,bob\n"
                 "2016-10-07T20:00:00Z,RT @wikileaks: Podesta emails,alice\n")
    report = import_items(con, f, source="s", time_column="when", text_column="text", author_column="who")
    assert (report.new, report.duplicates) == (2, 1)
    assert report.duplicate_examples == ["line 4 repeats line 2"]
    assert sorted(r[0] for r in con.execute("SELECT author FROM items").fetchall()) == ["alice", "bob"]
    # Without an author column the file cannot tell them apart, and says which lines it merged.
    blind = import_items(con, f, source="s2", time_column="when", text_column="text")
    assert (blind.new, blind.duplicates) == (1, 2)
    assert blind.duplicate_examples == ["line 3 repeats line 2", "line 4 repeats line 2"]


def test_snowflake_ids_give_the_bundled_tweets_their_milliseconds(con, tmp_path):
    """The bundled Trump tweets: ids decode to times within the stated second, to the ms."""
    from datetime import datetime

    src = CASE_2016_DIR / "trump_tweets_2016.csv.gz"
    import_items(con, src, source="t", time_column="created_at_utc", text_column="text", id_column="tweet_id",
                 snowflake=True)
    rows = con.execute("""SELECT guid, published_raw, published_utc, time_flags FROM items
                          WHERE source_id = (SELECT source_id FROM sources WHERE name = 't')""").fetchall()
    assert len(rows) == 946
    first = next(r for r in rows if r[0] == "771145576381427712")
    assert first[2].isoformat(timespec="milliseconds") == "2016-09-01T00:40:07.258+00:00"  # ((id >> 22) + 1288834974657) ms
    assert first[1] == "2016-09-01T00:40:07Z" and "snowflake" in first[3]
    ok = [r for r in rows if "snowflake" in r[3]]
    assert len(ok) == 946 and all(
        0 <= (r[2] - datetime.fromisoformat(r[1].replace("Z", "+00:00"))).total_seconds() < 1 for r in ok)
    # Coarse times (a date) take the id's time; an id that disagrees keeps the column's, flagged.
    f = tmp_path / "coarse.csv"
    f.write_text("id,day,text\n771145576381427712,2016-09-01,a\n771145576381427713,2016-09-03,b\n12345,2016-09-01,c\n")
    import_items(con, f, source="c", time_column="day", text_column="text", id_column="id", timezone="UTC",
                 snowflake=True)
    got = dict(con.execute("""SELECT title, list_string_agg(time_flags) || ' ' || strftime(published_utc, '%H:%M:%S')
                              FROM items WHERE source_id = (SELECT source_id FROM sources WHERE name = 'c')
                              GROUP BY ALL""").fetchall())
    assert got["a"].endswith("00:40:07") and "snowflake" in got["a"]
    assert "snowflake_mismatch" in got["b"] and got["b"].endswith("00:00:00")
    assert "snowflake" not in got["c"]  # not a snowflake at all: left alone
