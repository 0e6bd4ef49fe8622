"""What a run concluded, as objects every output reads: the verdict, the report, the digest.

A fresh run and a stored one are the same objects: ``AnalysisResult.to_facts()`` is the JSON
document kept with the run (``analysis_runs.facts``) and ``from_facts`` rebuilds it, so an output
never needs to re-run an analysis to show one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime

import numpy as np
import pandas as pd

from pipeline.analysis.claims import Claim, EventSelector, StreamSpec
from pipeline.timing.coincidence import DEFAULT_STEP, CorrelogramResult
from pipeline.timing.displacement import DisplacementResult
from pipeline.timing.nulls import Coverage
from pipeline.timing.uncertainty import is_uncertain

# Stream times kept with a run for its charts: those within this many hours of a release.
NEARBY_HOURS = 6


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

    @property
    def centre(self) -> float:
        """The time to draw it at: its midpoint when it is an interval."""
        return (self.lo + self.hi) / 2 if self.uncertain else self.ts


@dataclass
class StreamSummary:
    """A tested stream as outputs show it: what it is, how much of it there was, and its times
    near the releases (for charts). The full arrays stay with the analysis."""

    spec: StreamSpec
    n: int
    excluded: int
    excluded_reason: str
    coverage: Coverage
    nearby: np.ndarray  # sorted epoch seconds within NEARBY_HOURS of a release


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
    stream: StreamSummary
    releases: list[ReleaseTest]
    pooled_statistic: float
    pooled_pvalue: float
    pooled_pvalue_min: float
    pooled_pvalue_max: float
    draws: int
    null_description: str
    correlogram: CorrelogramResult | None = None
    correlogram_skipped: list[str] = field(default_factory=list)

    def test_of(self, release_id: str) -> ReleaseTest | None:
        return next((t for t in self.releases if t.release_id == release_id), None)


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
    onsets: dict | None = None  # analysis.onsets.measure_onsets: records, orders, streams, rules
    stored: bool = False

    def to_facts(self) -> dict:
        return {
            "version": 1,
            "claim": _claim_doc(self.claim),
            "run_id": self.run_id,
            "created_utc": self.created_utc.isoformat(),
            "releases": [asdict(e) for e in self.releases],
            "competitors": [{**asdict(c), "event": asdict(c.event)} for c in self.competitors],
            "streams": [_stream_doc(s) for s in self.streams],
            "parameters": self.parameters,
            "snapshot": self.snapshot,
            "displacement": _displacement_doc(self.displacement),
            "displacement_spec": self.displacement_spec,
            "pressure": None if self.pressure is None else self.pressure.to_dict("records"),
            "onsets": self.onsets,
        }

    @classmethod
    def from_facts(cls, doc: dict) -> AnalysisResult:
        d = doc.get("displacement")
        return cls(
            claim=_claim_from(doc["claim"]),
            run_id=doc["run_id"],
            created_utc=datetime.fromisoformat(doc["created_utc"]),
            releases=[Event(**e) for e in doc["releases"]],
            competitors=[Competitor(**{**c, "event": Event(**c["event"])}) for c in doc["competitors"]],
            streams=[_stream_from(s) for s in doc["streams"]],
            parameters=doc["parameters"],
            snapshot=doc["snapshot"],
            displacement=None if d is None else DisplacementResult(**{
                **d, "focal_counts": tuple(d["focal_counts"]),
                "other_counts": [tuple(c) for c in d["other_counts"]], "ci": tuple(_nan(x) for x in d["ci"]),
                "other_shares": np.array([_nan(x) for x in d["other_shares"]], dtype=float),
                "focal_share": _nan(d["focal_share"]), "difference": _nan(d["difference"])}),
            displacement_spec=doc.get("displacement_spec"),
            pressure=None if doc.get("pressure") is None else pd.DataFrame(doc["pressure"]),
            onsets=doc.get("onsets"),
            stored=True,
        )


def _nan(x):
    return float("nan") if x is None else x


def _claim_doc(claim: Claim) -> dict:
    return asdict(claim)


def _claim_from(doc: dict) -> Claim:
    def selector(d):
        return None if d is None else EventSelector(**{k: tuple(v) if isinstance(v, list) else v
                                                       for k, v in d.items()})
    streams = tuple(StreamSpec(**{**s, "events": selector(s.get("events"))}) for s in doc["streams"])
    return Claim(**{**doc, "releases": selector(doc["releases"]),
                    "competitors": selector(doc.get("competitors")), "streams": streams})


_CORRELOGRAM_ARRAYS = ("lags_s", "counts", "null_mean", "pointwise_lo", "pointwise_hi",
                       "global_lo", "global_hi")


def _stream_doc(s: StreamResult) -> dict:
    st = s.stream
    corr = None
    if s.correlogram is not None:
        c = s.correlogram
        # The surrogate distribution stays out: the chart and the p-value need only these.
        corr = {k: getattr(c, k) for k in ("statistic", "pvalue", "bin_s", "max_lag_s", "null",
                                           "null_description", "n_surrogates", "seed", "parameters")}
        corr.update({k: np.asarray(getattr(c, k), dtype=float).tolist() for k in _CORRELOGRAM_ARRAYS})
    return {
        "stream": {"spec": asdict(st.spec), "n": st.n, "excluded": st.excluded,
                   "excluded_reason": st.excluded_reason,
                   "coverage": [st.coverage.start, st.coverage.end],
                   "nearby": np.asarray(st.nearby, dtype=float).tolist()},
        "releases": [asdict(t) for t in s.releases],
        **{f.name: getattr(s, f.name) for f in fields(s)
           if f.name not in ("stream", "releases", "correlogram")},
        "correlogram": corr,
    }


def _stream_from(doc: dict) -> StreamResult:
    st = doc["stream"]
    spec = st["spec"]
    events = spec.get("events")
    spec = StreamSpec(**{**spec, "events": None if events is None else EventSelector(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in events.items()})})
    summary = StreamSummary(spec, st["n"], st["excluded"], st["excluded_reason"],
                            Coverage(*st["coverage"]), np.array(st["nearby"], dtype=float))
    corr = doc.get("correlogram")
    correlogram = None
    if corr is not None:
        arrays = {k: np.array([_nan(x) for x in corr[k]], dtype=float) for k in _CORRELOGRAM_ARRAYS}
        correlogram = CorrelogramResult(**{**corr, **arrays, "null_distribution": np.array([])})
    rest = {k: v for k, v in doc.items() if k not in ("stream", "releases", "correlogram")}
    for k in ("pooled_statistic", "pooled_pvalue", "pooled_pvalue_min", "pooled_pvalue_max"):
        rest[k] = _nan(rest[k])
    tests = [ReleaseTest(**{k: (_nan(v) if k in _FLOAT_TEST_FIELDS else v) for k, v in t.items()})
             for t in doc["releases"]]
    return StreamResult(stream=summary, releases=tests, correlogram=correlogram, **rest)


_FLOAT_TEST_FIELDS = {"count_median", "expected", "pvalue", "pvalue_min", "pvalue_max", "qvalue"}


def _displacement_doc(d: DisplacementResult | None) -> dict | None:
    if d is None:
        return None
    doc = asdict(d)
    doc["other_shares"] = np.asarray(d.other_shares, dtype=float).tolist()
    return doc
