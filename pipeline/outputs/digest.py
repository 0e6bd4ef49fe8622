"""The weekly digest, rendered: the gathered facts of one ISO week (``week_facts.gather``) as a
plain-text and an HTML email with its charts inline. Rendering reads nothing; sending lives in
``pipeline.outputs.mailer`` (delivery and its send-once ledger).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import duckdb

from pipeline.outputs import charts
from pipeline.outputs.report import template_env
from pipeline.outputs.verdict import ALWAYS
from pipeline.outputs.week_facts import (
    COVERAGE_HOURS,
    COVERAGE_RELEASES,
    Week,
    WeekFacts,
    gather,
)

IMAGES = ("correlogram", "coverage")


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


# --- render ----------------------------------------------------------------------------------

def _correlogram_png(facts: WeekFacts) -> tuple[bytes, str] | None:
    for run in facts.runs:
        s = next((s for s in run.streams if s.correlogram is not None and not s.stream.spec.curated), None)
        if s is not None:
            n = len(run.releases)
            caption = (f"{s.stream.spec.label}, from claim {run.claim.id}"
                       + (f" (pooled over that claim's {n} releases, not only this week's)" if n > 1 else ""))
            return charts.correlogram_png(s.correlogram, s.stream.spec.label), caption
    return None


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
    """The week's digest from what is stored: gather (reads), then render; writes nothing."""
    return render(gather(con, week))


def render(facts: WeekFacts) -> Digest:
    """The digest of gathered facts: text, HTML and charts. Reads nothing."""
    week = facts.week
    images: dict[str, bytes] = {}
    corr = _correlogram_png(facts)
    if corr:
        images["correlogram"] = corr[0]
    coverage = charts.coverage_png([b["event"] for b in facts.blocks[:COVERAGE_RELEASES]],
                                   facts.coverage_news, facts.story_rules, COVERAGE_HOURS)
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
