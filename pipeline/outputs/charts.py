"""Charts as PNG bytes: the timeline around a release, the correlogram with its null envelopes,
the hourly news coverage around a week's releases. They draw what they are given; no reads."""

from __future__ import annotations

import io
import textwrap
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from pipeline.analysis.results import AnalysisResult, Event
from pipeline.analysis.stories import StoryRule, match_stories
from pipeline.timing.coincidence import CorrelogramResult

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _dt(t: float, tz: str | None):
    return datetime.fromtimestamp(t, UTC).astimezone(ZoneInfo(tz) if tz else UTC)


def timeline_png(result: AnalysisResult, hours: float = 4.0) -> bytes:
    """Around a single release: each stream's posts as ticks, the named announcements as spans
    (their uncertainty), the release and its ±window."""
    import matplotlib.dates as mdates

    plt = _pyplot()
    claim = result.claim
    tz = claim.display_tz
    rel = result.releases[0]
    lo, hi = rel.ts - hours * 3600, rel.ts + hours * 3600
    streams = [s for s in result.streams]
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.55 * (len(streams) + len(result.competitors) + 1)))
    w = claim.window_minutes * 60
    ax.axvspan(_dt(rel.ts - w, tz), _dt(rel.ts + w, tz), color="#fff3bf", zorder=0,
               label=f"±{claim.window_minutes:g} min window")
    labels = []
    y = 0
    for i, s in enumerate(streams):
        t = s.stream.nearby[(s.stream.nearby >= lo) & (s.stream.nearby <= hi)]
        ax.plot([_dt(x, tz) for x in t], [y] * len(t), "|", ms=14, color=COLOURS[i % len(COLOURS)])
        labels.append(f"{s.stream.spec.label[:38]} ({len(t)})")
        y += 1
    for c in sorted(result.competitors, key=lambda c: -c.event.ts):
        e = c.event
        ax.plot([_dt(e.lo, tz), _dt(max(e.hi, e.lo + 60), tz)], [y, y], lw=8, color="#555",
                solid_capstyle="butt")
        ax.plot([_dt(e.ts, tz)], [y], "o", color="black", ms=5)
        labels.append(textwrap.shorten(e.actor or e.title, 38, placeholder="…"))
        y += 1
    ax.axvline(_dt(rel.ts, tz), color="#c92a2a", lw=2, label="release")
    ax.plot([_dt(rel.ts, tz)], [y], "D", color="#c92a2a", ms=8)
    labels.append(("RELEASE " + (rel.actor or ""))[:38])
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.set_xlim(_dt(lo, tz), _dt(hi, tz))
    zone = _dt(rel.ts, tz).tzname()
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=ZoneInfo(tz) if tz else UTC))
    ax.set_xlabel(f"{_dt(rel.ts, tz):%a %d %b %Y}, {zone}")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, frameon=False, bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"±{hours:g} h around the release (ticks: posts; bars: announcement time bounds)",
                 fontsize=10, loc="left")
    return _png(fig)


def series_png(result: AnalysisResult) -> bytes:
    """For a series: per release, the count within the window against the null's expectation."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.6))
    n = len(result.releases)
    x = np.arange(n)
    width = 0.8 / max(len(result.streams), 1)
    for i, s in enumerate(result.streams):
        counts = [t.count_median if t.testable else np.nan for t in s.releases]
        exp = [t.expected if t.testable else np.nan for t in s.releases]
        ax.bar(x + i * width, counts, width, color=COLOURS[i % len(COLOURS)], alpha=0.8,
               label=f"{s.stream.spec.label[:40]}: observed")
        ax.plot(x + i * width, exp, "_", ms=10, color="black")
    ax.plot([], [], "_", color="black", label="expected under the null")
    ax.set_xticks(x + 0.4 - width / 2, [e.event_id for e in result.releases], rotation=90, fontsize=7)
    ax.set_ylabel(f"announcements within ±{result.claim.window_minutes:g} min")
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def correlogram_png(corr: CorrelogramResult, title: str = "") -> bytes:
    """Counts per lag bin with the null mean, 95% pointwise band and 95% global band."""
    return _png(correlogram_figure(corr, title))


def correlogram_figure(corr: CorrelogramResult, title: str = ""):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    centres = (corr.lags_s + corr.bin_s / 2) / 60
    ax.fill_between(centres, corr.global_lo, corr.global_hi, step="mid", color="#dee2e6",
                    label="95% global envelope")
    ax.fill_between(centres, corr.pointwise_lo, corr.pointwise_hi, step="mid", color="#adb5bd",
                    label="95% pointwise envelope")
    ax.step(centres, corr.null_mean, where="mid", color="black", lw=1, label="null mean")
    ax.bar(centres, corr.counts, width=corr.bin_s / 60 * 0.8, color="#1c7ed6", alpha=0.8,
           label="observed")
    ax.axvline(0, color="#c92a2a", lw=1)
    ax.set_xlabel(f"lag: announcement minus release (minutes; bins of {corr.bin_s / 60:g} min)")
    ax.set_ylabel(f"announcements per {corr.bin_s / 60:g}-min bin")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{title}  max-over-lags p = {corr.pvalue:.2g}", fontsize=10, loc="left")
    ax.legend(fontsize=7, frameon=False, loc="upper right")
    return fig


def coverage_png(releases: list[Event], news: pd.DataFrame, rules: list[StoryRule],
                 hours: int = 12) -> bytes | None:
    """Hourly news items (``news``: t in epoch seconds, title) around each release, and those
    about the release's story where ``rules`` name one; None when there is nothing to draw."""
    if not releases or news.empty:
        return None
    matrix = match_stories(news["title"], rules) if rules else pd.DataFrame(index=news.index)
    # Each release's own story: the first rule its title matches (all titles in one pass).
    own = match_stories(pd.Series([e.title for e in releases]), rules)
    stories = [next((r.name for r in rules if own[r.name].iat[i]), None) for i in range(len(releases))]
    plt = _pyplot()
    fig, axes = plt.subplots(len(releases), 1, figsize=(8, 2.4 * len(releases)), squeeze=False)
    t = news["t"].to_numpy(dtype=np.float64)
    drawn = False
    for ax, e, story in zip(axes[:, 0], releases, stories):
        edges = e.centre + np.arange(-hours, hours + 1) * 3600
        total, _ = np.histogram(t, bins=edges)
        centres = np.arange(-hours, hours) + 0.5
        ax.bar(centres, total, width=0.9, color="#ced4da", label="news items per hour")
        if story:
            about, _ = np.histogram(t[matrix[story].to_numpy()], bins=edges)
            ax.bar(centres, about, width=0.9, color="#1c7ed6", label=f"about '{story}'")
        ax.axvline(0, color="#c92a2a", lw=1.5)
        ax.set_title(f"{e.event_id}: {e.title[:70]}", fontsize=9, loc="left")
        ax.set_xlabel("hours from the release (" + ("midpoint of its interval" if e.uncertain else "exact") + ")", fontsize=8)
        ax.legend(fontsize=7, frameon=False, loc="upper left")
        drawn = drawn or total.sum() > 0
    if not drawn:
        plt.close(fig)
        return None
    fig.tight_layout()
    return _png(fig)
