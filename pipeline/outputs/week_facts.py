"""The weekly digest's facts, gathered: one ISO week (UTC) of releases, the stored runs that
tested them, the announcements near each, feed and archive health, and the news items the
coverage chart draws. Everything the digest shows is read here and nowhere else, so rendering
(``digest``) and delivery (``mailer``) never touch the database.

Figures come from the stored run of the claim that tested each release (the `analyze_timing`
DAG, or `media-timing analyze`, makes them): the digest and that claim's report show the same
numbers. A release no stored run covers is listed with the command that tests it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from pipeline.analysis.claims import EventSelector, resolve_relative
from pipeline.analysis.loading import load_events
from pipeline.analysis.results import AnalysisResult, Event
from pipeline.analysis.runs import latest_runs, load_run
from pipeline.analysis.stories import StoryRule, load_story_rules
from pipeline.errors import UserError
from pipeline.outputs.onsets_text import order_summary
from pipeline.outputs.verdict import (
    count_text,
    fmt_p_range,
    fmt_span,
    fmt_time,
    fmt_window,
    reading,
    release_headline,
)

WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")
COVERAGE_HOURS = 12  # the coverage chart shows this many hours either side of a release
COVERAGE_RELEASES = 4  # and at most this many releases
DEFAULT_WINDOW_MINUTES = 120
HOW_TO_TEST = ("No stored analysis tests this release yet. The analyze_timing DAG tests every claim in "
               "claims/ when new data arrives (the all_releases claim covers every release); by hand: "
               "media-timing analyze --claim all_releases")


class WeekError(UserError):
    pass


@dataclass(frozen=True)
class Week:
    label: str
    start: datetime
    end: datetime

    @property
    def span(self) -> str:
        last = self.end - timedelta(days=1)
        return f"{self.start:%a %d %b} – {last:%a %d %b %Y}"


def parse_week(text: str) -> Week:
    m = WEEK_RE.match((text or "").strip())
    if not m:
        raise WeekError(f"week {text!r} is not an ISO week; write it like 2016-W40")
    try:
        start = datetime.fromisocalendar(int(m.group(1)), int(m.group(2)), 1).replace(tzinfo=UTC)
    except ValueError:
        raise WeekError(f"week {text!r} does not exist (ISO years have 52 or 53 weeks)") from None
    return Week(text.strip(), start, start + timedelta(days=7))


def previous_week(now: datetime) -> Week:
    """The last complete ISO week before ``now`` (what a Monday-morning run reports)."""
    y, w, _ = (now.astimezone(UTC) - timedelta(days=7)).isocalendar()
    return parse_week(f"{y}-W{w:02d}")


def weeks_between(first: datetime, last: datetime) -> list[Week]:
    """Every ISO week from the one holding ``first`` to the one holding ``last``."""
    out, t = [], first
    while True:
        y, w, _ = t.isocalendar()
        week = parse_week(f"{y}-W{w:02d}")
        if week.start > last:
            return out
        out.append(week)
        t = week.end


# --- gather ----------------------------------------------------------------------------------

def week_releases(con, week: Week) -> list[Event]:
    return load_events(con, EventSelector(kinds=("leak_release",), after_utc=week.start.isoformat(),
                                          before_utc=week.end.isoformat()))


def _runs_covering(con, release_ids: list[str]) -> dict[str, list[AnalysisResult]]:
    """For each release, the newest stored run of every claim that tested it, most specific
    (fewest releases) first."""
    if not release_ids:
        return {}
    latest = {run_id: (n, claim) for claim, run_id, n in latest_runs(con)}
    if not latest:
        return {}
    rows = con.execute(
        f"""SELECT DISTINCT run_id, release_id FROM results
            WHERE run_id IN ({", ".join("?" * len(latest))}) AND release_id IN ({", ".join("?" * len(release_ids))})""",
        [*latest, *release_ids]).fetchall()
    runs = {run_id: load_run(con, run_id) for run_id in {r for r, _ in rows}}
    out: dict[str, list[AnalysisResult]] = {}
    for run_id, release_id in rows:
        out.setdefault(release_id, []).append(runs[run_id])
    for release_id in out:
        out[release_id].sort(key=lambda r: (len(r.releases), r.claim.id))
    return out


def _stream_rows(run: AnalysisResult, release_id: str) -> list[dict]:
    rows = []
    for s in run.streams:
        t = s.test_of(release_id)
        if t is not None:
            rows.append({"stream": s.stream.spec.label, "curated": s.stream.spec.curated,
                         "coverage": fmt_span(s.stream.coverage.start, s.stream.coverage.end),
                         "count": count_text(t), "expected": f"{t.expected:.1f}" if t.testable else "-",
                         "p": fmt_p_range(t) if t.testable else "n/a", "reading": reading(s, t)})
    return rows


def _near(con, e: Event, window_min: float) -> list[dict]:
    """Announcement events within the window of a release, with signed gaps and their bounds."""
    rows = con.execute(
        """SELECT event_id, title, actor, epoch(ts_utc), epoch(earliest_utc), epoch(latest_utc), source_url
           FROM events WHERE kind = 'announcement'
             AND earliest_utc <= to_timestamp(?) AND latest_utc >= to_timestamp(?)
             AND latest_utc - earliest_utc < INTERVAL 1 DAY
           ORDER BY ts_utc""",
        [e.hi + window_min * 60, e.lo - window_min * 60]).fetchall()
    return [{"id": r[0], "title": r[1], "actor": r[2] or "", "when": fmt_time(r[3], None, True),
             "gap": f"{(r[3] - e.ts) / 60:+.0f} min ({(r[4] - e.hi) / 60:+.0f} to {(r[5] - e.lo) / 60:+.0f})",
             "url": r[6]} for r in rows]


def _block(con, e: Event, runs: list[AnalysisResult]) -> dict:
    run = runs[0] if runs else None
    window = run.claim.window_minutes if run else DEFAULT_WINDOW_MINUTES
    block = {"event": e, "when": f"{fmt_time(e.ts, None, True)} UTC" if not e.day_only
             else f"{fmt_time(e.centre, None, True)[:10]} (day only)",
             "window": fmt_window(window), "near": _near(con, e, window), "rows": [],
             "verdict": None, "source": None, "also": [], "onsets": [], "missing": HOW_TO_TEST if run is None else None}
    if run is None:
        return block
    block["rows"] = _stream_rows(run, e.event_id)
    block["verdict"] = release_headline(run, e) + " Timing is not intent."
    n = len(run.releases)
    block["source"] = (f"From claim {run.claim.id} (run {run.run_id}, {run.claim.surrogates:,} surrogates, "
                       f"seed {run.parameters['seed']}, null {run.claim.null})"
                       + ("" if n == 1 else f"; that claim tests {n} releases together, and these are "
                          "this release's own figures from it") + ".")
    # Story onsets of the run that tested this release alone (a series claim's are not this one's).
    block["onsets"] = order_summary(run.onsets) if run.onsets and n == 1 else []
    block["also"] = [f"{r.claim.id} (run {r.run_id}, {len(r.releases)} releases)" for r in runs[1:]]
    return block


@dataclass
class WeekFacts:
    week: Week
    releases: list[Event]
    blocks: list[dict]
    runs: list[AnalysisResult]
    health: dict
    streams: list[tuple]
    # Minute-precise news items (t: epoch seconds, title) in the hours the coverage chart shows,
    # and the story rules of the first run's claim that mark which are about a release's story.
    coverage_news: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["t", "title"]))
    story_rules: list[StoryRule] = field(default_factory=list)


def gather(con: duckdb.DuckDBPyConnection, week: Week) -> WeekFacts:
    """Everything the week's digest shows, read from the store (stored runs, events, views)."""
    releases = week_releases(con, week)
    covering = _runs_covering(con, [e.event_id for e in releases])
    blocks = [_block(con, e, covering.get(e.event_id, [])) for e in releases]
    runs = list({r.run_id: r for rs in covering.values() for r in rs[:1]}.values())
    streams = con.execute("""SELECT name, role, kind, coalesce(url, attribution, '') FROM sources
                             WHERE kind <> 'catalog' ORDER BY role, name""").fetchall()
    facts = WeekFacts(week, releases, blocks, runs, _health(con, week), streams)
    centres = [b["event"].centre for b in blocks[:COVERAGE_RELEASES]]
    if centres:
        span = COVERAGE_HOURS * 3600
        # Only the hours the chart shows: the items table grows for as long as feeds are polled.
        facts.coverage_news = con.execute(
            """SELECT epoch(i.published_utc) AS t, i.title FROM v_items i
               WHERE i.role = 'news' AND i.minute_usable
                 AND i.published_utc >= to_timestamp(?) AND i.published_utc <= to_timestamp(?)""",
            [min(centres) - span, max(centres) + span]).df()
        facts.story_rules = _story_rules(runs[0] if runs else None)
    return facts


