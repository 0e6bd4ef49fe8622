"""Running a claim against the database: load the streams, run the timing engine, store the run.

This is the only place where the database meets the statistics: everything it hands to
``pipeline.timing`` is plain numpy arrays of epoch seconds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from .claims import Claim, EventSelector, StreamSpec, resolve_relative
from .database import transaction
from .timing.coincidence import (
    DEFAULT_STEP,
    CorrelogramResult,
    benjamini_hochberg,
    coincidence_test,
    correlogram_test,
)
from .timing.displacement import DisplacementResult, displacement
from .timing.gaps import gap_range, order_of
from .timing.nulls import Coverage, make_null
from .timing.pressure import daily_pressure
from .timing.stories import load_story_rules, story_matrix
from .timing.uncertainty import is_uncertain, over_intervals

# Item times coarser than this (a date without a time of day) can't place an item within a window.
MAX_ITEM_PRECISION_S = 60
TIMING_DIR = Path(__file__).parent / "timing"


class AnalysisError(ValueError):
    pass


@dataclass
class Event:
    event_id: str
    kind: str
    actor: str | None
    title: str
    ts: float
    lo: float
    hi: float
    precision_minutes: int | None
    source_url: str | None
    confidence: str | None

    @property
    def uncertain(self) -> bool:
        return bool(is_uncertain(self.lo, self.hi, DEFAULT_STEP))

    @property
    def day_only(self) -> bool:
        return self.hi - self.lo >= 86400 - 1


@dataclass
class Stream:
    spec: StreamSpec
    lo: np.ndarray
    hi: np.ndarray
    best: np.ndarray
    coverage: Coverage
    excluded: int = 0
    excluded_reason: str = ""

    @property
    def n(self) -> int:
        return len(self.best)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for a in (self.lo, self.hi, self.best):
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        return h.hexdigest()[:16]


@dataclass
class ReleaseTest:
    """One release against one stream, over draws of the uncertain times."""

    release_id: str
    count_median: float
    count_min: int
    count_max: int
    expected: float
    pvalue: float  # median over draws
    pvalue_min: float
    pvalue_max: float
    qvalue: float
    testable: bool
    reason: str | None
    candidate_weeks: float | None
    nearest_before_min: float | None
    nearest_after_min: float | None


@dataclass
class StreamResult:
    stream: Stream
    releases: list[ReleaseTest]
    pooled_statistic: float
    pooled_pvalue: float
    pooled_pvalue_min: float
    pooled_pvalue_max: float
    draws: int
    null_description: str
    correlogram: CorrelogramResult | None = None
    correlogram_skipped: list[str] = field(default_factory=list)


@dataclass
class Competitor:
    event: Event
    release_id: str
    gap_best_min: float
    gap_lo_min: float
    gap_hi_min: float
    order: str


@dataclass
class AnalysisResult:
    claim: Claim
    run_id: str
    created_utc: datetime
    releases: list[Event]
    competitors: list[Competitor]
    streams: list[StreamResult]
    parameters: dict
    snapshot: dict
    displacement: DisplacementResult | None = None
    displacement_spec: dict | None = None
    pressure: pd.DataFrame | None = None
    stored: bool = False


def load_events(con: duckdb.DuckDBPyConnection, selector: EventSelector) -> list[Event]:
    clause, params = selector.sql()
    rows = con.execute(
        f"""SELECT event_id, kind, actor, title, epoch(ts_utc), epoch(earliest_utc),
                   epoch(latest_utc), precision_minutes, source_url, confidence
            FROM events WHERE {clause} ORDER BY ts_utc, event_id""",
        params,
    ).fetchall()
    events = [Event(*r) for r in rows]
    if selector.event_ids:
        missing = set(selector.event_ids) - {e.event_id for e in events}
        if missing:
            raise AnalysisError(
                f"event(s) {', '.join(sorted(missing))} are not in the database; "
                "import the timeline first (media-timing import events FILE)"
            )
    return events


def load_stream(con: duckdb.DuckDBPyConnection, spec: StreamSpec) -> Stream:
    if spec.events:
        events = load_events(con, spec.events)
        if not events:
            raise AnalysisError(f"stream {spec.label!r}: no events match")
        lo = np.array([e.lo for e in events])
        hi = np.array([e.hi for e in events])
        best = np.array([e.ts for e in events])
        # A day-only event can't be placed within a window of hours: leave it out, and say so.
        keep = (hi - lo) < 86400 - 1
        cov = Coverage(float(lo.min()), float(hi.max()) + DEFAULT_STEP)
        return Stream(spec, lo[keep], hi[keep], best[keep], cov, int((~keep).sum()),
                      "known only to the day")
    found = con.execute("SELECT source_id FROM sources WHERE name = ?", [spec.source]).fetchall()
    if not found:
        raise AnalysisError(f"stream {spec.label!r}: no source named {spec.source!r} in the database")
    rows = con.execute(
        """SELECT epoch(published_utc) AS t,
                  (published_utc IS NOT NULL AND time_zone_explicit
                   AND time_precision_s <= ?) AS usable
           FROM items WHERE source_id = ? ORDER BY t""",
        [MAX_ITEM_PRECISION_S, found[0][0]],
    ).df()
    usable = rows["usable"].fillna(False).to_numpy(dtype=bool)
    t = rows["t"].to_numpy(dtype=np.float64)[usable]
    if not t.size:
        raise AnalysisError(f"stream {spec.label!r}: the source has no items with usable times")
    start = np.floor(t.min() / DEFAULT_STEP) * DEFAULT_STEP
    end = np.ceil(t.max() / DEFAULT_STEP) * DEFAULT_STEP + DEFAULT_STEP
    return Stream(spec, t, t, t, Coverage(float(start), float(end)), int((~usable).sum()),
                  "no time of day, or no stated zone")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def code_version() -> str:
    h = hashlib.sha256()
    for f in sorted(TIMING_DIR.glob("*.py")) + [Path(__file__)]:
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

    summary = over_intervals(test, rel, (stream.lo, stream.hi, stream.best),
                             draws=claim.uncertainty_draws, seed=seed, step=DEFAULT_STEP)
    # One run at the best estimates, for what does not vary (testability, candidate weeks).
    mids = np.where(is_uncertain(rel[0], rel[1], DEFAULT_STEP), (rel[0] + rel[1]) / 2, rel[2])
    probe = test(mids, stream.best, seed)
    weeks = (probe.positions / (null.bucket_s / DEFAULT_STEP)
             if hasattr(null, "bucket_s") else None)
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
    result = StreamResult(stream, tests, float(np.median(summary.pooled_statistics)), pmed, pmin,
                          pmax, summary.draws, null.describe())
    if claim.correlogram and claim.null != "poisson":
        bin_s = float(claim.correlogram.get("bin_minutes", 10)) * 60
        lag_s = float(claim.correlogram.get("max_lag_minutes", 240)) * 60
        narrow = [e for e in releases if e.hi - e.lo <= bin_s]
        result.correlogram_skipped = [e.event_id for e in releases if e.hi - e.lo > bin_s]
        if narrow:
            result.correlogram = correlogram_test(
                np.array([e.ts for e in narrow]), stream.best, bin_s=bin_s, max_lag_s=lag_s,
                null=null, coverage=stream.coverage, n_surrogates=surrogates, seed=seed)
    return result


def _competitors(con, claim: Claim, releases: list[Event]) -> list[Competitor]:
    if not claim.competitors:
        return []
    rows = []
    for rel in releases:
        for ev in load_events(con, claim.competitors):
            lo, hi = gap_range(ev.lo, ev.hi, rel.lo, rel.hi)
            rows.append(Competitor(ev, rel.event_id, (ev.ts - rel.ts) / 60, float(lo) / 60,
                                   float(hi) / 60, order_of(float(lo), float(hi))))
    return rows


def _news_frame(con, source: str) -> pd.DataFrame:
    return con.execute(
        """SELECT epoch(i.published_utc) AS t, i.published_utc AS ts, i.title
           FROM items i JOIN sources s USING (source_id)
           WHERE s.name = ? AND i.published_utc IS NOT NULL AND i.time_zone_explicit
           ORDER BY i.published_utc""",
        [source],
    ).df()


def _displacement(con, claim: Claim, releases: list[Event]) -> DisplacementResult | None:
    spec = claim.displacement
    if not spec:
        return None
    news = _news_frame(con, spec["news_source"])
    if news.empty:
        raise AnalysisError(f"displacement: news source {spec['news_source']!r} has no items")
    rules = load_story_rules(resolve_relative(claim, spec["stories_file"]))
    matrix = story_matrix(news["title"], rules)
    if spec["story"] not in matrix:
        raise AnalysisError(f"displacement: story {spec['story']!r} is not in {spec['stories_file']}")
    series = load_events(con, EventSelector.parse(spec["series"], "displacement.series"))
    focal = releases[0]
    mid = lambda e: (e.lo + e.hi) / 2 if e.uncertain else e.ts  # noqa: E731
    t = news["t"].to_numpy(dtype=np.float64)
    cov = (float(np.floor(t.min() / 60) * 60), float(t.max()) + 60)
    return displacement(
        t, matrix[spec["story"]].to_numpy(), (focal.event_id, mid(focal)),
        [(e.event_id, mid(e)) for e in series if e.event_id != focal.event_id],
        hours=float(spec.get("hours", 6)), coverage=cov,
        n_boot=int(spec.get("bootstrap", 2000)), seed=claim.seed,
    )


def _pressure(con, claim: Claim) -> pd.DataFrame | None:
    spec = claim.pressure
    if not spec:
        return None
    news = _news_frame(con, spec["news_source"])
    rules = load_story_rules(resolve_relative(claim, spec["stories_file"]))
    days = news["ts"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d")
    return daily_pressure(days, story_matrix(news["title"], rules))


@dataclass
class PreparedClaim:
    """A claim with its data loaded and its run id known, before any test has run."""

    claim: Claim
    seed: int
    releases: list[Event]
    streams: list[Stream]
    snapshot: dict
    parameters: dict
    run_id: str


def prepare_claim(con: duckdb.DuckDBPyConnection, claim: Claim, *, surrogates: int | None = None,
                  seed: int | None = None, draws: int | None = None) -> PreparedClaim:
    """Load the claim's releases and streams and derive its run id (parameters + data + code)."""
    if surrogates or draws is not None:
        claim = Claim(**{**claim.__dict__,
                         "surrogates": surrogates or claim.surrogates,
                         "uncertainty_draws": draws if draws is not None else claim.uncertainty_draws})
    seed = claim.seed if seed is None else seed
    releases = load_events(con, claim.releases)
    if not releases:
        raise AnalysisError(f"claim {claim.id}: no release events match; import the timeline first")
    streams = [load_stream(con, spec) for spec in claim.streams]
    snapshot = {
        "releases": {e.event_id: [_iso(e.lo), _iso(e.hi)] for e in releases},
        "streams": {s.spec.label: {"n": s.n, "excluded": s.excluded, "first": _iso(s.coverage.start),
                                   "last": _iso(s.coverage.end), "sha256": s.fingerprint()}
                    for s in streams},
    }
    parameters = {
        "claim_fingerprint": claim.fingerprint(), "null": claim.null,
        "null_options": claim.null_options, "window_minutes": claim.window_minutes,
        "surrogates": claim.surrogates, "seed": seed, "uncertainty_draws": claim.uncertainty_draws,
        "step_s": DEFAULT_STEP,
    }
    version = code_version()
    run_id = hashlib.sha256(
        json.dumps([claim.id, parameters, snapshot, version], sort_keys=True).encode()
    ).hexdigest()[:16]
    return PreparedClaim(claim, seed, releases, streams, snapshot,
                         {**parameters, "code_version": version}, run_id)


