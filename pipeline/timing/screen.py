"""The closed-form Poisson screen: a quick look, not a test.

It draws nothing: announcements are taken as a homogeneous Poisson process at the stream's
average rate and each release's count is read against that. It ignores that news has a daily
and weekly rhythm and comes in bursts, so it makes coincidences at busy hours look rarer than
they are (tests/test_timing_engine.py measures how much). A Monte Carlo null in ``nulls`` is
the test; this is only a screen, and the correlogram and interval draws refuse it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .nulls import Coverage, Model


@dataclass(frozen=True)
class ScreenCounts:
    counts: np.ndarray  # announcements within ±W of each release
    expected: np.ndarray  # what the average rate puts there
    pvalues: np.ndarray  # NaN where the release is outside the coverage
    testable: np.ndarray
    pooled_pvalue: float
    rate_per_s: float


class PoissonScreen(Model):
    """Announcements as a homogeneous Poisson process at the stream's average rate."""

    name = "poisson"
    moves = "nothing (closed form)"
    preserves = "only the average announcement rate"
    destroys = "daily and weekly rhythms and bursts (screening only: anti-conservative at busy hours)"
    caveat = ("The Poisson screen ignores the daily and weekly rhythm and the bursts of news: it "
              "makes coincidences at busy hours look rarer than they are, so it can only point "
              "at what a Monte Carlo null should test.")

    def pvalues(self, counts: np.ndarray, expected: np.ndarray) -> np.ndarray:
        # scipy.stats on first use: importing it costs most of a second, and the registry (which
        # every command's --help reads) should not.
        from scipy import stats

        return np.asarray(stats.poisson.sf(counts - 1, expected), dtype=np.float64)

    def screen(self, releases: np.ndarray, times: np.ndarray, window_s: float,
               coverage: Coverage) -> ScreenCounts:
        """``times`` sorted. Counts in ±window_s of each release against the average rate."""
        inside = (times >= coverage.start) & (times < coverage.end)
        rate = float(inside.sum() / coverage.length)
        lo = np.maximum(releases - window_s, coverage.start)
        hi = np.minimum(releases + window_s, coverage.end)
        testable = (releases >= coverage.start) & (releases < coverage.end)
        expected = rate * np.clip(hi - lo, 0, None)
        counts = (np.searchsorted(times, releases + window_s, side="right")
                  - np.searchsorted(times, releases - window_s, side="left"))
        pvals = np.where(testable, self.pvalues(counts, expected), np.nan)
        pooled = (float(self.pvalues(np.array([counts[testable].sum()]), np.array([expected[testable].sum()]))[0])
                  if testable.any() else float("nan"))
        return ScreenCounts(counts, expected, pvals, testable, pooled, rate)
