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

from pipeline.analysis.claims import Claim, EventSelector, StreamSpec, resolve_relative
from pipeline.analysis.results import (
    NEARBY_HOURS,
    AnalysisResult,
    Competitor,
    Event,
    ReleaseTest,
    StreamResult,
    StreamSummary,
)
from pipeline.errors import UserError
from pipeline.timestamps import iso_z
from pipeline.timing.coincidence import (
    DEFAULT_STEP,
    benjamini_hochberg,
    coincidence_test,
    correlogram_test,
)
from pipeline.timing.displacement import DisplacementResult, displacement
from pipeline.timing.gaps import gap_range, order_of
from pipeline.timing.nulls import Coverage
from pipeline.timing.pressure import daily_pressure
from pipeline.timing.registry import NULLS, make_null
from pipeline.timing.stories import load_story_rules, story_matrix
from pipeline.timing.uncertainty import is_uncertain, over_intervals

TIMING_DIR = Path(__file__).parents[1] / "timing"
CODE_FILES = ("analyze.py", "results.py")


class AnalysisError(UserError):
    pass


@dataclass
class Stream:
    """A stream as the tests need it: every usable time, with its interval."""

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

    def summary(self, releases: list[Event]) -> StreamSummary:
        """What outputs keep of it: counts, coverage, and the times near the releases."""
        t = np.sort(self.best)
        span = NEARBY_HOURS * 3600
        near = np.zeros(t.shape, dtype=bool)
        for e in releases:
            lo, hi = np.searchsorted(t, [e.lo - span, e.hi + span])
            near[lo:hi] = True
        return StreamSummary(self.spec, self.n, self.excluded, self.excluded_reason,
                             self.coverage, t[near])


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


def expand_streams(con: duckdb.DuckDBPyConnection, specs: tuple[StreamSpec, ...]) -> list[StreamSpec]:
    """Each spec as a concrete stream: a ``role`` spec becomes one stream per source of that
    role; a source's label and caveat fill in what the claim leaves out."""
    out = []
    for spec in specs:
        if spec.events:
            out.append(spec)
            continue
        if spec.role:
            rows = con.execute("SELECT name, label, caveat FROM sources WHERE role = ? AND kind <> 'catalog' "
                               "ORDER BY name", [spec.role]).fetchall()
        else:
            rows = con.execute("SELECT name, label, caveat FROM sources WHERE name = ?",
                               [spec.source]).fetchall()
            if not rows:
                raise AnalysisError(f"stream {spec.label or spec.source!r}: no source named "
                                    f"{spec.source!r} in the database")
        for name, label, caveat in rows:
            out.append(replace(spec, source=name, role=None, label=spec.label or label or name,
                               caveat=spec.caveat or caveat, optional=bool(spec.role)))
    labels = [s.label for s in out]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise AnalysisError(f"two streams are labelled {', '.join(map(repr, twice))}; give each a label")
    return out


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
    rows = con.execute(
        """SELECT epoch(published_utc) AS t, minute_usable AS usable
           FROM v_items WHERE source = ? ORDER BY t""",
        [spec.source],
    ).df()
    usable = rows["usable"].fillna(False).to_numpy(dtype=bool)
    t = rows["t"].to_numpy(dtype=np.float64)[usable]
    if not t.size:
        raise AnalysisError(f"stream {spec.label!r}: the source has no items with usable times")
    start = np.floor(t.min() / DEFAULT_STEP) * DEFAULT_STEP
    end = np.ceil(t.max() / DEFAULT_STEP) * DEFAULT_STEP + DEFAULT_STEP
    return Stream(spec, t, t, t, Coverage(float(start), float(end)), int((~usable).sum()),
                  "no time of day, no stated zone, or in the future")


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

    summary = over_intervals(test, rel, (stream.lo, stream.hi, stream.best),
                             draws=claim.uncertainty_draws, seed=seed, step=DEFAULT_STEP)
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