def is_stored(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    return bool(con.execute("SELECT 1 FROM analysis_runs WHERE run_id = ?", [run_id]).fetchall())


def run_prepared(con: duckdb.DuckDBPyConnection, prep: PreparedClaim) -> AnalysisResult:
    """Run every test the claim names. Nothing is written; see ``store_result``."""
    claim = prep.claim
    results = [_test_stream(claim, prep.releases, s, claim.surrogates, prep.seed) for s in prep.streams]
    # Benjamini-Hochberg over every (release, stream) pair whose stream was not curated.
    pairs = [(r, t) for r in results if not r.stream.spec.curated for t in r.releases]
    q = benjamini_hochberg([t.pvalue for _, t in pairs])
    for (_, t), qv in zip(pairs, q):
        t.qvalue = float(qv)
    return AnalysisResult(
        claim=claim, run_id=prep.run_id, created_utc=datetime.now(UTC), releases=prep.releases,
        competitors=_competitors(con, claim, prep.releases), streams=results,
        parameters=prep.parameters, snapshot=prep.snapshot,
        displacement=_displacement(con, claim, prep.releases), displacement_spec=claim.displacement,
        pressure=_pressure(con, claim),
    )


def run_claim(con: duckdb.DuckDBPyConnection, claim: Claim, *, surrogates: int | None = None,
              seed: int | None = None, draws: int | None = None) -> AnalysisResult:
    """Prepare and run a claim. Nothing is written; see ``store_result``."""
    return run_prepared(con, prepare_claim(con, claim, surrogates=surrogates, seed=seed, draws=draws))


def _json(obj) -> str:
    def clean(x):
        if isinstance(x, float) and not np.isfinite(x):
            return None
        if isinstance(x, np.generic):
            return clean(x.item())
        if isinstance(x, np.ndarray):
            return [clean(v) for v in x.tolist()]
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x
    return json.dumps(clean(obj))


def store_result(con: duckdb.DuckDBPyConnection, result: AnalysisResult) -> bool:
    """Record the run and its results. Returns False when this exact run was already stored."""
    if is_stored(con, result.run_id):
        return False
    rows = []
    for s in result.streams:
        label = s.stream.spec.label
        for t in s.releases:
            rows.append((result.run_id, t.release_id, label, "count_within_window",
                         t.count_median, t.count_min, t.count_max, t.pvalue, t.pvalue_min,
                         t.pvalue_max, t.qvalue,
                         _json({"expected": t.expected, "testable": t.testable, "reason": t.reason,
                                "candidate_weeks": t.candidate_weeks,
                                "nearest_before_min": t.nearest_before_min,
                                "nearest_after_min": t.nearest_after_min,
                                "curated": s.stream.spec.curated})))
        rows.append((result.run_id, "pooled", label, "count_within_window", s.pooled_statistic,
                     None, None, s.pooled_pvalue, s.pooled_pvalue_min, s.pooled_pvalue_max, None,
                     _json({"draws": s.draws, "null": s.null_description})))
        if s.correlogram is not None:
            c = s.correlogram
            rows.append((result.run_id, "pooled", label, "correlogram_max_over_lags", c.statistic,
                         None, None, c.pvalue, None, None, None,
                         _json({"lags_s": c.lags_s, "counts": c.counts, "null_mean": c.null_mean,
                                "pointwise_lo": c.pointwise_lo, "pointwise_hi": c.pointwise_hi,
                                "global_lo": c.global_lo, "global_hi": c.global_hi,
                                "bin_s": c.bin_s, "skipped": s.correlogram_skipped})))
    if result.displacement is not None:
        d = result.displacement
        rows.append((result.run_id, result.releases[0].event_id,
                     result.displacement_spec["news_source"], "displacement_share_difference",
                     d.difference, d.ci[0], d.ci[1], d.rank_pvalue, None, None, None,
                     _json({"hours": d.hours, "focal_share": d.focal_share,
                            "others": dict(zip(d.other_ids, d.other_shares)),
                            "skipped": d.skipped})))
    claim = result.claim
    with transaction(con):
        con.execute(
            """INSERT INTO analysis_runs (run_id, created_utc, claim_id, null_model, window_minutes,
                   surrogates, seed, parameters, data_snapshot, code_version)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [result.run_id, result.created_utc, claim.id, claim.null, claim.window_minutes,
             result.parameters["surrogates"], result.parameters["seed"], _json(result.parameters),
             _json(result.snapshot), result.parameters["code_version"]],
        )
        con.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    result.stored = True
    return True
