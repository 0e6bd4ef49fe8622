"""Coincidence tests: are announcements closer to releases than chance would put them?

``coincidence_test`` counts announcements within ±W of each release and compares the counts
with the same counts at the positions a null model could have put the releases at.
``correlogram_test`` does the same for the whole cross-correlogram of lags, with pointwise and
global envelopes and a max-over-lags statistic.

Both return result objects in the manner of ``scipy.stats``: ``statistic``, ``pvalue``, the null
distribution, and every parameter needed to reproduce them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from .counting import Announcements, PositionCounter, TimeParts
from .nulls import CircularShift, Coverage, Model, Null
from .screen import PoissonScreen

DEFAULT_STEP = 60.0
# Surrogates are drawn in fixed-size chunks, each with its own child seed, so results do not
# depend on how many threads ran them.
CHUNK_ELEMENTS = 2_000_000
THREADS = 2


def _mc_pvalue(null_values: np.ndarray, observed: ArrayLike) -> np.ndarray:
    """(b + 1) / (S + 1), b = surrogates at least as extreme (Davison & Hinkley 1997)."""
    s = null_values.shape[0]
    return (1 + (null_values >= observed).sum(axis=0)) / (s + 1)


def _as_steps(window_s: float, step: float) -> int:
    w = window_s / step
    if abs(w - round(w)) > 1e-9:
        raise ValueError(f"window {window_s} s is not a whole number of {step:g} s steps")
    return int(round(w))


def _prepare(announcements: ArrayLike | TimeParts, coverage: Coverage, null: Model, step: float) -> Announcements:
    given = announcements.parts if isinstance(announcements, TimeParts) else (announcements,)
    tables = announcements.first_tables if isinstance(announcements, TimeParts) else None
    parts = [np.asarray(p, dtype=np.float64) for p in given]
    if isinstance(null, CircularShift):
        period = null.period_steps(coverage, step) * step
        kept = [t[(t >= coverage.start) & (t < coverage.start + period)] for t in parts]
        return Announcements.of(*kept, period=period, start=coverage.start, first_tables=tables)
    return Announcements.of(*parts, first_tables=tables)


def _draw_chunks(null: Null, rel: np.ndarray, coverage: Coverage, window_s: float, step: float,
                 n_surrogates: int, seed: int | None) -> Iterator[np.ndarray]:
    """Surrogate steps, release-major ((m, S) so each release's column is contiguous), in chunks
    of bounded size from one seeded generator (a result never depends on chunking or threads)."""
    rng = np.random.default_rng(seed)
    size = max(1, CHUNK_ELEMENTS // max(len(rel), 1))
    for done in range(0, n_surrogates, size):
        steps = null.draw(rel, coverage, window_s, step, rng, min(size, n_surrogates - done)).steps
        yield np.ascontiguousarray(steps.T)


def _sum_over_releases(fn: Callable[[int], np.ndarray], releases: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Σ fn(i) over ``releases``, in THREADS contiguous blocks run in parallel (numpy's gathers
    release the GIL), each block summing in place into its own accumulator."""
    def block(ids: np.ndarray) -> np.ndarray:
        acc = np.zeros(shape, dtype=np.int64)
        for i in ids:
            acc += fn(i)
        return acc
    if len(releases) < 64:
        return block(releases)
    with ThreadPoolExecutor(THREADS) as pool:
        total = np.zeros(shape, dtype=np.int64)
        for part in pool.map(block, np.array_split(releases, THREADS)):
            total += part
        return total


@dataclass
class CoincidenceResult:
    """Counts of announcements within ±window of each release, against a null model.

    ``statistic`` is the total count over testable releases and ``pvalue`` its Monte Carlo
    p-value (the pooled test); ``pvalues`` are per release. Untestable releases have NaN.
    """

    statistic: float
    pvalue: float
    counts: np.ndarray
    pvalues: np.ndarray
    null_distribution: np.ndarray  # pooled statistic under the null, one per surrogate
    null_counts_mean: np.ndarray  # expected count per release under the null
    testable: np.ndarray
    positions: np.ndarray
    reasons: list[str | None]
    greater: np.ndarray  # per release: surrogates with a strictly larger count
    equal: np.ndarray  # per release: surrogates with the same count
    window_s: float
    null: str
    null_description: str
    n_surrogates: int
    seed: int | None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def min_attainable_pvalue(self) -> float:
        return 1.0 / (self.n_surrogates + 1)

    def randomized_pvalues(self, rng: np.random.Generator) -> np.ndarray:
        """Per-release p-values with ties broken at random: exactly uniform under the null.

        Counts tie often, which makes the ordinary p-value conservative (it puts every tie on
        the extreme side). Use these to check calibration or to combine tests; report the
        ordinary ones.
        """
        u = rng.random(self.greater.shape)
        p = (self.greater + u * (self.equal + 1)) / (self.n_surrogates + 1)
        return np.where(self.testable, p, np.nan)


def coincidence_test(
    releases: ArrayLike,
    announcements: ArrayLike | TimeParts,
    *,
    window_s: float,
    null: Model,
    coverage: Coverage,
    n_surrogates: int = 9999,
    seed: int | None = 0,
    step: float = DEFAULT_STEP,
) -> CoincidenceResult:
    """Test whether announcements fall within ±``window_s`` of releases more often than chance.

    Null and assumptions: those of ``null`` (see ``null.describe()``); announcement times are
    taken as exact, and release times as given (use ``uncertainty.over_intervals`` for releases
    known only to an interval). The statistic for release i is #{a : |a - r_i| <= W}.
    """
    rel = np.asarray(releases, dtype=np.float64)
    m = len(rel)
    w = _as_steps(window_s, step)
    ann = _prepare(announcements, coverage, null, step)
    if isinstance(null, PoissonScreen):
        return _screen_test(rel, ann, window_s, coverage, null)
    if not isinstance(null, Null):
        raise TypeError(f"{null.name!r} is neither a Monte Carlo null nor the Poisson screen")

    probe = null.draw(rel, coverage, window_s, step, np.random.default_rng(0), 1)
    counter = PositionCounter(ann, rel, step, w, probe.reach)
    testable = probe.testable
    zero = np.zeros(1, dtype=np.int64)
    observed = np.array([counter.release(i).window(zero, w)[0] for i in range(m)])
    obs_total = observed[testable].sum()
    greater = np.zeros(m, dtype=np.int64)
    equal = np.zeros(m, dtype=np.int64)
    total = np.zeros(m, dtype=np.float64)
    pooled_parts = []
    live = np.flatnonzero(testable)
    for steps in _draw_chunks(null, rel, coverage, window_s, step, n_surrogates, seed):
        def one(i: int, steps: np.ndarray = steps) -> np.ndarray:
            c = counter.release(i).window(steps[i], w)
            greater[i] += (c > observed[i]).sum()
            equal[i] += (c == observed[i]).sum()
            total[i] += c.sum()
            return c
        pooled_parts.append(_sum_over_releases(one, live, steps.shape[1]))
    pooled = np.concatenate(pooled_parts)
    mean = total / n_surrogates
    pvals = np.where(testable, (1 + greater + equal) / (n_surrogates + 1), np.nan)
    pooled_p = float(_mc_pvalue(pooled, obs_total)) if testable.any() else float("nan")
    return CoincidenceResult(
        statistic=float(obs_total), pvalue=pooled_p, counts=observed, pvalues=pvals,
        null_distribution=pooled, null_counts_mean=np.where(testable, mean, np.nan),
        testable=testable, positions=probe.positions, reasons=probe.reason, greater=greater,
        equal=equal, window_s=window_s,
        null=null.name, null_description=null.describe(), n_surrogates=n_surrogates, seed=seed,
        parameters={**null.parameters(), "window_minutes": window_s / 60, "step_s": step,
                    "coverage": [coverage.start, coverage.end]},
    )


def counted_stretches(releases: ArrayLike, *, window_s: float, null: Model, coverage: Coverage,
                      step: float = DEFAULT_STEP) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends), in seconds: every stretch of time in which ``coincidence_test`` of these
    (exact) release times can count an announcement, at the observed positions or at any
    surrogate one. An announcement outside all of them is counted nowhere, wherever it lies, so
    an uncertain one whose whole interval is outside them need not be drawn.

    Under the circular shift an announcement is also seen a period away (the seam), so there
    every time counts (one stretch over the whole line)."""
    rel = np.asarray(releases, dtype=np.float64)
    if isinstance(null, CircularShift) or not isinstance(null, (Null, PoissonScreen)):
        return np.array([-np.inf]), np.array([np.inf])
    if isinstance(null, PoissonScreen) or not rel.size:  # windows at the releases only
        return rel - window_s, rel + window_s
    reach = null.draw(rel, coverage, window_s, step, np.random.default_rng(0), 1).reach
    starts, ends = [], []
    for base, r in zip(rel, reach):
        k = np.arange(r.k_lo, r.k_hi + 1) * r.period
        starts.append(base + (k + r.a) * step - window_s)
        ends.append(base + (k + r.b) * step + window_s)
    return np.concatenate(starts + [rel - window_s]), np.concatenate(ends + [rel + window_s])


def _screen_test(rel: np.ndarray, ann: Announcements, window_s: float, coverage: Coverage,
                 screen: PoissonScreen) -> CoincidenceResult:
    sc = screen.screen(rel, ann.times, window_s, coverage)
    m = len(rel)
    return CoincidenceResult(
        statistic=float(sc.counts[sc.testable].sum()), pvalue=sc.pooled_pvalue, counts=sc.counts,
        pvalues=sc.pvalues, null_distribution=np.array([]),
        null_counts_mean=np.where(sc.testable, sc.expected, np.nan), testable=sc.testable,
        positions=np.full(m, -1),
        reasons=[None if t else "release is outside the coverage" for t in sc.testable],
        greater=np.zeros(m, dtype=int), equal=np.zeros(m, dtype=int), window_s=window_s,
        null=screen.name, null_description=screen.describe(), n_surrogates=0, seed=None,
        parameters={"null": screen.name, "window_minutes": window_s / 60,
                    "rate_per_hour": sc.rate_per_s * 3600},
    )


@dataclass
class CorrelogramResult:
    """Cross-correlogram of lags (announcement time minus release time), summed over releases.

    ``statistic`` is the max over lags of the standardised excess (C_j - mean_j) / sd_j and
    ``pvalue`` its Monte Carlo p-value: a global test that corrects for looking at every lag.
    ``pointwise_*`` bands hold 95% of surrogate values lag by lag; ``global_*`` bands are wide
    enough that 95% of surrogate correlograms stay inside them at every lag at once.
    """

    statistic: float
    pvalue: float
    lags_s: np.ndarray  # bin left edges
    counts: np.ndarray
    null_mean: np.ndarray
    pointwise_lo: np.ndarray
    pointwise_hi: np.ndarray
    global_lo: np.ndarray
    global_hi: np.ndarray
    null_distribution: np.ndarray  # max-over-lags statistic per surrogate
    bin_s: float
    max_lag_s: float
    null: str
    null_description: str
    n_surrogates: int
    seed: int | None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_lag_s(self) -> float:
        z = (self.counts - self.null_mean)
        return float(self.lags_s[int(np.argmax(z))] + self.bin_s / 2)


def correlogram_test(
    releases: ArrayLike,
    announcements: ArrayLike | TimeParts,
    *,
    bin_s: float,
    max_lag_s: float,
    null: Model,
    coverage: Coverage,
    n_surrogates: int = 9999,
    seed: int | None = 0,
    step: float = DEFAULT_STEP,
    level: float = 0.95,
) -> CorrelogramResult:
    """Cross-correlogram over lags in [-max_lag, +max_lag) in bins of ``bin_s``, with envelopes.

    Null and assumptions: those of ``null``. Positive lags mean the announcement came after the
    release. The global envelope follows the max-statistic construction of Grün, Diesmann and
    Aertsen's surrogate methods: it controls the chance of any excursion across all lags.
    """
    if not isinstance(null, Null):
        raise ValueError(f"the correlogram test needs a Monte Carlo null, not {null.name!r}")
    rel = np.asarray(releases, dtype=np.float64)
    m = len(rel)
    b = _as_steps(bin_s, step)
    lag = _as_steps(max_lag_s, step)
    if lag % b:
        raise ValueError("max_lag must be a whole number of bins")
    edges = np.arange(-lag, lag + 1, b)
    ann = _prepare(announcements, coverage, null, step)
    probe = null.draw(rel, coverage, max_lag_s, step, np.random.default_rng(0), 1)
    testable = probe.testable
    counter = PositionCounter(ann, rel, step, lag, probe.reach)
    live = np.flatnonzero(testable)

    def correlogram(steps: np.ndarray) -> np.ndarray:  # steps: (m, S)
        def one(i: int) -> np.ndarray:
            cum = counter.release(i).edge(steps[i][:, None], edges[None, :], "left")
            return np.diff(cum, axis=1)
        return _sum_over_releases(one, live, (steps.shape[1], len(edges) - 1))

    observed = correlogram(np.zeros((m, 1), dtype=np.int64))[0].astype(float)
    null_c = np.concatenate([correlogram(steps) for steps in
                             _draw_chunks(null, rel, coverage, max_lag_s, step, n_surrogates, seed)]).astype(float)
    env = _envelopes(observed, null_c, level)
    return CorrelogramResult(
        lags_s=edges[:-1] * step, counts=observed, **env, bin_s=bin_s, max_lag_s=max_lag_s,
        null=null.name, null_description=null.describe(), n_surrogates=n_surrogates, seed=seed,
        parameters={**null.parameters(), "bin_minutes": bin_s / 60,
                    "max_lag_minutes": max_lag_s / 60, "step_s": step,
                    "coverage": [coverage.start, coverage.end]},
    )


def _envelopes(observed: np.ndarray, null_c: np.ndarray, level: float) -> dict[str, Any]:
    """The max-statistic test and its pointwise and global envelopes, from the surrogate counts."""
    mean = null_c.mean(axis=0)
    sd = null_c.std(axis=0, ddof=1)
    sd = np.where(sd > 0, sd, 1.0)
    max_null = ((null_c - mean) / sd).max(axis=1)
    stat = float(((observed - mean) / sd).max())
    alpha = 1 - level
    q_abs = np.quantile(np.abs((null_c - mean) / sd).max(axis=1), level)
    return dict(
        statistic=stat, pvalue=float(_mc_pvalue(max_null, stat)), null_mean=mean,
        pointwise_lo=np.quantile(null_c, alpha / 2, axis=0),
        pointwise_hi=np.quantile(null_c, 1 - alpha / 2, axis=0),
        # Counts cannot be negative: a symmetric band around a small mean is cut at zero.
        global_lo=np.maximum(mean - q_abs * sd, 0.0), global_hi=mean + q_abs * sd,
        null_distribution=max_null,
    )


def benjamini_hochberg(pvalues: ArrayLike) -> np.ndarray:
    """BH-adjusted q-values; NaN stays NaN (untestable releases are not counted)."""
    p = np.asarray(pvalues, dtype=float)
    q = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q
