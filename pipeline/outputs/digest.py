"""The weekly digest: one ISO week (UTC) of releases, coincidences and verdicts, as email.

Composing only reads: each release's figures come from the stored run of the claim that tested
it (the `analyze_timing` DAG, or `media-timing analyze`, makes them), so the digest and that
claim's report show the same numbers. A release no stored run covers is listed with the command
that tests it. Sending lives in ``pipeline.outputs.mailer``; this module only builds the message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.analysis.analyze import load_events
from pipeline.analysis.claims import EventSelector, resolve_relative
from pipeline.analysis.results import AnalysisResult, Event
from pipeline.analysis.runs import latest_runs, load_run
from pipeline.errors import UserError
from pipeline.outputs import charts
from pipeline.outputs.report import template_env
from pipeline.outputs.verdict import (
    ALWAYS,
    count_text,
    fmt_p_range,
    fmt_span,
    fmt_time,
    fmt_window,
    reading,
    release_headline,
)
from pipeline.timing.stories import load_story_rules, story_matrix

WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")
COVERAGE_HOURS = 12
DEFAULT_WINDOW_MINUTES = 120
IMAGES = ("correlogram", "coverage")
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


@dataclass
class Digest:
    week: Week
    subject: str
    html_for: Callable[[dict], str]  # image name -> src (or None) in, HTML out
    text: str
    images: dict[str, bytes] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str | None:
        """The runs the figures come from, for the digests ledger."""
        return ",".join(self.run_ids) or None

    def image_sources(self, src_of: Callable[[str], str]) -> dict[str, str | None]:
        return {name: (src_of(name) if name in self.images else None) for name in IMAGES}

    def preview(self, out: Path) -> Path:
        """Write the HTML with its charts as files beside it."""
        out.parent.mkdir(parents=True, exist_ok=True)
        for name, png in self.images.items():
            (out.parent / f"{out.stem}_{name}.png").write_bytes(png)
        out.write_text(self.html_for(self.image_sources(lambda n: f"{out.stem}_{n}.png")), encoding="utf-8")
        return out

    def message(self, *, sender: str, recipients: list[str], message_id: str | None = None) -> EmailMessage:
        """multipart/alternative: plain text, then HTML with the charts inline (CID)."""
        msg = EmailMessage()
        msg["Subject"] = self.subject
        msg["From"] = sender
        msg["To"] = ", ".join(recipients)
        msg["Message-ID"] = message_id or make_msgid(domain="media-timing")
        msg.set_content(self.text)
        cids = {name: make_msgid(idstring=name, domain="media-timing") for name in self.images}
        msg.add_alternative(self.html_for(self.image_sources(lambda n: "cid:" + cids[n][1:-1])), subtype="html")
        html_part = msg.get_payload()[1]
        for name, png in self.images.items():
            html_part.add_related(png, "image", "png", cid=cids[name], filename=f"{name}.png")
        return msg


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
             "verdict": None, "source": None, "also": [], "missing": HOW_TO_TEST if run is None else None}
    if run is None:
        return block
    block["rows"] = _stream_rows(run, e.event_id)
    block["verdict"] = release_headline(run, e) + " Timing is not intent."
    n = len(run.releases)
    block["source"] = (f"From claim {run.claim.id} (run {run.run_id}, {run.claim.surrogates:,} surrogates, "
                       f"seed {run.parameters['seed']}, null {run.claim.null})"
                       + ("" if n == 1 else f"; that claim tests {n} releases together, and these are "
                          "this release's own figures from it") + ".")
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


def gather(con: duckdb.DuckDBPyConnection, week: Week) -> WeekFacts:
    releases = week_releases(con, week)
    covering = _runs_covering(con, [e.event_id for e in releases])
    blocks = [_block(con, e, covering.get(e.event_id, [])) for e in releases]
    runs = list({r.run_id: r for rs in covering.values() for r in rs[:1]}.values())
    streams = con.execute("""SELECT name, role, kind, coalesce(url, attribution, '') FROM sources
                             WHERE kind <> 'catalog' ORDER BY role, name""").fetchall()
    return WeekFacts(week, releases, blocks, runs, _health(con, week), streams)


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


# --- charts ----------------------------------------------------------------------------------

def _correlogram_png(facts: WeekFacts) -> tuple[bytes, str] | None:
    for run in facts.runs:
        s = next((s for s in run.streams if s.correlogram is not None and not s.stream.spec.curated), None)
        if s is not None:
            n = len(run.releases)
            caption = (f"{s.stream.spec.label}, from claim {run.claim.id}"
                       + (f" (pooled over that claim's {n} releases, not only this week's)" if n > 1 else ""))
            return charts.correlogram_png(s.correlogram, s.stream.spec.label), caption
    return None


def _story_rules(run: AnalysisResult | None):
    spec = (run.claim.displacement or run.claim.pressure) if run else None
    if not spec:
        return []
    path = resolve_relative(run.claim, spec["stories_file"])
    return load_story_rules(path) if path.is_file() else []


def _coverage_png(con, facts: WeekFacts) -> bytes | None:
    """Hourly news items around each release, and those about the release's story."""
    blocks = facts.blocks[:4]
    if not blocks:
        return None
    centres = [b["event"].centre for b in blocks]
    span = COVERAGE_HOURS * 3600
    # Only the hours the chart shows: the items table grows for as long as feeds are polled.
    news = con.execute(
        """SELECT epoch(i.published_utc) AS t, i.title FROM v_items i
           WHERE i.role = 'news' AND i.minute_usable
             AND i.published_utc >= to_timestamp(?) AND i.published_utc <= to_timestamp(?)""",
        [min(centres) - span, max(centres) + span]).df()
    if news.empty:
        return None
    rules = _story_rules(facts.runs[0] if facts.runs else None)
    matrix = story_matrix(news["title"], rules) if rules else pd.DataFrame(index=news.index)
    plt = charts._pyplot()
    fig, axes = plt.subplots(len(blocks), 1, figsize=(8, 2.4 * len(blocks)), squeeze=False)
    t = news["t"].to_numpy()
    drawn = False
    for ax, b, centre in zip(axes[:, 0], blocks, centres):
        e = b["event"]
        story = next((r.name for r in rules if r.matches(pd.Series([e.title]))[0]), None)
        edges = centre + np.arange(-COVERAGE_HOURS, COVERAGE_HOURS + 1) * 3600
        total, _ = np.histogram(t, bins=edges)
        hours = np.arange(-COVERAGE_HOURS, COVERAGE_HOURS) + 0.5
        ax.bar(hours, total, width=0.9, color="#ced4da", label="news items per hour")
        if story:
            about, _ = np.histogram(t[matrix[story].to_numpy()], bins=edges)
            ax.bar(hours, about, width=0.9, color="#1c7ed6", label=f"about '{story}'")
        ax.axvline(0, color="#c92a2a", lw=1.5)
        ax.set_title(f"{e.event_id}: {e.title[:70]}", fontsize=9, loc="left")
        ax.set_xlabel("hours from the release (" + ("midpoint of its interval" if e.uncertain else "exact") + ")", fontsize=8)
        ax.legend(fontsize=7, frameon=False, loc="upper left")
        drawn = drawn or total.sum() > 0
    if not drawn:
        plt.close(fig)
        return None
    fig.tight_layout()
    return charts._png(fig)


