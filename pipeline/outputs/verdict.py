"""Words for results: the verdict table, plain-language lines and the caveats every verdict carries.

The terminal, the HTML report and the email digest all take their wording from here, so a
verdict reads the same wherever it is met.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from pipeline.analysis.results import AnalysisResult, Event, ReleaseTest, StreamResult
from pipeline.outputs.onsets_text import CAVEAT as ONSET_CAVEAT
from pipeline.outputs.onsets_text import onset_lines, order_summary
from pipeline.outputs.tables import text_table
from pipeline.timing.registry import MODELS

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
    "streams."
)
CURATED = ("curated: its events were researched because they sit near releases, so closeness is "
           "built in; not evidence")
# Below these, a displacement share compares too little to say anything.
DISPLACEMENT_MIN_OTHERS = 3
DISPLACEMENT_MIN_ITEMS = 20
DISPLACEMENT_MIN_STORY_ITEMS = 5


def shorten(text: str, width: int) -> str:
    return textwrap.shorten(text, width, placeholder="…")


def fmt_time(t: float, tz: str | None = None, with_date: bool = False) -> str:
    dt = datetime.fromtimestamp(t, UTC)
    if tz:
        dt = dt.astimezone(ZoneInfo(tz))
    return dt.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")


def fmt_day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def fmt_span(start: float, end: float) -> str:
    """A coverage range with full dates at both ends: 2016-06-14..2017-02-17 (end exclusive)."""
    return f"{fmt_day(start)}..{fmt_day(max(start, end - 1))}"


def fmt_count(x: float | None) -> str:
    """Counts are whole numbers; a median over draws may be a half."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:g}" if float(x).is_integer() else f"{x:.1f}"


def fmt_window(minutes: float) -> str:
    return f"±{minutes:g} min"


def fmt_p(p: float | None) -> str:
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


def reading(stream: StreamResult, t: ReleaseTest, short: bool = False) -> str:
    """What a row says: a curated stream has no evidence reading at all."""
    if stream.stream.spec.curated:
        return "curated: not evidence" if short else CURATED
    if not t.testable:
        return "not testable" if short else f"not testable ({t.reason})"
    words = strength(t.pvalue)
    return words.split(" of")[0] if short else words


def count_text(t: ReleaseTest) -> str:
    k = fmt_count(t.count_median)
    return k if t.count_min == t.count_max else f"{k} ({t.count_min}-{t.count_max})"


def release_sentence(stream: StreamResult, t: ReleaseTest, window_min: float) -> str:
    label = stream.stream.spec.label
    if not t.testable:
        return f"{label}: not testable ({t.reason})."
    k = (fmt_count(t.count_median) if t.count_min == t.count_max
         else f"{fmt_count(t.count_median)} (between {t.count_min} and {t.count_max})")
    side = "fewer than" if t.count_median < t.expected else "more than"
    text = (f"{label}: {k} within {fmt_window(window_min)}, {side} the {t.expected:.1f} expected at "
            f"comparable times; p = {fmt_p_range(t)}")
    if stream.stream.spec.curated:
        return f"{text}. {CURATED[0].upper()}{CURATED[1:]}."
    return f"{text}: {strength(t.pvalue)}."


def smallest_p(result: AnalysisResult, release_id: str) -> tuple[float, int]:
    """The smallest p-value for one release over the complete (not curated) testable streams,
    and how many such streams there were."""
    ps = [t.pvalue for s in result.streams if not s.stream.spec.curated
          for t in [s.test_of(release_id)] if t is not None and t.testable]
    return (min(ps) if ps else float("nan")), len(ps)


def release_headline(result: AnalysisResult, release: Event) -> str:
    claim = result.claim
    best, n = smallest_p(result, release.event_id)
    return (f"{release.title}: {strength(best)} in the {n} complete stream{'s' if n != 1 else ''} "
            f"tested (smallest p = {fmt_p(best)}, null {claim.null}, {fmt_window(claim.window_minutes)}).")


