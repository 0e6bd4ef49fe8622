"""The weekly digest: one ISO week (UTC) of releases, coincidences and verdicts, as email.

Composing reads the database and stores the week's analysis as a run (claim id
``weekly:<week>``), so every figure in the email can be re-derived with the SQL it prints.
Sending lives in ``pipeline.mailer``; this module only builds the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from . import charts
from .analysis import AnalysisResult, is_stored, prepare_claim, run_prepared, store_result
from .claims import Claim, EventSelector, StreamSpec
from .config import CLAIMS_DIR
from .report import template_env
from .timing.stories import load_story_rules, story_matrix
from .verdict import ALWAYS, fmt_p, fmt_time, release_sentence, strength

WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")
STORIES = CLAIMS_DIR / "stories_2016.yaml"
DIGEST_SURROGATES = 1999
DIGEST_DRAWS = 50
COVERAGE_HOURS = 12


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
    m = WEEK_RE.match(text.strip())
    if not m:
        raise ValueError(f"week {text!r} is not an ISO week like 2016-W40")
    try:
        start = datetime.fromisocalendar(int(m.group(1)), int(m.group(2)), 1).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"week {text!r} does not exist") from None
    return Week(text.strip(), start, start + timedelta(days=7))


def previous_week(now: datetime) -> Week:
    """The last complete ISO week before ``now`` (what a Monday-morning run reports)."""
    y, w, _ = (now.astimezone(UTC) - timedelta(days=7)).isocalendar()
    return parse_week(f"{y}-W{w:02d}")


def weekly_claim(con: duckdb.DuckDBPyConnection, week: Week) -> Claim | None:
    """The week's releases against every announcement stream whose collection covers the week
    (and the curated announcement events, marked as such). None when no release fell in it."""
    releases = EventSelector(kinds=("leak_release",), after_utc=week.start.isoformat(),
                             before_utc=week.end.isoformat())
    clause, params = releases.sql()
    if not con.execute(f"SELECT 1 FROM events WHERE {clause} LIMIT 1", params).fetchall():
        return None
    names = [r[0] for r in con.execute(
        """SELECT s.name FROM sources s JOIN items i USING (source_id)
           WHERE s.role = 'announcement' GROUP BY s.name
           HAVING min(i.published_utc) <= ? AND max(i.published_utc) >= ? ORDER BY s.name""",
        [week.start, week.end]).fetchall()]
    streams = [StreamSpec(label=n, source=n) for n in names]
    streams.append(StreamSpec(label="sourced announcements (curated)", curated=True,
                              events=EventSelector(kinds=("announcement",)),
                              caveat="Curated events were researched because they sit near releases: not evidence."))
    y, w, _ = week.start.isocalendar()
    return Claim(
        id=f"weekly:{week.label}", title=f"Releases of {week.label} ({week.span})", statement="",
        releases=releases, streams=tuple(streams), window_minutes=120, surrogates=DIGEST_SURROGATES,
        seed=y * 100 + w, uncertainty_draws=DIGEST_DRAWS,
        correlogram={"bin_minutes": 20, "max_lag_minutes": 240}, display_tz="America/New_York",
    )


@dataclass
class Digest:
    week: Week
    subject: str
    html_for: callable  # (image_src: dict[name -> src]) -> html
    text: str
    images: dict[str, bytes] = field(default_factory=dict)
    run_id: str | None = None

    def preview(self, out: Path) -> Path:
        """Write the HTML with its charts as files beside it."""
        out.parent.mkdir(parents=True, exist_ok=True)
        srcs = {}
        for name, png in self.images.items():
            f = out.parent / f"{out.stem}_{name}.png"
            f.write_bytes(png)
            srcs[name] = f.name
        out.write_text(self.html_for(srcs), encoding="utf-8")
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
        msg.add_alternative(self.html_for({n: "cid:" + c[1:-1] for n, c in cids.items()}), subtype="html")
        html_part = msg.get_payload()[1]
        for name, png in self.images.items():
            html_part.add_related(png, "image", "png", cid=cids[name], filename=f"{name}.png")
        return msg


def _coverage_png(con, result: AnalysisResult, stories_path: Path) -> bytes | None:
    """Hourly news items around each release, and the share about the release's story."""
    rels = result.releases[:4]
    centres = [(e.lo + e.hi) / 2 if e.uncertain else e.ts for e in rels]
    span = COVERAGE_HOURS * 3600
    # Only the hours the charts show: the items table grows for as long as feeds are polled.
    news = con.execute(
        """SELECT epoch(i.published_utc) AS t, i.title FROM items i JOIN sources s USING (source_id)
           WHERE s.role = 'news' AND i.published_utc IS NOT NULL AND i.time_zone_explicit
             AND i.published_utc >= to_timestamp(?) AND i.published_utc <= to_timestamp(?)""",
        [min(centres) - span, max(centres) + span]).df()
    if news.empty or not stories_path.exists():
        return None
    rules = load_story_rules(stories_path)
    matrix = story_matrix(news["title"], rules)
    plt = charts._pyplot()
    fig, axes = plt.subplots(len(rels), 1, figsize=(8, 2.4 * len(rels)), squeeze=False)
    t = news["t"].to_numpy()
    drawn = False
    for ax, e, centre in zip(axes[:, 0], rels, centres):
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