# --- render ----------------------------------------------------------------------------------

def _sql(facts: WeekFacts) -> str:
    week = facts.week
    if facts.runs:
        ids = ", ".join(f"'{r.run_id}'" for r in facts.runs)
        rels = ", ".join(f"'{e.event_id}'" for e in facts.releases)
        return (f"SELECT run_id, release_id, stream, observed, pvalue, pvalue_min, pvalue_max, qvalue\n"
                f"FROM results WHERE run_id IN ({ids})\n  AND release_id IN ({rels})\n"
                f"  AND statistic = 'count_within_window'\nORDER BY release_id, stream;")
    return (f"SELECT * FROM v_events WHERE kind = 'leak_release'\n"
            f"  AND latest_utc >= '{week.start.isoformat()}' AND earliest_utc < '{week.end.isoformat()}';")


def compose(con: duckdb.DuckDBPyConnection, week: Week) -> Digest:
    """Build the week's digest from what is stored; writes nothing."""
    facts = gather(con, week)
    images: dict[str, bytes] = {}
    corr = _correlogram_png(facts)
    if corr:
        images["correlogram"] = corr[0]
    coverage = _coverage_png(con, facts)
    if coverage:
        images["coverage"] = coverage
    n = len(facts.releases)
    subject = f"media-timing weekly digest {week.label} ({week.span}): {n} release{'s' if n != 1 else ''}"
    context = {
        "week": week, "blocks": facts.blocks, "health": facts.health, "streams": facts.streams,
        "runs": [{"claim": r.claim.id, "run_id": r.run_id, "null": r.streams[0].null_description,
                  "surrogates": f"{r.claim.surrogates:,}", "seed": r.parameters["seed"],
                  "draws": r.claim.uncertainty_draws} for r in facts.runs],
        "correlogram_caption": corr[1] if corr else "",
        "caveats": list(ALWAYS) + ["One week's coincidences are chosen by the calendar, not by merit: "
                                   "read them as leads to check, not findings."],
        "sql": _sql(facts),
    }
    env = template_env()
    html_t = env.get_template("digest.html.j2")
    text = env.get_template("digest.txt.j2").render(**context, img={name: None for name in IMAGES})
    return Digest(week=week, subject=subject, text=text, images=images,
                  html_for=lambda srcs: html_t.render(**context, img=srcs),
                  run_ids=[r.run_id for r in facts.runs])