def _story_rules(run: AnalysisResult | None) -> list[StoryRule]:
    spec = (run.claim.displacement or run.claim.pressure) if run else None
    if not run or not spec:
        return []
    path = resolve_relative(run.claim, spec["stories_file"])
    return load_story_rules(path).rules if path.is_file() else []


def _health(con, week: Week) -> dict:
    feeds = con.execute(
        """SELECT count(*) FILTER (WHERE enabled AND consecutive_failures = 0 AND fetches > 0),
                  count(*) FILTER (WHERE enabled AND consecutive_failures > 0),
                  count(*) FILTER (WHERE NOT enabled), count(*)
           FROM v_feed_health""").fetchall()[0]
    failing = con.execute(
        """SELECT name, consecutive_failures, coalesce(disabled_reason, last_error, ''), url FROM v_feed_health
           WHERE consecutive_failures > 0 OR NOT enabled ORDER BY name LIMIT 20""").fetchall()
    feed_gaps = con.execute(
        """SELECT feed, count(*) FILTER (WHERE gap) AS gap_hours FROM feed_coverage(?, ?)
           WHERE hour_utc < ? GROUP BY feed HAVING count(*) FILTER (WHERE gap) > 0
           ORDER BY gap_hours DESC LIMIT 10""", [week.start, week.end, week.end]).fetchall()
    new_sources = con.execute(
        "SELECT name, role, kind FROM sources WHERE created_utc >= ? AND created_utc < ? ORDER BY name",
        [week.start, week.end]).fetchall()
    return {"feeds_ok": feeds[0], "feeds_failing": feeds[1], "feeds_disabled": feeds[2],
            "feeds_total": feeds[3], "failing": failing, "feed_gaps": feed_gaps,
            "archive_gaps": _archive_gaps(con, week), "new_sources": new_sources}


def _archive_gaps(con, week: Week) -> list[dict]:
    """Archives have no polls: per stream, its items this week and its longest stretch without one."""
    rows = con.execute(
        """SELECT s.name, list(epoch(i.published_utc) ORDER BY i.published_utc) FILTER (WHERE i.item_id IS NOT NULL)
           FROM sources s LEFT JOIN items i ON i.source_id = s.source_id
                AND i.published_utc >= ? AND i.published_utc < ?
           WHERE s.kind = 'archive' GROUP BY s.name ORDER BY s.name""", [week.start, week.end]).fetchall()
    out = []
    for name, times in rows:
        times = times or []
        pts = np.array([week.start.timestamp(), *times, week.end.timestamp()])
        gaps = np.diff(pts)
        i = int(np.argmax(gaps))
        out.append({"source": name, "n_items": len(times), "longest_gap_h": f"{gaps[i] / 3600:.0f}",
                    "from": fmt_time(pts[i], None, True), "to": fmt_time(pts[i + 1], None, True)})
    return out


