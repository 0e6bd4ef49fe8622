"""Coincidence tests: are announcements closer to releases than chance would put them?

``coincidence_test`` counts announcements within ±W of each release and compares the counts
with the same counts at the positions a null model could have put the releases at.
``correlogram_test`` does the same for the whole cross-correlogram of lags, with pointwise and
global envelopes and a max-over-lags statistic.

Both return result objects in the manner of ``scipy.stats``: ``statistic``, ``pvalue``, the null
distribution, and every parameter needed to reproduce them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .counting import Announcements, PositionCounter
from .nulls import Coverage, Draws, Null, Poisson

DEFAULT_STEP = 60.0
# Surrogates are drawn in fixed-size chunks, each with its own child seed, so results do not
# depend on how many threads ran them.
CHUNK_ELEMENTS = 2_000_000
THREADS = 2


def _mc_pvalue(null_values: np.ndarray, observed) -> np.ndarray:
    """(b + 1) / (S + 1), b = surrogates at least as extreme (Davison & Hinkley 1997)."""
    s = null_values.shape[0]
    return (1 + (null_values >= observed).sum(axis=0)) / (s + 1)


def _as_steps(window_s: float, step: float) -> int:
    w = window_s / step
    if abs(w - round(w)) > 1e-9:
        raise ValueError(f"window {window_s} s is not a whole number of {step:g} s steps")
    return int(round(w))


def _chunks(n_surrogates: int, m: int) -> list[int]:
    size = max(1, CHUNK_ELEMENTS // max(m, 1))
    return [min(size, n_surrogates - i) for i in range(0, n_surrogates, size)]


def _prepare(announcements, coverage: Coverage, null: Null, step: float):
    times = np.asarray(announcements, dtype=np.float64)
    if null.circular:
        period = null.period_steps(coverage, step) * step
        keep = (times >= coverage.start) & (times < coverage.start + period)
        return Announcements.of(times[keep], period=period, start=coverage.start)
    return Announcements.of(times)


def _run_chunks(fn, n_surrogates: int, m: int, seed) -> list:
    sizes = _chunks(n_surrogates, m)
    seeds = np.random.SeedSequence(seed).spawn(len(sizes))
    jobs = [(size, np.random.default_rng(s)) for size, s in zip(sizes, seeds)]
    if len(jobs) == 1:
        return [fn(*jobs[0])]
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda job: fn(*job), jobs))


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
    parameters: dict = field(default_factory=dict)

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
    releases,
    announcements,
    *,
    window_s: float,
    null: Null,
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
    if isinstance(null, Poisson):
        return _poisson_test(rel, ann, window_s, coverage, null)

    probe = null.draw(rel, coverage, window_s, step, np.random.default_rng(0), 1)
    counter = _counter(ann, rel, step, w, null, coverage, probe)
    observed = counter.window(np.zeros((1, m), dtype=np.int64), w)[0]
    testable = probe.testable
    obs_total = observed[testable].sum()

    def run(size, rng):
        d = null.draw(rel, coverage, window_s, step, rng, size)
        c = counter.window(d.steps, w)
        c[:, ~testable] = 0
        return (c > observed).sum(axis=0), (c == observed).sum(axis=0), c.sum(axis=0), c.sum(axis=1)

    parts = _run_chunks(run, n_surrogates, m, seed)
    greater = sum(p[0] for p in parts)
    equal = sum(p[1] for p in parts)
    mean = sum(p[2] for p in parts) / n_surrogates
    pooled = np.concatenate([p[3] for p in parts])
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


def _counter(ann, rel, step, reach, null, coverage, probe: Draws) -> PositionCounter:
    # Tables must span every step any surrogate can take; ask the null for its extremes.
    span = _null_span(null, rel, coverage, step, probe)
    return PositionCounter(ann, rel, step, reach, span)


def _null_span(null, rel, coverage, step, probe) -> tuple[int, int]:
    first = np.floor((coverage.start - rel) / step).astype(np.int64)
    last = np.ceil((coverage.end - rel) / step).astype(np.int64)
    if null.name == "jitter":
        return probe.span
    # Every other null keeps positions inside the coverage.
    return (int(first.min(initial=0)), int(last.max(initial=0)))


def _poisson_test(rel, ann, window_s, coverage, null: Poisson) -> CoincidenceResult:
    inside = (ann.times >= coverage.start) & (ann.times < coverage.end)
    rate = inside.sum() / coverage.length
    lo = np.maximum(rel - window_s, coverage.start)
    hi = np.minimum(rel + window_s, coverage.end)
    testable = (rel >= coverage.start) & (rel < coverage.end)
    expected = rate * np.clip(hi - lo, 0, None)
    counts = (np.searchsorted(ann.times, rel + window_s, side="right")
              - np.searchsorted(ann.times, rel - window_s, side="left"))
    pvals = np.where(testable, null.pvalues(counts, expected), np.nan)
    total = counts[testable].sum()
    pooled = float(stats.poisson.sf(total - 1, expected[testable].sum())) if testable.any() else np.nan
    return CoincidenceResult(
        statistic=float(total), pvalue=pooled, counts=counts, pvalues=pvals,
        null_distribution=np.array([]), null_counts_mean=np.where(testable, expected, np.nan),
        testable=testable, positions=np.full(len(rel), -1),
        reasons=[None if t else "release is outside the coverage" for t in testable],
        greater=np.zeros(len(rel), dtype=int), equal=np.zeros(len(rel), dtype=int), window_s=window_s, null=null.name, null_description=null.describe(), n_surrogates=0,
        seed=None, parameters={"null": null.name, "window_minutes": window_s / 60,
                               "rate_per_hour": rate * 3600},
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
    parameters: dict = field(default_factory=dict)

    @property
    def peak_lag_s(self) -> float:
        z = (self.counts - self.null_mean)
        return float(self.lags_s[int(np.argmax(z))] + self.bin_s / 2)


def correlogram_test(
    releases,
    announcements,
    *,
    bin_s: float,
    max_lag_s: float,
    null: Null,
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
    if isinstance(null, Poisson):
        raise ValueError("the correlogram test needs a Monte Carlo null, not the Poisson screen")
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
    counter = _counter(ann, rel, step, lag, null, coverage, probe)

    def correlogram(steps):
        cum = np.stack([counter._edge(steps, int(e), "left")[:, testable].sum(axis=1)
                        for e in edges], axis=1)
        return np.diff(cum, axis=1)

    observed = correlogram(np.zeros((1, m), dtype=np.int64))[0].astype(float)

    def run(size, rng):
        d = null.draw(rel, coverage, max_lag_s, step, rng, size)
        return correlogram(d.steps)

    null_c = np.concatenate(_run_chunks(run, n_surrogates, m * len(edges), seed)).astype(float)
    mean = null_c.mean(axis=0)
    sd = null_c.std(axis=0, ddof=1)
    sd = np.where(sd > 0, sd, 1.0)
    z_null = (null_c - mean) / sd
    z_obs = (observed - mean) / sd
    max_null = z_null.max(axis=1)
    stat = float(z_obs.max())
    alpha = 1 - level
    q_abs = np.quantile(np.abs(z_null).max(axis=1), level)
    return CorrelogramResult(
        statistic=stat, pvalue=float(_mc_pvalue(max_null, stat)), lags_s=edges[:-1] * step,
        counts=observed, null_mean=mean,
        pointwise_lo=np.quantile(null_c, alpha / 2, axis=0),
        pointwise_hi=np.quantile(null_c, 1 - alpha / 2, axis=0),
        global_lo=mean - q_abs * sd, global_hi=mean + q_abs * sd,
        null_distribution=max_null, bin_s=bin_s, max_lag_s=max_lag_s, null=null.name,
        null_description=null.describe(), n_surrogates=n_surrogates, seed=seed,
        parameters={**null.parameters(), "bin_minutes": bin_s / 60,
                    "max_lag_minutes": max_lag_s / 60, "step_s": step,
                    "coverage": [coverage.start, coverage.end]},
    )


def benjamini_hochberg(pvalues) -> np.ndarray:
    """BH-adjusted q-values; NaN stays NaN (untestable releases are not counted)."""
    p = np.asarray(pvalues, dtype=float)
    q = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q
