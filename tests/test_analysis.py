"""Claims against the real 2016 data: the verdict's facts, stored runs, reruns that add nothing."""

import dataclasses

import pytest

from pipeline.analysis.analyze import run_claim
from pipeline.analysis.claims import ClaimError, load_claim, parse_claim
from pipeline.analysis.runs import load_run, store_result
from pipeline.outputs.verdict import render_text, verdict
from pipeline.store.database import open_db, query_one
from pipeline.timing.registry import MODELS as NULLS


@pytest.fixture
def oct7(case_db):
    with open_db(case_db) as con:
        result = run_claim(con, load_claim("oct7_2016"), surrogates=999, draws=20)
        yield con, result


def test_the_named_announcements_and_their_gaps(oct7):
    _, r = oct7
    gaps = {c.event.event_id: (c.gap_best_min, c.gap_lo_min, c.gap_hi_min, c.order) for c in r.competitors}
    # DHS/ODNI 'around 3:30 pm' = 19:15-19:45Z; the release 20:32Z (to the minute).
    assert gaps["E012"] == (-62.0, -78.0, -47.0, "announcement first")
    assert gaps["E013"] == (-30.0, -31.0, -29.0, "announcement first")


def test_every_stream_is_tested_and_the_curated_one_is_marked(oct7):
    _, r = oct7
    by = {s.stream.spec.label: s for s in r.streams}
    assert set(by) == {"@HillaryClinton tweets", "@realDonaldTrump tweets",
                       "headline stream (IRA NewsFeed accounts)", "sourced timeline announcements"}
    curated = by["sourced timeline announcements"]
    assert curated.stream.spec.curated
    assert curated.stream.excluded > 0  # day-only announcements can't sit in a 2 h window
    clinton = by["@HillaryClinton tweets"].releases[0]
    # Clinton tweeted at 20:02:25, 20:55:13 and 19:00: three within ±120 min of 20:32.
    assert clinton.count_median == 3 and clinton.testable
    assert 0 < clinton.pvalue <= 1 and clinton.candidate_weeks >= 9
    ira = by["headline stream (IRA NewsFeed accounts)"].releases[0]
    assert ira.candidate_weeks == 2  # the stream covers two weeks: the verdict must say so
    assert not any(s.releases[0].qvalue != s.releases[0].qvalue for s in r.streams if not s.stream.spec.curated)


def test_the_verdict_carries_its_null_window_pvalue_and_caveats(oct7):
    _, r = oct7
    text = render_text(r)
    for needle in ("19:30", "20:02", "20:32", "-62 min", "-30 min", "shuffle-weekday-hour",
                   "±120 min", "999 surrogates", "seed 20161007", "never proof of intent",
                   "chosen after the fact", "Curated", "not evidence"):
        assert needle in text, needle
    v = verdict(r)
    assert v.headline.startswith("WikiLeaks")
    assert any("came last" in line for line in v.lines)


def test_a_run_is_stored_once(oct7):
    con, r = oct7
    assert store_result(con, r) is True
    n = query_one(con, "SELECT count(*) FROM results WHERE run_id = ?", [r.run_id])[0]
    assert n >= 4
    again = run_claim(con, load_claim("oct7_2016"), surrogates=999, draws=20)
    assert again.run_id == r.run_id
    assert store_result(con, again) is False
    assert query_one(con, "SELECT count(*) FROM results")[0] == n
    assert query_one(con, "SELECT count(*) FROM analysis_runs")[0] == 1
    other = run_claim(con, load_claim("oct7_2016"), surrogates=999, draws=20, seed=1)
    assert other.run_id != r.run_id


def test_the_series_claim_carries_day_only_uncertainty(case_db):
    with open_db(case_db) as con:
        r = run_claim(con, load_claim("podesta_series"), surrogates=199, draws=10)
    assert len(r.releases) == 36
    clinton = r.streams[0]
    assert clinton.draws == 10
    assert clinton.pooled_pvalue_min < clinton.pooled_pvalue_max
    ira = r.streams[2]
    assert 0 < sum(t.testable for t in ira.releases) < 36  # only 1-14 Oct is covered
    assert all(t.reason for t in ira.releases if not t.testable)