def displacement_reading(result: AnalysisResult) -> str | None:
    """Displacement in plain words, with its p-value and what it cannot show; silent (not
    enough data) where the news stream cannot support a comparison."""
    d = result.displacement
    if d is None:
        return None
    spec = result.displacement_spec or {}
    story = spec.get("story", "the release's story")
    sha = ((result.snapshot.get("stories") or {}).get("displacement") or [None, None, None])[2]
    rules = f", rules {spec.get('stories_file', '?')}" + (f" {sha[:8]}" if sha else "")
    k, n = d.focal_counts
    why = None
    if len(d.other_ids) < DISPLACEMENT_MIN_OTHERS:
        why = (f"only {len(d.other_ids)} of the series' other releases fall inside the news "
               f"stream's coverage (at least {DISPLACEMENT_MIN_OTHERS} are needed to compare)")
    elif n < DISPLACEMENT_MIN_ITEMS:
        why = f"only {n} headlines in the {d.hours:g} h after the release"
    elif d.story_items < DISPLACEMENT_MIN_STORY_ITEMS:
        why = (f"only {d.story_items} headline{'s' if d.story_items != 1 else ''} about '{story}' in "
               f"all {len(d.other_ids) + 1} windows together: too few to compare shares")
    if why:
        return f"Displacement ('{story}'{rules}): not enough data: {why}."
    others = len(d.other_ids)
    text = (f"Displacement ('{story}'{rules}): in the {d.hours:g} h after the release, {d.focal_share:.1%} of "
            f"headlines ({k} of {n}) were about its story, against {np.nanmean(d.other_shares):.1%} "
            f"after the series' {others} other releases in the stream (difference {d.difference:+.1%}, "
            f"95% bootstrap interval {d.ci[0]:+.1%} to {d.ci[1]:+.1%}; rank p = {fmt_p(d.rank_pvalue)}, "
            f"the smallest possible with {others + 1} releases being {fmt_p(1 / (others + 1))}).")
    if d.rank_pvalue <= 1 / (others + 1) + 1e-9:
        text += (" Its story had the smallest share of the series: that fits its being crowded out "
                 "of the news, but does not show that anyone meant it, nor which story did it.")
    elif d.difference < 0:
        text += " A smaller share than usual, within what the series' own variation gives: no sign of crowding out."
    else:
        text += " Its story had at least the usual share: no sign of crowding out."
    return text


@dataclass
class Verdict:
    headline: str
    lines: list[str]
    caveats: list[str]


def _single_release_lines(result: AnalysisResult) -> list[str]:
    lines = []
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
        lines.append(release_sentence(s, s.releases[0], result.claim.window_minutes))
    return lines


def _series_lines(result: AnalysisResult) -> list[str]:
    claim = result.claim
    lines = []
    for s in result.streams:
        n = sum(t.testable for t in s.releases)
        text = (f"{s.stream.spec.label}: {n} of {len(s.releases)} releases testable; "
                f"{fmt_count(s.pooled_statistic)} announcements within {fmt_window(claim.window_minutes)} "
                f"in all; pooled p = {fmt_p_range(s, pooled=True)} over {s.draws} draws of the unknown times")
        lines.append(text + (f". {CURATED[0].upper()}{CURATED[1:]}." if s.stream.spec.curated
                             else f": {strength(s.pooled_pvalue)}."))
    return lines


def verdict(result: AnalysisResult) -> Verdict:
    claim = result.claim
    honest = [s for s in result.streams if not s.stream.spec.curated]
    single = len(result.releases) == 1
    if single:
        lines = _single_release_lines(result)
        headline = release_headline(result, result.releases[0])
    else:
        lines = _series_lines(result)
        best = min((s.pooled_pvalue for s in honest), default=np.nan)
        headline = (f"{len(result.releases)} releases: {strength(best)} for the series as a whole "
                    f"(smallest pooled p = {fmt_p(best)}, null {claim.null}).")
    lines += order_summary(result.onsets) if result.onsets else []
    shown = displacement_reading(result)
    if shown:
        lines.append(shown)
    return Verdict(headline, lines, caveats(result))