def _health(con, week: Week) -> dict:
    feeds = con.execute(
        """SELECT count(*) FILTER (WHERE enabled AND consecutive_failures = 0 AND fetches > 0),
                  count(*) FILTER (WHERE enabled AND consecutive_failures > 0),
                  count(*) FILTER (WHERE NOT enabled), count(*)
           FROM v_feed_health""").fetchall()[0]
    failing = con.execute(
        """SELECT name, consecutive_failures, coalesce(disabled_reason, last_error), url FROM v_feed_health
           WHERE consecutive_failures > 0 OR NOT enabled ORDER BY name LIMIT 20""").fetchall()
    feed_gaps = con.execute(
        """SELECT feed, count(*) FILTER (WHERE gap) AS gap_hours FROM feed_coverage(?, ?)
           WHERE hour_utc < ? GROUP BY feed HAVING count(*) FILTER (WHERE gap) > 0
           ORDER BY gap_hours DESC LIMIT 10""", [week.start, week.end, week.end]).fetchall()
    # Archives have no polls: show, per stream, its longest stretch without a single item.
    archive_gaps = []
    for (name,) in con.execute("SELECT name FROM sources WHERE kind = 'archive' ORDER BY name").fetchall():
        times = con.execute(
            """SELECT epoch(published_utc) FROM items JOIN sources USING (source_id)
               WHERE name = ? AND published_utc >= ? AND published_utc < ? ORDER BY 1""",
            [name, week.start, week.end]).fetchall()
        pts = np.array([week.start.timestamp()] + [r[0] for r in times] + [week.end.timestamp()])
        gaps = np.diff(pts)
        i = int(np.argmax(gaps))
        archive_gaps.append({"source": name, "n_items": len(times), "longest_gap_h": gaps[i] / 3600,
                             "from": fmt_time(pts[i], None, True), "to": fmt_time(pts[i + 1], None, True)})
    new_sources = con.execute(
        "SELECT name, role, kind, coalesce(url, attribution) FROM sources WHERE created_utc >= ? AND created_utc < ? ORDER BY name",
        [week.start, week.end]).fetchall()
    return {"feeds_ok": feeds[0], "feeds_failing": feeds[1], "feeds_disabled": feeds[2],
            "feeds_total": feeds[3], "failing": failing, "feed_gaps": feed_gaps,
            "archive_gaps": archive_gaps, "new_sources": new_sources}


