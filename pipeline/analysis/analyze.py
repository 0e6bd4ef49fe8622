"""Running a claim against the database: load the streams, run the timing engine.

This is the only place where the database meets the statistics: everything it hands to
``pipeline.timing`` is plain numpy arrays of epoch seconds. Storing a run and reading it back
is ``pipeline.analysis.runs``; what a run concluded is ``pipeline.analysis.results``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.analysis.claims import Claim, EventSelector
from pipeline.analysis.loading import (
    AnalysisError,
    StoryInputs,
    Stream,
    expand_streams,
    load_events,
    load_stream,
    story_inputs,
)
from pipeline.analysis.onsets import OnsetInputs, measure_onsets, onset_inputs
from pipeline.analysis.results import (
    AnalysisResult,
    Competitor,
    Event,
    ReleaseTest,
    StreamResult,
)
from pipeline.analysis.stories import match_stories
from pipeline.timestamps import iso_z
from pipeline.timing.coincidence import (
    DEFAULT_STEP,
    benjamini_hochberg,
    coincidence_test,
    correlogram_test,
    counted_stretches,
)
from pipeline.timing.displacement import DisplacementResult, displacement
from pipeline.timing.gaps import gap_range, order_of
from pipeline.timing.pressure import daily_pressure
from pipeline.timing.registry import NULLS, make_null
from pipeline.timing.uncertainty import is_uncertain, over_intervals

__all__ = ["AnalysisError", "PreparedClaim", "load_events", "load_stream", "prepare_claim",
           "run_claim", "run_prepared"]

TIMING_DIR = Path(__file__).parents[1] / "timing"
CODE_FILES = ("analyze.py", "loading.py", "results.py", "stories.py", "onsets.py")


def code_version() -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    for f in sorted(TIMING_DIR.glob("*.py")) + [here / name for name in CODE_FILES]:
        h.update(f.read_bytes())
    return "timing-" + h.hexdigest()[:12]


def _test_stream(claim: Claim, releases: list[Event], stream: Stream, surrogates: int,
                 seed: int) -> StreamResult:
    window_s = claim.window_minutes * 60
    null = make_null(claim.null, **claim.null_options)
    rel = tuple(np.array([getattr(e, k) for e in releases]) for k in ("lo", "hi", "ts"))

    def test(r, a, s):
        return coincidence_test(r, a, window_s=window_s, null=null, coverage=stream.coverage,
                                n_surrogates=surrogates, seed=s)

    def counted(r):
        return counted_stretches(r, window_s=window_s, null=null, coverage=stream.coverage)

    summary = over_intervals(test, rel, (stream.lo, stream.hi, stream.best),
                             draws=claim.uncertainty_draws, seed=seed, step=DEFAULT_STEP, counted=counted)
    # One run at the best estimates, for what does not vary (testability, candidate weeks).
    mids = np.where(is_uncertain(rel[0], rel[1], DEFAULT_STEP), (rel[0] + rel[1]) / 2, rel[2])
    probe = test(mids, stream.best, seed)
    weeks = null.candidate_weeks(probe.positions, DEFAULT_STEP)
    tests = []
    ann_sorted = np.sort(stream.best)
    for i, e in enumerate(releases):
        pmin, pmed, pmax = summary.pvalue_range(i)
        cmin, cmax = summary.count_range(i)
        before = after = None
        if not e.uncertain and ann_sorted.size:
            j = np.searchsorted(ann_sorted, e.ts, side="right")
            before = (e.ts - ann_sorted[j - 1]) / 60 if j > 0 else None
            k = np.searchsorted(ann_sorted, e.ts, side="left")
            after = (ann_sorted[k] - e.ts) / 60 if k < ann_sorted.size else None
        tests.append(ReleaseTest(
            release_id=e.event_id, count_median=float(np.median(summary.counts[:, i])),
            count_min=cmin, count_max=cmax, expected=float(probe.null_counts_mean[i]),
            pvalue=pmed, pvalue_min=pmin, pvalue_max=pmax, qvalue=float("nan"),
            testable=bool(probe.testable[i]), reason=probe.reasons[i],
            candidate_weeks=float(weeks[i]) if weeks is not None and probe.testable[i] else None,
            nearest_before_min=before, nearest_after_min=after,
        ))
    pmin, pmed, pmax = summary.pvalue_range(None)
    result = StreamResult(stream.summary(releases), tests, float(np.median(summary.pooled_statistics)),
                          pmed, pmin, pmax, summary.draws, null.describe())
    if claim.correlogram and claim.null in NULLS:
        bin_s = float(claim.correlogram.get("bin_minutes", 10)) * 60
        lag_s = float(claim.correlogram.get("max_lag_minutes", 240)) * 60
        narrow = [e for e in releases if e.hi - e.lo <= bin_s]
        result.correlogram_skipped = [e.event_id for e in releases if e.hi - e.lo > bin_s]
        if narrow:
            result.correlogram = correlogram_test(
                np.array([e.ts for e in narrow]), stream.best, bin_s=bin_s, max_lag_s=lag_s,
                null=null, coverage=stream.coverage, n_surrogates=surrogates, seed=seed)
    return result


def _competitors(releases: list[Event], events: list[Event]) -> list[Competitor]:
    rows = []
    for rel in releases:
        for ev in events:
            lo, hi = gap_range(ev.lo, ev.hi, rel.lo, rel.hi)
            rows.append(Competitor(ev, rel.event_id, (ev.ts - rel.ts) / 60, float(lo) / 60,
                                   float(hi) / 60, order_of(float(lo), float(hi))))
    return rows


def _displacement(claim: Claim, releases: list[Event], news: StoryInputs,
                  series: list[Event]) -> DisplacementResult:
    spec = claim.displacement
    matrix = match_stories(news.titles, news.rules)
    if spec["story"] not in matrix:
        raise AnalysisError(f"displacement: story {spec['story']!r} is not in {spec['stories_file']}")
    focal = releases[0]
    t = news.times
    cov = (float(np.floor(t.min() / 60) * 60), float(t.max()) + 60)
    return displacement(
        t, matrix[spec["story"]].to_numpy(), (focal.event_id, focal.centre),
        [(e.event_id, e.centre) for e in series if e.event_id != focal.event_id],
        hours=float(spec.get("hours", 6)), coverage=cov,
        n_boot=int(spec.get("bootstrap", 2000)), seed=claim.seed,
    )


@dataclass
class PreparedClaim:
    """A claim with every input loaded and its run id known, before any test has run: running
    it needs no database."""

    claim: Claim
    seed: int
    releases: list[Event]
    streams: list[Stream]
    snapshot: dict
    parameters: dict
    run_id: str
    competitors: list[Event] = field(default_factory=list)
    displacement_news: StoryInputs | None = None
    displacement_series: list[Event] = field(default_factory=list)
    pressure_news: StoryInputs | None = None
    onsets: OnsetInputs | None = None


def _load_streams(con, claim: Claim) -> tuple[list[Stream], list[str]]:
    streams, skipped = [], []
    for spec in expand_streams(con, claim.streams):
        try:
            streams.append(load_stream(con, spec))
        except AnalysisError as exc:
            if not spec.optional:
                raise
            skipped.append(str(exc))
    if not streams:
        raise AnalysisError(f"claim {claim.id}: no stream has usable times"
                            + (f" ({'; '.join(skipped)})" if skipped else ""))
    return streams, skipped


def prepare_claim(con: duckdb.DuckDBPyConnection, claim: Claim, *, surrogates: int | None = None,
                  seed: int | None = None, draws: int | None = None) -> PreparedClaim:
    """Load everything the claim's tests read and derive its run id (parameters + data + code)."""
    if surrogates or draws is not None:
        claim = replace(claim, surrogates=surrogates or claim.surrogates,
                        uncertainty_draws=draws if draws is not None else claim.uncertainty_draws)
    seed = claim.seed if seed is None else seed
    releases = load_events(con, claim.releases)
    if not releases:
        raise AnalysisError(f"claim {claim.id}: no release events match; import the timeline first")
    streams, skipped = _load_streams(con, claim)
    prep = PreparedClaim(claim, seed, releases, streams, {}, {}, "",
                         competitors=load_events(con, claim.competitors) if claim.competitors else [])
    news: dict[str, pd.DataFrame] = {}  # each news source read once
    if claim.displacement:
        prep.displacement_news = story_inputs(con, claim, claim.displacement, news, to_the_minute=True)
        prep.displacement_series = load_events(
            con, EventSelector.parse(claim.displacement["series"], "displacement.series"))
    if claim.pressure:
        prep.pressure_news = story_inputs(con, claim, claim.pressure, news, to_the_minute=False)
    prep.onsets = onset_inputs(con, claim)
    prep.snapshot = {
        "releases": {e.event_id: [iso_z(e.lo), iso_z(e.hi)] for e in releases},
        "streams": {s.spec.label: {"n": s.n, "excluded": s.excluded, "first": iso_z(s.coverage.start),
                                   "last": iso_z(s.coverage.end), "sha256": s.fingerprint()}
                    for s in streams},
        "skipped_streams": skipped,
        "competitors": {e.event_id: [iso_z(e.lo), iso_z(e.hi)] for e in prep.competitors},
        "stories": {k: [n.source, n.fingerprint(), n.rules_sha256]
                    for k, n in (("displacement", prep.displacement_news), ("pressure", prep.pressure_news)) if n},
        **({"onsets": prep.onsets.fingerprint()} if prep.onsets else {}),
    }
    parameters = {
        "claim_fingerprint": claim.fingerprint(), "null": claim.null,
        "null_options": claim.null_options, "window_minutes": claim.window_minutes,
        "surrogates": claim.surrogates, "seed": seed, "uncertainty_draws": claim.uncertainty_draws,
        "step_s": DEFAULT_STEP,
    }
    version = code_version()
    prep.run_id = hashlib.sha256(
        json.dumps([claim.id, parameters, prep.snapshot, version], sort_keys=True).encode()
    ).hexdigest()[:16]
    prep.parameters = {**parameters, "code_version": version}
    return prep


