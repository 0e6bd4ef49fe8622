"""Carrying timestamp uncertainty into p-values.

A release known only to the day is not a release at midnight. We draw its true time uniformly
within [earliest, latest] (and likewise for announcements that are intervals), rerun the test
for each draw, and report how the p-value moves: its range and its distribution.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from .counting import TimeParts

# Draws tested at once: the machines this runs on have two cores.
THREADS = 2


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
    u = _snapped_uniform(rng.random((draws, lo.size)), lo, hi, hi - lo, step)
    return np.where(is_uncertain(lo, hi, step), u, np.broadcast_to(best, u.shape))


def _snapped_uniform(u: np.ndarray, lo: np.ndarray, hi: np.ndarray, width: np.ndarray,
                     step: float) -> np.ndarray:
    """Uniform draws ``u`` in [0, 1) made times in [lo, lo + width], in place, then snapped to the
    nearest whole step where that stays inside [lo, hi]."""
    u *= width
    u += lo
    snapped = np.round(u / step)
    snapped *= step
    inside = snapped >= lo
    inside &= snapped <= hi
    np.copyto(u, snapped, where=inside)
    return u


class IntervalSampler:
    """Many times of which some are uncertain, drawn as ``sample_within`` draws them, for a test
    that counts them in two parts (``TimeParts``): the exact times, set apart and sorted once
    (``exact``), and each draw of the uncertain ones alone (``draw``). A draw then costs what the
    uncertain times cost, whatever the number of exact ones.

    The uncertain ones are kept in order of their best times, so that every draw comes out nearly
    sorted (each moves within its interval), which the test's sort finishes in a fraction of the
    time a shuffled array takes. The order changes nothing but which random number each draw
    gives which time."""

    def __init__(self, lo: ArrayLike, hi: ArrayLike, best: ArrayLike, step: float,
                 counted: tuple[np.ndarray, np.ndarray] | None = None):
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        best = np.asarray(best, dtype=np.float64)
        self.step = step
        order = np.flatnonzero(is_uncertain(lo, hi, step))
        if counted is not None and order.size:
            # The others count the same wherever they are (see over_intervals): kept at their best.
            order = order[overlapping(lo[order], hi[order], *counted)]
        if order.size:
            exact = np.ones(best.size, dtype=bool)
            exact[order] = False
            self.exact = np.sort(best[exact])
        else:
            self.exact = np.sort(best)
        if not np.isfinite(self.exact).all():
            raise ValueError("announcement times must be finite")
        order = order[np.argsort(best[order], kind="stable")]
        self.lo, self.hi, self.best = lo[order], hi[order], best[order]
        self.width = self.hi - self.lo

    @property
    def varies(self) -> bool:
        return self.lo.size > 0

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One draw of the uncertain times (in the order of their best times): what
        ``sample_within(lo, hi, best, rng, 1, step)[0]`` gives, without its checks for exact
        times (there are none here)."""
        return _snapped_uniform(rng.random(self.lo.size), self.lo, self.hi, self.width, self.step)


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


def overlapping(lo: ArrayLike, hi: ArrayLike, starts: ArrayLike, ends: ArrayLike) -> np.ndarray:
    """Which intervals [lo, hi] share at least one instant with some [starts, ends]."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    s = np.asarray(starts, dtype=np.float64)
    e = np.asarray(ends, dtype=np.float64)
    if not s.size:
        return np.zeros(lo.shape, dtype=bool)
    order = np.argsort(s, kind="stable")
    s, e = s[order], np.maximum.accumulate(e[order])
    # the last stretch starting at or before hi reaches furthest of all those (running max)
    j = np.searchsorted(s, hi, side="right") - 1
    return (j >= 0) & (e[np.maximum(j, 0)] >= lo)


def over_intervals(
    test: Callable[[np.ndarray, np.ndarray | TimeParts, int], IntervalTestResult],
    releases: tuple[ArrayLike, ArrayLike, ArrayLike], announcements: tuple[ArrayLike, ArrayLike, ArrayLike], *, draws: int, seed: int, step: float,
    counted: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
) -> IntervalSummary:
    """Run ``test(releases, announcements, seed)`` once per draw of the uncertain times.

    ``releases`` and ``announcements`` are (earliest, latest, best) arrays. ``test`` returns an
    object with ``statistic``, ``pvalue``, ``counts`` and ``pvalues`` (a CoincidenceResult), and
    takes the announcements as an array when none is uncertain, else as ``TimeParts`` (the exact
    ones, then the draw). When no interval is wider than a step there is nothing to draw and the
    test runs once.

    ``counted(releases)``, where given, is where the test can count an announcement for exact
    release times (``coincidence.counted_stretches``): when no release is uncertain, an uncertain
    announcement whose whole interval lies outside those stretches counts the same wherever it
    is, so it stays at its best time and only the others are drawn.
    """
    r_lo, r_hi, r_best = (np.asarray(x, dtype=np.float64) for x in releases)
    a_lo, a_hi, a_best = (np.asarray(x, dtype=np.float64) for x in announcements)
    exact_releases = not is_uncertain(r_lo, r_hi, step).any()
    ann = IntervalSampler(a_lo, a_hi, a_best, step,
                          counted(r_best) if counted is not None and exact_releases else None)
    draws = draws if (not exact_releases or ann.varies) else 1
    # With exact releases every draw counts on the same grids: the exact part's counts are kept.
    tables: dict[tuple[float, ...], dict[str, np.ndarray]] | None = {} if exact_releases else None
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    rel = sample_within(r_lo, r_hi, r_best, rng, draws, step)
    seeds = np.random.SeedSequence([seed, 2]).generate_state(draws)
    pooled_p, pooled_s, pvals, counts = [], [], [], []

    def keep(res: IntervalTestResult) -> None:
        pooled_p.append(res.pvalue)
        pooled_s.append(res.statistic)
        pvals.append(res.pvalues)
        counts.append(res.counts)

    # Draws are made here, in order, from the one generator; the tests run in threads (numpy's
    # sorts and searches release the GIL), at most THREADS + 1 in flight, and are kept in order:
    # the summary is the same as one thread's.
    with ThreadPoolExecutor(THREADS) as pool:
        running: deque[Future[IntervalTestResult]] = deque()
        for d in range(draws):
            a = TimeParts((ann.exact, ann.draw(rng)), tables) if ann.varies else ann.exact
            running.append(pool.submit(test, rel[d], a, int(seeds[d])))
            if len(running) > THREADS:
                keep(running.popleft().result())
        while running:
            keep(running.popleft().result())
    return IntervalSummary(draws, np.array(pooled_p), np.array(pooled_s), np.array(pvals),
                           np.array(counts))