def caveats(result: AnalysisResult) -> list[str]:
    honest = [s for s in result.streams if not s.stream.spec.curated]
    out = list(ALWAYS)
    if len(result.releases) == 1:
        out.append(AFTER_THE_FACT)
    model = MODELS.get(result.claim.null)
    out.append(f"{COMMON_CAUSE} {model.caveat}" if model and model.caveat else COMMON_CAUSE)
    weeks = [t.candidate_weeks for s in honest for t in s.releases if t.candidate_weeks]
    note = model.resolution(weeks) if model else None
    if note:
        out.append(note)
    if any(t.pvalue_min != t.pvalue_max for s in result.streams for t in s.releases):
        out.append(
            "Where a time is an interval (a day-only release, an 'about 3:30 pm'), the p-value is "
            "the median over draws of the true time within it, with its range in brackets."
        )
    for s in result.streams:
        if s.stream.spec.caveat:
            out.append(f"{s.stream.spec.label}: {' '.join(s.stream.spec.caveat.split())}")
    if result.onsets:
        out.append(ONSET_CAVEAT)
    return out


def _timeline_rows(result: AnalysisResult, tz: str | None) -> list[list[str]]:
    rel = result.releases[0]
    rows = []
    for c in sorted(result.competitors, key=lambda c: c.event.ts):
        e = c.event
        rows.append([event_when(e, None), fmt_time(e.ts, tz) if tz else "", shorten(e.title, 70),
                     f"{c.gap_best_min:+.0f} min ({c.gap_lo_min:+.0f} to {c.gap_hi_min:+.0f})", c.order])
    rows.append([event_when(rel, None), fmt_time(rel.ts, tz) if tz else "",
                 "RELEASE: " + shorten(rel.title, 61), "0", ""])
    return sorted(rows, key=lambda r: r[0])


def stream_rows(result: AnalysisResult, release_id: str) -> list[list[str]]:
    """One row per stream for one release: label, coverage, count, expected, p, weeks, reading."""
    rows = []
    for s in result.streams:
        t = s.test_of(release_id)
        if t is None:
            continue
        rows.append([s.stream.spec.label + (" [curated]" if s.stream.spec.curated else ""),
                     fmt_span(s.stream.coverage.start, s.stream.coverage.end), count_text(t),
                     f"{t.expected:.1f}" if t.testable else "-", fmt_p_range(t) if t.testable else "n/a",
                     f"{t.candidate_weeks:.0f}" if t.candidate_weeks else "-", reading(s, t, short=True)])
    return rows


STREAM_HEADER = ["stream", "coverage", "count", "expected", "p-value", "weeks", "reading"]


def render_text(result: AnalysisResult) -> str:
    """The verdict as the terminal shows it."""
    claim = result.claim
    tz = claim.display_tz
    zone = ZoneInfo(tz).tzname(datetime.fromtimestamp(result.releases[0].ts, UTC)) if tz else None
    out = [claim.title, "=" * min(len(claim.title), 100)]
    if claim.statement:
        out.append("Claim: " + " ".join(claim.statement.split()))
    out.append("")
    single = len(result.releases) == 1
    if single and result.competitors:
        out.append(f"Timeline (UTC{'; ' + zone + ' beside it' if zone else ''}); gap = announcement minus release")
        out += text_table(_timeline_rows(result, tz), ["UTC", zone or "", "event", "gap", "order"])
        out.append("")
    out.append(f"Announcements within {fmt_window(claim.window_minutes)} of the release"
               f"{'' if single else 's'}, against the null")
    out.append(f"  null: {result.streams[0].null_description}")
    out.append(f"  {claim.surrogates:,} surrogates per test, seed {result.parameters['seed']}, "
               f"run {result.run_id}")
    if single:
        out += text_table(stream_rows(result, result.releases[0].event_id), STREAM_HEADER)
    else:
        rows = [[s.stream.spec.label + (" [curated]" if s.stream.spec.curated else ""),
                 f"{sum(t.testable for t in s.releases)}/{len(s.releases)}", fmt_count(s.pooled_statistic),
                 fmt_p_range(s, pooled=True), str(s.draws),
                 "curated: not evidence" if s.stream.spec.curated else strength(s.pooled_pvalue).split(" of")[0]]
                for s in result.streams]
        out += text_table(rows, ["stream", "tested", "count", "pooled p (range)", "draws", "reading"])
    if result.onsets:
        out += [""] + onset_lines(result.onsets)
    v = verdict(result)
    out += ["", "Verdict: " + v.headline]
    out += ["  - " + line for line in v.lines]
    out += ["", "What this cannot show:"]
    out += ["  - " + c for c in v.caveats]
    return "\n".join(out)
