"""The weekly digest for any week: composed from stored runs only, text and HTML rendered with
StrictUndefined for every week the bundled data touches and for empty ones, the same numbers as
the claim's report, untrusted titles escaped."""

from datetime import UTC, datetime

import duckdb
import pytest
from markupsafe import escape

from pipeline.analysis.runs import latest_runs, load_run
from pipeline.outputs.digest import compose, render
from pipeline.outputs.report import template_env, write_report
from pipeline.outputs.verdict import stream_rows
from pipeline.outputs.week_facts import (
    WeekError,
    gather,
    parse_week,
    previous_week,
    weeks_between,
)
from pipeline.store.database import connect

W40 = parse_week("2016-W40")


def rendered(digest) -> tuple[str, str]:
    """Both parts, the HTML as a mail client gets it (images by CID)."""
    return digest.text, digest.html_for(digest.image_sources(lambda n: f"cid:{n}"))


def releases_in(con, week) -> list[tuple[str, str]]:
    """The week's releases, straight from the events table (not through the digest's code)."""
    return con.execute(
        """SELECT event_id, title FROM events WHERE kind = 'leak_release'
           AND latest_utc >= ? AND earliest_utc < ? ORDER BY ts_utc""", [week.start, week.end]).fetchall()


def data_weeks(con):
    first, last = con.execute(
        """SELECT least(min(e.earliest_utc), (SELECT min(published_utc) FROM items)),
                  greatest(max(e.latest_utc), (SELECT max(published_utc) FROM items)) FROM events e""").fetchall()[0]
    return weeks_between(first, last)


def test_every_week_the_data_touches_and_an_empty_one_renders_with_its_content(case_runs):
    with case_runs.read() as con:
        weeks = data_weeks(con)
        assert weeks[0].label == "2016-W24" and weeks[-1].label == "2017-W07"
        weeks.append(parse_week("2026-W48"))  # after the data: nothing at all
        tested = {r for (r,) in con.execute("SELECT DISTINCT release_id FROM results").fetchall()}
        seen_releases = 0
        for week in weeks:
            digest = compose(con, week)
            text, page = rendered(digest)
            expected = releases_in(con, week)
            seen_releases += len(expected)
            n = len(expected)
            assert f"{n} release{'s' if n != 1 else ''}" in digest.subject, week.label
            for part in (text, page):
                assert "Collection health" in part and "What this cannot show" in part, week.label
            if not expected:
                assert "No releases were seen this week" in text and "No releases were seen this week" in page
            for event_id, title in expected:
                assert title in text and str(escape(title)) in page, (week.label, event_id)
            covered = sum(e in tested for e, _ in expected)
            assert text.count("Verdict:") == covered, week.label
            assert text.count("No stored analysis tests this release") == n - covered, week.label
    assert seen_releases >= 40  # every release of the case study was in some week


def test_the_digest_and_the_report_of_a_release_show_the_same_numbers(case_runs, tmp_path):
    with case_runs.read() as con:
        runs = {claim: run_id for claim, run_id, _ in latest_runs(con)}
        report_run = load_run(con, runs["oct7_2016"])
        facts = gather(con, W40)
    (block,) = facts.blocks
    assert block["event"].event_id == "E015"
    assert f"claim oct7_2016 (run {runs['oct7_2016']}" in block["source"]
    report_rows = stream_rows(report_run, "E015")
    digest_rows = [[r["stream"] + (" [curated]" if r["curated"] else ""), r["coverage"], r["count"],
                    r["expected"], r["p"]] for r in block["rows"]]
    assert digest_rows == [r[:5] for r in report_rows]
    labels = [r["stream"] for r in block["rows"]]
    assert labels == ["@HillaryClinton tweets", "@realDonaldTrump tweets",
                      "headline stream (IRA NewsFeed accounts)", "sourced timeline announcements"]
    page = write_report(report_run, tmp_path).read_text()
    for r in block["rows"]:
        assert f"<td>{r['p']}</td>" in page  # the report's table has the digest's p-values


def test_a_series_release_says_its_figures_come_from_the_series_claim(case_runs):
    with case_runs.read() as con:
        facts = gather(con, parse_week("2016-W41"))
    assert len(facts.blocks) == 8
    for b in facts.blocks:
        assert "claim podesta_series" in b["source"] and "tests 36 releases together" in b["source"]
        assert b["also"] and b["also"][0].startswith("all_releases")
    digest_text, page = rendered(compose_read(case_runs, "2016-W41"))
    assert page.count("that claim tests 36 releases together") == 8
    assert digest_text.count("Verdict:") == 8
    _, w40 = rendered(compose_read(case_runs, "2016-W40"))
    assert "@HillaryClinton tweets, from claim oct7_2016" in w40  # the chart says where it is from


def compose_read(ws, label):
    with ws.read() as con:
        return compose(con, parse_week(label))


def test_composing_writes_nothing(case_runs):
    """The digest reads stored runs; it never runs (or stores) an analysis."""
    con = connect(case_runs.db_path, read_only=True)
    try:
        before = con.execute("SELECT count(*) FROM analysis_runs").fetchall()
        digest = compose(con, W40)  # a write on a read-only connection would raise
        assert con.execute("SELECT count(*) FROM analysis_runs").fetchall() == before
    finally:
        con.close()
    assert digest.run_ids