def test_claim_files_are_checked(tmp_path):
    doc = {"id": "x", "title": "t", "releases": {"event_ids": ["E1"]},
           "streams": [{"source": "s"}], "null": "coin-toss"}
    with pytest.raises(ClaimError, match="null 'coin-toss' is not one of"):
        parse_claim(doc, "x.yaml")
    doc["null"] = "jitter"
    doc["streams"] = [{"source": "s", "events": {"kinds": ["announcement"]}}]
    with pytest.raises(ClaimError, match="exactly one of 'source', 'events' or 'role'"):
        parse_claim(doc, "x.yaml")
    with pytest.raises(ClaimError, match="no claim 'nope'"):
        load_claim("nope")


@pytest.mark.parametrize("null", sorted(NULLS))
def test_null_options_are_checked_against_what_each_null_takes(null):
    doc = {"id": "x", "title": "t", "releases": {"event_ids": ["E1"]}, "streams": [{"source": "s"}],
           "null": null, "null_options": {"bucket_minutes": 60}}
    with pytest.raises(ClaimError, match="takes no option 'bucket_minutes'"):
        parse_claim(doc, "x.yaml")
    for option, default in NULLS[null].options().items():  # every declared option is accepted
        doc["null_options"] = {option: default}
        assert parse_claim(doc, "x.yaml").null_options == {option: default}


def test_the_command_line_offers_every_registered_null():
    from pipeline.cli import build_parser

    analyze = build_parser()._subparsers._group_actions[0].choices["analyze"]
    (null,) = [a for a in analyze._actions if a.dest == "null"]
    assert set(null.choices) == set(NULLS)


def test_a_claim_naming_missing_events_says_what_to_do(case_db):
    claim = dataclasses.replace(load_claim("oct7_2016"), releases=parse_claim(
        {"id": "x", "title": "t", "releases": {"event_ids": ["E999"]}, "streams": []}).releases)
    from pipeline.analysis.analyze import AnalysisError

    with open_db(case_db) as con, pytest.raises(AnalysisError, match="E999.*import the timeline"):
        run_claim(con, claim)


def test_a_stored_run_reads_back_as_the_same_result(oct7):
    """Outputs render stored runs: what they show must not depend on whether the run was fresh."""

    con, r = oct7
    store_result(con, r)
    back = load_run(con, r.run_id)
    assert render_text(back) == render_text(r)
    assert [c.order for c in back.competitors] == [c.order for c in r.competitors]
    s0, b0 = r.streams[2], back.streams[2]
    assert b0.correlogram is not None
    assert b0.correlogram.counts.tolist() == s0.correlogram.counts.tolist()
    assert b0.stream.nearby.tolist() == s0.stream.nearby.tolist() and b0.stream.nearby.size > 0
    assert back.pressure.equals(r.pressure.reset_index(drop=True))


def test_labels_and_caveats_come_from_the_sources(oct7):
    _, r = oct7
    by = {s.stream.spec.source: s.stream.spec for s in r.streams if s.stream.spec.source}
    assert by["clinton_tweets"].label == "@HillaryClinton tweets"
    assert by["ira_newsfeed"].label == "headline stream (IRA NewsFeed accounts)"
    assert "lagged view" in by["ira_newsfeed"].caveat


def test_a_role_stream_is_one_stream_per_source_of_the_role(case_db):
    with open_db(case_db) as con:
        r = run_claim(con, load_claim("all_releases"), surrogates=99, draws=2)
    labels = {s.stream.spec.label for s in r.streams}
    assert labels == {"@HillaryClinton tweets", "@realDonaldTrump tweets", "headline stream (IRA NewsFeed accounts)"}
    assert len(r.releases) == 40