def _release_blocks(result: AnalysisResult) -> list[dict]:
    blocks = []
    window = result.claim.window_minutes
    for i, e in enumerate(result.releases):
        near = []
        for s in result.streams:
            t = s.releases[i]
            near.append({"stream": s.stream.spec.label, "curated": s.stream.spec.curated,
                         "sentence": release_sentence(s, t, window), "count": t.count_median,
                         "expected": t.expected, "p": t.pvalue, "p_min": t.pvalue_min,
                         "p_max": t.pvalue_max, "testable": t.testable})
        honest = [n["p"] for n in near if not n["curated"] and n["testable"]]
        best = min(honest) if honest else float("nan")
        blocks.append({"event": e, "near": near, "best_p": best,
                       "verdict": f"{strength(best).capitalize()} (smallest p = {fmt_p(best)} across "
                                  f"{len(honest)} complete streams; null {result.claim.null}, ±{window:g} min). "
                                  "Timing is not intent."})
    return blocks


def _announcements_near(con, result: AnalysisResult) -> dict[str, list]:
    """Announcement events within each release's window, with signed gaps (and their bounds)."""
    out = {}
    for e in result.releases:
        rows = con.execute(
            """SELECT event_id, title, actor, epoch(ts_utc), epoch(earliest_utc), epoch(latest_utc), source_url
               FROM events WHERE kind = 'announcement'
                 AND earliest_utc <= to_timestamp(?) AND latest_utc >= to_timestamp(?)
                 AND latest_utc - earliest_utc < INTERVAL 1 DAY
               ORDER BY ts_utc""",
            [e.hi + result.claim.window_minutes * 60, e.lo - result.claim.window_minutes * 60]).fetchall()
        out[e.event_id] = [{"id": r[0], "title": r[1], "actor": r[2], "when": fmt_time(r[3], None, True),
                            "gap": (r[3] - e.ts) / 60, "gap_lo": (r[4] - e.hi) / 60, "gap_hi": (r[5] - e.lo) / 60,
                            "url": r[6]} for r in rows]
    return out


def compose(con: duckdb.DuckDBPyConnection, week: Week, *, stories_path: Path = STORIES) -> Digest:
    """Build the week's digest; stores the week's analysis run if it is new."""
    claim = weekly_claim(con, week)
    result = None
    images: dict[str, bytes] = {}
    if claim is not None:
        prep = prepare_claim(con, claim)
        result = run_prepared(con, prep)
        if not is_stored(con, prep.run_id):
            store_result(con, result)
        corr = next((s for s in result.streams if s.correlogram is not None and not s.stream.spec.curated), None)
        if corr is not None:
            images["correlogram"] = charts.correlogram_png(corr.correlogram, corr.stream.spec.label)
        coverage = _coverage_png(con, result, stories_path)
        if coverage:
            images["coverage"] = coverage
    health = _health(con, week)
    n = len(result.releases) if result else 0
    subject = f"media-timing weekly digest {week.label} ({week.span}): {n} release{'s' if n != 1 else ''}"
    context = {
        "week": week, "result": result, "blocks": _release_blocks(result) if result else [],
        "near": _announcements_near(con, result) if result else {}, "health": health,
        "caveats": list(ALWAYS) + ["One week's coincidences are chosen by the calendar, not by merit: "
                                   "read them as leads to check, not findings."],
        "streams": con.execute(
            """SELECT name, role, kind, coalesce(url, attribution, '') FROM sources
               WHERE kind <> 'catalog' ORDER BY role, name""").fetchall(),
        "sql": (f"SELECT release_id, stream, observed, pvalue, pvalue_min, pvalue_max, qvalue\n"
                f"FROM results WHERE run_id = '{result.run_id}' AND statistic = 'count_within_window'\n"
                f"ORDER BY release_id, stream;") if result else
               (f"SELECT * FROM v_events WHERE kind = 'leak_release'\n"
                f"  AND latest_utc >= '{week.start.isoformat()}' AND earliest_utc < '{week.end.isoformat()}';"),
    }
    env = template_env()
    html_t = env.get_template("digest.html.j2")
    text = env.get_template("digest.txt.j2").render(**context, img={})
    return Digest(week=week, subject=subject, text=text, images=images,
                  html_for=lambda srcs: html_t.render(**context, img=srcs),
                  run_id=result.run_id if result else None)