def test_a_release_no_run_covers_says_which_command_tests_it(case_runs):
    with case_runs.write() as con:
        con.execute("""INSERT INTO events (event_id, kind, actor, title, ts_utc, earliest_utc, latest_utc,
                       catalog, imported_utc) VALUES ('X9', 'leak_release', 'Leaker', 'A new leak',
                       '2016-10-05 12:00:00+00', '2016-10-05 12:00:00+00', '2016-10-05 12:01:00+00', 'test', now())""")
    text, page = rendered(compose_read(case_runs, "2016-W40"))
    assert "A new leak" in text and "media-timing analyze --claim all_releases" in text
    assert "media-timing analyze --claim all_releases" in page
    assert text.count("Verdict:") == 1  # E015 still has its figures


def test_an_empty_database_gets_a_digest_too(tmp_path):
    from pipeline.config import load_settings
    from pipeline.store.workspace import Workspace

    ws = Workspace(load_settings().__class__(db_path=tmp_path / "empty.duckdb", data_dir=tmp_path))
    with ws.ensure() as con:
        digest = compose(con, W40)
    text, page = rendered(digest)
    assert "0 releases" in digest.subject and "No releases were seen this week" in page
    assert "feeds 0 ok, 0 failing, 0 disabled (of 0)" in text and "Feeds: 0 ok" in page
    assert digest.run_ids == []
    assert not digest.images


def test_untrusted_titles_are_escaped_and_unsafe_links_are_not_links(case_runs):
    with case_runs.write() as con:
        con.execute("""INSERT INTO events (event_id, kind, actor, title, ts_utc, earliest_utc, latest_utc,
                       source_url, catalog, imported_utc) VALUES ('X1', 'leak_release', '<b>Leaker</b>',
                       '<script>alert(''pwned'')</script> Leak & more', '2016-10-05 12:00:00+00',
                       '2016-10-05 12:00:00+00', '2016-10-05 12:01:00+00', 'JavaScript:alert(1)', 'test', now())""")
    text, page = rendered(compose_read(case_runs, "2016-W40"))
    assert "<script>" not in page and "<b>Leaker" not in page
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; Leak &amp; more" in page
    assert 'href="JavaScript:' not in page and 'href="javascript:' not in page.lower()
    assert "<script>alert('pwned')</script> Leak & more" in text


def test_every_template_renders_with_strict_undefined():
    env = template_env()
    assert env.undefined.__name__ == "StrictUndefined"
    for name in ("digest.html.j2", "digest.txt.j2", "report.html.j2"):
        with pytest.raises(Exception, match="undefined"):
            env.get_template(name).render()  # an incomplete context is an error, never a blank


@pytest.mark.parametrize("bad", ["2016-40", "2016-W54", "W40", "", "2016-W4O"])
def test_weeks_are_iso_weeks(bad):
    with pytest.raises(WeekError, match="ISO week|does not exist"):
        parse_week(bad)


def test_the_previous_week_is_the_last_complete_one():
    monday_morning = datetime(2016, 10, 10, 7, 0, tzinfo=UTC)
    assert previous_week(monday_morning).label == "2016-W40"
    assert W40.start == datetime(2016, 10, 3, tzinfo=UTC) and W40.end == datetime(2016, 10, 10, tzinfo=UTC)
    assert previous_week(datetime(2021, 1, 4, 7, tzinfo=UTC)).label == "2020-W53"  # a 53-week year


def test_the_digest_of_a_week_with_gaps_in_its_streams_shows_them(case_runs):
    text, page = rendered(compose_read(case_runs, "2016-W45"))
    assert "longest stretch without one" in text
    assert "headline stream" not in text.split("Collection health")[1] or "ira_newsfeed: 0 items" in text
    assert "ira_newsfeed: 0 items" in text  # the headline stream ended on 14 Oct: a gap, said so


def test_a_database_from_before_runs_kept_their_facts_is_read(case_db, tmp_path):
    """A run stored without facts (an older version) is not shown as if it were missing data."""
    con = duckdb.connect(str(case_db))
    con.execute("""INSERT INTO analysis_runs VALUES ('old', now(), 'oct7_2016', 'x', 120, 99, 1, '{}', '{}', 'v', NULL)""")
    con.close()
    from pipeline.config import load_settings
    from pipeline.store.workspace import Workspace

    ws = Workspace(load_settings().__class__(db_path=case_db, data_dir=tmp_path))
    text, _ = rendered(compose_read(ws, "2016-W40"))
    assert "No stored analysis tests this release" in text


def test_rendering_reads_nothing_the_gathered_facts_do_not_hold(case_runs):
    """gather -> render -> deliver: once the week's facts are gathered, the digest renders with
    the database closed (and the same as composing it straight from the store)."""
    with case_runs.read() as con:
        facts = gather(con, W40)
        direct = compose(con, W40)
    assert not facts.coverage_news.empty and facts.story_rules
    digest = render(facts)  # the connection is closed here: any read would raise
    assert rendered(digest) == rendered(direct)
    assert set(digest.images) == {"correlogram", "coverage"}