def run_prepared(prep: PreparedClaim) -> AnalysisResult:
    """Run every test the claim names: arrays and rules in, result objects out; no I/O."""
    claim = prep.claim
    results = [_test_stream(claim, prep.releases, s, claim.surrogates, prep.seed) for s in prep.streams]
    # Benjamini-Hochberg over every (release, stream) pair whose stream was not curated.
    pairs = [(r, t) for r in results if not r.stream.spec.curated for t in r.releases]
    q = benjamini_hochberg([t.pvalue for _, t in pairs])
    for (_, t), qv in zip(pairs, q):
        t.qvalue = float(qv)
    pressure = None
    if prep.pressure_news is not None:
        n = prep.pressure_news
        pressure = daily_pressure(n.days, match_stories(n.titles, n.rules))
    return AnalysisResult(
        claim=claim, run_id=prep.run_id, created_utc=datetime.now(UTC), releases=prep.releases,
        competitors=_competitors(prep.releases, prep.competitors), streams=results,
        parameters=prep.parameters, snapshot=prep.snapshot,
        displacement=(_displacement(claim, prep.releases, prep.displacement_news, prep.displacement_series)
                      if prep.displacement_news is not None else None),
        displacement_spec=claim.displacement, pressure=pressure,
        onsets=measure_onsets(prep.onsets) if prep.onsets else None,
    )


def run_claim(con: duckdb.DuckDBPyConnection, claim: Claim, *, surrogates: int | None = None,
              seed: int | None = None, draws: int | None = None) -> AnalysisResult:
    """Prepare and run a claim. Nothing is written; see ``pipeline.analysis.runs``."""
    return run_prepared(prepare_claim(con, claim, surrogates=surrogates, seed=seed, draws=draws))
