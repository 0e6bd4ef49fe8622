"""Words for results: the verdict table, plain-language lines and the caveats every verdict carries.

The terminal, the HTML report and the email digest all take their wording from here, so a
verdict reads the same wherever it is met.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from .analysis import AnalysisResult, Event, ReleaseTest, StreamResult

ALWAYS = (
    "Timing is evidence of coincidence, never proof of intent: a p-value says how unusual the "
    "timing is under the null model, not why it happened.",
)
AFTER_THE_FACT = (
    "This coincidence was singled out because it looked odd. One coincidence chosen after the "
    "fact is weak evidence whatever its p-value; a series of releases tested together is stronger "
    "(see the podesta_series claim)."
)
COMMON_CAUSE = (
    "Clustering can have a common cause (a busy news day, a debate, a storm) that moves both "
    "streams; the null keeps weekday and hour, not the news agenda."
)


def shorten(text: str, width: int) -> str:
    return textwrap.shorten(text, width, placeholder="…")


def fmt_time(t: float, tz: str | None = None, with_date: bool = False) -> str:
    dt = datetime.fromtimestamp(t, UTC)
    if tz:
        dt = dt.astimezone(ZoneInfo(tz))
    return dt.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")


def fmt_p(p: float) -> str:
    if p is None or (isinstance(p, float) and np.isnan(p)):
        return "n/a"
    return f"{p:.2g}" if p < 0.01 else f"{p:.2f}"


def fmt_p_range(t: ReleaseTest | StreamResult, pooled: bool = False) -> str:
    lo, mid, hi = ((t.pooled_pvalue_min, t.pooled_pvalue, t.pooled_pvalue_max) if pooled
                   else (t.pvalue_min, t.pvalue, t.pvalue_max))
    if any(x is None or np.isnan(x) for x in (lo, mid, hi)):
        return "n/a"
    if fmt_p(lo) == fmt_p(hi):
        return fmt_p(mid)
    return f"{fmt_p(mid)} ({fmt_p(lo)}-{fmt_p(hi)})"


def event_when(e: Event, tz: str | None) -> str:
    """The best time and, when it is an interval, its bounds; day-only events say so."""
    if e.day_only:
        day = fmt_time((e.lo + e.hi) / 2, tz, with_date=True)[:10]
        return f"{day} (day only)"
    core = fmt_time(e.ts, None, with_date=True)
    if e.uncertain:
        core += f" ({fmt_time(e.lo)}-{fmt_time(e.hi)})"
    return core


def strength(p: float) -> str:
    if p is None or np.isnan(p):
        return "not testable"
    if p <= 0.01:
        return "strong evidence of clustering beyond chance"
    if p <= 0.05:
        return "some evidence of clustering beyond chance"
    if p <= 0.10:
        return "weak evidence of clustering"
    return "no evidence of clustering beyond chance"


def release_sentence(stream: StreamResult, t: ReleaseTest, window_min: float) -> str:
    label = stream.stream.spec.label
    if not t.testable:
        return f"{label}: not testable ({t.reason})."
    k = (f"{t.count_median:g}" if t.count_min == t.count_max
         else f"{t.count_median:g} (between {t.count_min} and {t.count_max})")
    side = "fewer than" if t.count_median < t.expected else "more than"
    text = (f"{label}: {k} within ±{window_min:g} min, {side} the {t.expected:.1f} expected at "
            f"comparable times; p = {fmt_p_range(t)}: {strength(t.pvalue)}.")
    if stream.stream.spec.curated:
        text += " Curated stream: not evidence."
    return text


@dataclass
class Verdict:
    headline: str
    lines: list[str]
    caveats: list[str]


def verdict(result: AnalysisResult) -> Verdict:
    claim = result.claim
    honest = [s for s in result.streams if not s.stream.spec.curated]
    lines = []
    single = len(result.releases) == 1
    if single:
        rel = result.releases[0]
        for c in result.competitors:
            lines.append(
                f"{c.event.title} came {abs(c.gap_best_min):.0f} min "
                f"{'before' if c.gap_best_min < 0 else 'after'} the release "
                f"(bounds {c.gap_lo_min:+.0f} to {c.gap_hi_min:+.0f} min): {c.order}."
            )
        if result.competitors and all(c.gap_hi_min < 0 for c in result.competitors):
            lines.append(
                "The release came last. For the named announcements to have been timed to bury it, "
                "their authors would have had to know the release time in advance; timing data "
                "cannot show that, and the reverse reading (a release into a news cycle already "
                "taken) fits the same order."
            )
        for s in result.streams:
            lines.append(release_sentence(s, s.releases[0], claim.window_minutes))
        best = min((s.releases[0].pvalue for s in honest if s.releases[0].testable), default=np.nan)
        headline = (f"{rel.title}: {strength(best)} in the complete streams tested "
                    f"(smallest p = {fmt_p(best)}, null {claim.null}, ±{claim.window_minutes:g} min).")
    else:
        for s in result.streams:
            n = sum(t.testable for t in s.releases)
            lines.append(
                f"{s.stream.spec.label}: {n} of {len(s.releases)} releases testable; "
                f"{s.pooled_statistic:g} announcements within ±{claim.window_minutes:g} min in all; "
                f"pooled p = {fmt_p_range(s, pooled=True)} over {s.draws} draws of the unknown "
                f"times: {strength(s.pooled_pvalue)}."
            )
        best = min((s.pooled_pvalue for s in honest), default=np.nan)
        headline = (f"{len(result.releases)} releases: {strength(best)} for the series as a whole "
                    f"(smallest pooled p = {fmt_p(best)}, null {claim.null}).")
    if result.displacement is not None:
        d = result.displacement
        lines.append(
            f"Displacement: in the {d.hours:g} h after the release, {d.focal_share:.1%} of headlines "
            f"({d.focal_counts[0]} of {d.focal_counts[1]}) were about the release's story, against "
            f"{np.nanmean(d.other_shares):.1%} after the series' other releases in the stream "
            f"(difference {d.difference:+.1%}, 95% bootstrap interval {d.ci[0]:+.1%} to {d.ci[1]:+.1%}; "
            f"{len(d.other_ids)} comparable releases). Small counts: read as a direction, not a size."
        )
    caveats = list(ALWAYS)
    if single:
        caveats.append(AFTER_THE_FACT)
    caveats.append(COMMON_CAUSE)
    weeks = [t.candidate_weeks for s in honest for t in s.releases if t.candidate_weeks]
    if weeks:
        caveats.append(
            f"The weekday-hour null compares a release with the same hour of the week in other weeks "
            f"of each stream ({min(weeks):.0f}-{max(weeks):.0f} weeks here), so one release can "
            f"never reach a p-value much below 1/(weeks); that is all the evidence there is."
        )
    if any(t.pvalue_min != t.pvalue_max for s in result.streams for t in s.releases):
        caveats.append(
            "Where a time is an interval (a day-only release, an 'about 3:30 pm'), the p-value is "
            "the median over draws of the true time within it, with its range in brackets."
        )
    for s in result.streams:
        if s.stream.spec.caveat:
            caveats.append(f"{s.stream.spec.label}: {' '.join(s.stream.spec.caveat.split())}")
    return Verdict(headline, lines, caveats)


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    out = ["  " + "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out.append("  " + "  ".join("-" * w for w in widths))
    out += ["  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return out


def render_text(result: AnalysisResult) -> str:
    """The verdict as the terminal shows it."""
    claim = result.claim
    tz = claim.display_tz
    zone = ZoneInfo(tz).tzname(datetime.fromtimestamp(result.releases[0].ts, UTC)) if tz else None
    out = [claim.title, "=" * min(len(claim.title), 100)]
    if claim.statement:
        out.append("Claim: " + " ".join(claim.statement.split()))
    out.append("")
    if len(result.releases) == 1 and result.competitors:
        rel = result.releases[0]
        out.append(f"Timeline (UTC{'; ' + zone + ' beside it' if zone else ''}); gap = announcement minus release")
        rows = []
        for c in sorted(result.competitors, key=lambda c: c.event.ts):
            e = c.event
            rows.append([event_when(e, None), fmt_time(e.ts, tz) if tz else "", shorten(e.title, 70),
                         f"{c.gap_best_min:+.0f} min ({c.gap_lo_min:+.0f} to {c.gap_hi_min:+.0f})",
                         c.order])
        rows.append([event_when(rel, None), fmt_time(rel.ts, tz) if tz else "",
                     "RELEASE: " + shorten(rel.title, 61), "0", ""])
        rows.sort(key=lambda r: r[0])
        out += _table(rows, ["UTC", zone or "", "event", "gap", "order"])
        out.append("")
    out.append(f"Announcements within ±{claim.window_minutes:g} min of the release"
               f"{'s' if len(result.releases) > 1 else ''}, against the null")
    s0 = result.streams[0]
    out.append(f"  null: {s0.null_description}")
    out.append(f"  {claim.surrogates:,} surrogates per test, seed {result.parameters['seed']}, "
               f"run {result.run_id}")
    if len(result.releases) == 1:
        rows = []
        for s in result.streams:
            t = s.releases[0]
            k = f"{t.count_median:g}" if t.count_min == t.count_max else f"{t.count_median:g} ({t.count_min}-{t.count_max})"
            rows.append([s.stream.spec.label + (" [curated]" if s.stream.spec.curated else ""),
                         fmt_time(s.stream.coverage.start, None, True)[:10] + ".." +
                         fmt_time(s.stream.coverage.end, None, True)[5:10],
                         k, f"{t.expected:.1f}", fmt_p_range(t),
                         f"{t.candidate_weeks:.0f}" if t.candidate_weeks else "-",
                         "not testable" if not t.testable else strength(t.pvalue).split(" of")[0]])
        out += _table(rows, ["stream", "coverage", "count", "expected", "p-value", "weeks", "reading"])
    else:
        rows = []
        for s in result.streams:
            n = sum(t.testable for t in s.releases)
            rows.append([s.stream.spec.label, f"{n}/{len(s.releases)}", f"{s.pooled_statistic:g}",
                         fmt_p_range(s, pooled=True), str(s.draws), strength(s.pooled_pvalue).split(" of")[0]])
        out += _table(rows, ["stream", "tested", "count", "pooled p (range)", "draws", "reading"])
    v = verdict(result)
    out += ["", "Verdict: " + v.headline]
    out += ["  - " + line for line in v.lines]
    out += ["", "What this cannot show:"]
    out += ["  - " + c for c in v.caveats]
    return "\n".join(out)