@dataclass
class StoryInputs:
    """A news stream's items and story rules, for displacement and pressure."""

    source: str
    times: np.ndarray
    titles: pd.Series
    days: pd.Series  # UTC day of each item
    rules: list
    rules_sha256: str

    def fingerprint(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.times).tobytes())
        h.update("\x1f".join(self.titles.fillna("")).encode())
        return h.hexdigest()[:16]


def _news_items(con, source: str, loaded: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """A news source's items with a usable time, read once per claim (displacement and pressure
    usually read the same source)."""
    if source not in loaded:
        loaded[source] = con.execute(
            """SELECT epoch(i.published_utc) AS t, strftime(i.published_utc, '%Y-%m-%d') AS day, i.title,
                      i.minute_usable AS minute
               FROM v_items i WHERE i.source = ? AND i.time_usable
               ORDER BY i.published_utc, i.item_id""",
            [source],
        ).df()
    return loaded[source]


def _story_inputs(con, claim: Claim, spec: dict, loaded: dict[str, pd.DataFrame], *,
                  to_the_minute: bool) -> StoryInputs:
    """The news stream for stories. Displacement counts items in windows of hours, so only
    minute-precise times (``to_the_minute``); pressure counts by day, so a date is enough."""
    news = _news_items(con, spec["news_source"], loaded)
    if to_the_minute:
        news = news[news["minute"]].reset_index(drop=True)
    if news.empty:
        raise AnalysisError(f"news source {spec['news_source']!r} has no items with usable times")
    path = resolve_relative(claim, spec["stories_file"])
    if not path.is_file():
        raise AnalysisError(f"story rules {spec['stories_file']!r} not found (looked for {path})")
    return StoryInputs(spec["news_source"], news["t"].to_numpy(dtype=np.float64), news["title"],
                       news["day"], load_story_rules(path), hashlib.sha256(path.read_bytes()).hexdigest()[:16])


def _displacement(claim: Claim, releases: list[Event], news: StoryInputs,
                  series: list[Event]) -> DisplacementResult:
    spec = claim.displacement
    matrix = story_matrix(news.titles, news.rules)
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
        prep.displacement_news = _story_inputs(con, claim, claim.displacement, news, to_the_minute=True)
        prep.displacement_series = load_events(
            con, EventSelector.parse(claim.displacement["series"], "displacement.series"))
    if claim.pressure:
        prep.pressure_news = _story_inputs(con, claim, claim.pressure, news, to_the_minute=False)
    prep.snapshot = {
        "releases": {e.event_id: [iso_z(e.lo), iso_z(e.hi)] for e in releases},
        "streams": {s.spec.label: {"n": s.n, "excluded": s.excluded, "first": iso_z(s.coverage.start),
                                   "last": iso_z(s.coverage.end), "sha256": s.fingerprint()}
                    for s in streams},
        "skipped_streams": skipped,
        "competitors": {e.event_id: [iso_z(e.lo), iso_z(e.hi)] for e in prep.competitors},
        "stories": {k: [n.source, n.fingerprint(), n.rules_sha256]
                    for k, n in (("displacement", prep.displacement_news), ("pressure", prep.pressure_news)) if n},
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
        pressure = daily_pressure(n.days, story_matrix(n.titles, n.rules))
    return AnalysisResult(
        claim=claim, run_id=prep.run_id, created_utc=datetime.now(UTC), releases=prep.releases,
        competitors=_competitors(prep.releases, prep.competitors), streams=results,
        parameters=prep.parameters, snapshot=prep.snapshot,
        displacement=(_displacement(claim, prep.releases, prep.displacement_news, prep.displacement_series)
                      if prep.displacement_news is not None else None),
        displacement_spec=claim.displacement, pressure=pressure,
    )


def run_claim(con: duckdb.DuckDBPyConnection, claim: Claim, *, surrogates: int | None = None,
              seed: int | None = None, draws: int | None = None) -> AnalysisResult:
    """Prepare and run a claim. Nothing is written; see ``pipeline.analysis.runs``."""
    return run_prepared(prepare_claim(con, claim, surrogates=surrogates, seed=seed, draws=draws))