def test_a_role_with_no_sources_is_skipped_not_fatal(case_db):
    claim = parse_claim({"id": "x", "title": "t", "releases": {"event_ids": ["E015"]},
                         "streams": [{"role": "release"}, {"source": "trump_tweets"}]})
    with open_db(case_db) as con:
        r = run_claim(con, claim, surrogates=99, draws=2)
    assert [s.stream.spec.source for s in r.streams] == ["trump_tweets"]


def test_windows_are_whole_minutes(tmp_path):
    doc = {"id": "x", "title": "t", "releases": {"event_ids": ["E1"]}, "streams": [{"source": "s"}]}
    for bad in (7.5, 0, -5, "soon"):
        with pytest.raises(ClaimError, match="window_minutes"):
            parse_claim({**doc, "window_minutes": bad}, "x.yaml")


def test_the_views_say_who_came_first_in_the_terminal_s_words(case_db):
    from pipeline.timing.gaps import order_of

    words = {order_of(-1, -0.5), order_of(0.5, 1), order_of(-1, 1)}
    with open_db(case_db) as con:
        said = {r[0] for r in con.execute("SELECT came_first FROM release_neighbours(window_minutes := 240)").fetchall()}
        oct7 = dict(con.execute("SELECT event_id, came_first FROM release_neighbours(window_minutes := 120) "
                                "WHERE release_id = 'E015'").fetchall())
    assert said <= words and len(said) >= 2
    assert oct7["E012"] == oct7["E013"] == "announcement first"


def test_one_definition_of_a_usable_time_for_streams_and_release_events(tmp_path, capsys):
    """v_items says which times every consumer may use: a stream tests only minute-precise,
    zoned, past times; a release event may be known to the day, never from the future."""
    from pipeline.analysis.claims import StreamSpec
    from pipeline.analysis.loading import load_stream
    from pipeline.cli import main
    from pipeline.store.database import open_db
    from pipeline.store.release_events import events_from_release_items

    f = tmp_path / "rel.csv"
    f.write_text("when,text\n2016-10-07T20:32:00Z,minute\n2016-10-07,day only\n"
                 "2016-10-07T16:32:00,zone named\n2999-01-01T00:00:00Z,future\n")
    db = tmp_path / "x.duckdb"
    main(["--db", str(db), "import", "items", str(f), "--source", "rel", "--role", "release",
          "--time-column", "when", "--text-column", "text", "--timezone", "UTC"])
    capsys.readouterr()
    with open_db(db) as con:
        flags = dict(con.execute("SELECT title, (time_usable, minute_usable) FROM v_items").fetchall())
        stream = load_stream(con, StreamSpec(source="rel", label="rel"))
        made = events_from_release_items(con)
    assert flags.get("minute") == (True, True)
    assert flags.get("day only") == (True, False)
    assert flags.get("zone named") == (True, True)
    assert flags.get("future") == (False, False)
    assert stream.n == 2
    assert made["usable"] == 3


def test_displacement_counts_only_minute_precise_news_and_pressure_takes_dates(case_db, tmp_path, capsys):
    """A headline known only to the day cannot be placed in a six-hour window; it can be counted
    in its day. Both inputs come from the same stream through v_items."""
    from pipeline.analysis.analyze import prepare_claim
    from pipeline.cli import main
    from pipeline.store.database import open_db

    f = tmp_path / "more.csv"
    f.write_text("when,text,who\n2016-10-08,Podesta emails leaked: day-only copy,someone\n")
    assert main(["--db", str(case_db), "import", "items", str(f), "--source", "ira_newsfeed",
                 "--time-column", "when", "--text-column", "text", "--author-column", "who",
                 "--timezone", "UTC"]) in (0, 1)
    capsys.readouterr()
    with open_db(case_db) as con:
        prep = prepare_claim(con, load_claim("oct7_2016"), surrogates=99, draws=2)
    day_only = "Podesta emails leaked: day-only copy"
    assert day_only not in set(prep.displacement_news.titles)
    assert day_only in set(prep.pressure_news.titles)
    assert len(prep.pressure_news.times) == len(prep.displacement_news.times) + 1
