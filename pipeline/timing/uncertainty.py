"""Carrying timestamp uncertainty into p-values.

A release known only to the day is not a release at midnight. We draw its true time uniformly
within [earliest, latest] (and likewise for announcements that are intervals), rerun the test
for each draw, and report how the p-value moves: its range and its distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike


class IntervalTestResult(Protocol):
    """What ``over_intervals`` reads of a test's result (a CoincidenceResult has it)."""

    statistic: float
    pvalue: float
    pvalues: np.ndarray
    counts: np.ndarray


def is_uncertain(lo: ArrayLike, hi: ArrayLike, step: float) -> np.ndarray:
    """An interval no wider than one step (e.g. "to the minute") counts as an exact time."""
    return (np.asarray(hi, dtype=np.float64) - np.asarray(lo, dtype=np.float64)) > step


def sample_within(lo: ArrayLike, hi: ArrayLike, best: ArrayLike, rng: np.random.Generator, draws: int,
                  step: float) -> np.ndarray:
    """(draws, n) times uniform in [lo, hi], snapped to whole steps where the interval allows
    (so draws share count tables); intervals no wider than a step stay at ``best``."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    best = np.asarray(best, dtype=np.float64)
    u = lo + rng.random((draws, lo.size)) * (hi - lo)
    snapped = np.round(u / step) * step
    u = np.where((snapped >= lo) & (snapped <= hi), snapped, u)
    return np.where(is_uncertain(lo, hi, step), u, np.broadcast_to(best, u.shape))


@dataclass
class IntervalSummary:
    """One test repeated over draws of the uncertain times."""

    draws: int
    pooled_pvalues: np.ndarray  # (draws,)
    pooled_statistics: np.ndarray
    pvalues: np.ndarray  # (draws, m)
    counts: np.ndarray  # (draws, m)

    def pvalue_range(self, i: int | None = None) -> tuple[float, float, float]:
        """(min, median, max) of the p-value over draws; pooled when i is None."""
        p = self.pooled_pvalues if i is None else self.pvalues[:, i]
        p = p[~np.isnan(p)]
        if not p.size:
            return (np.nan, np.nan, np.nan)
        return float(p.min()), float(np.median(p)), float(p.max())

    def count_range(self, i: int) -> tuple[int, int]:
        c = self.counts[:, i]
        return int(c.min()), int(c.max())


def over_intervals(
    test: Callable[[np.ndarray, np.ndarray, int], IntervalTestResult],
    releases: tuple[ArrayLike, ArrayLike, ArrayLike], announcements: tuple[ArrayLike, ArrayLike, ArrayLike], *, draws: int, seed: int, step: float,
) -> IntervalSummary:
    """Run ``test(releases, announcements, seed)`` once per draw of the uncertain times.

    ``releases`` and ``announcements`` are (earliest, latest, best) arrays. ``test`` returns an
    object with ``statistic``, ``pvalue``, ``counts`` and ``pvalues`` (a CoincidenceResult).
    When no interval is wider than a step there is nothing to draw and the test runs once.
    """
    r_lo, r_hi, r_best = releases
    a_lo, a_hi, a_best = announcements
    uncertain = is_uncertain(r_lo, r_hi, step).any() or is_uncertain(a_lo, a_hi, step).any()
    draws = draws if uncertain else 1
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    rel = sample_within(r_lo, r_hi, r_best, rng, draws, step)
    ann_varies = is_uncertain(a_lo, a_hi, step).any()
    fixed_ann = np.asarray(a_best, dtype=np.float64)
    seeds = np.random.SeedSequence([seed, 2]).generate_state(draws)
    pooled_p, pooled_s, pvals, counts = [], [], [], []
    for d in range(draws):
        a = sample_within(a_lo, a_hi, a_best, rng, 1, step)[0] if ann_varies else fixed_ann
        res = test(rel[d], a, int(seeds[d]))
        pooled_p.append(res.pvalue)
        pooled_s.append(res.statistic)
        pvals.append(res.pvalues)
        counts.append(res.counts)
    return IntervalSummary(draws, np.array(pooled_p), np.array(pooled_s), np.array(pvals),
                           np.array(counts))
