"""Loading what a claim's tests read from the store: events, streams, and the news a story
measure counts. Everything leaves here as numpy arrays of epoch seconds or small frames, so the
run that follows (``analyze.run_prepared``) needs no database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import duckdb
import numpy as np
import pandas as pd

from pipeline.analysis.claims import Claim, EventSelector, StreamSpec, resolve_relative
from pipeline.analysis.results import NEARBY_HOURS, Event, StreamSummary
from pipeline.analysis.stories import StoryRule, load_story_rules
from pipeline.errors import UserError
from pipeline.timing.coincidence import DEFAULT_STEP
from pipeline.timing.nulls import Coverage


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


@dataclass
class StoryInputs:
    """A news stream's items and story rules, for displacement and pressure."""

    source: str
    times: np.ndarray
    titles: pd.Series
    days: pd.Series  # UTC day of each item
    rules: list[StoryRule]
    rules_sha256: str

    def fingerprint(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.times).tobytes())
        h.update("\x1f".join(self.titles.fillna("")).encode())
        return h.hexdigest()[:16]


def news_items(con, source: str, loaded: dict[str, pd.DataFrame]) -> pd.DataFrame:
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


def story_inputs(con, claim: Claim, spec: dict, loaded: dict[str, pd.DataFrame], *,
                  to_the_minute: bool) -> StoryInputs:
    """The news stream for stories. Displacement counts items in windows of hours, so only
    minute-precise times (``to_the_minute``); pressure counts by day, so a date is enough."""
    news = news_items(con, spec["news_source"], loaded)
    if to_the_minute:
        news = news[news["minute"]].reset_index(drop=True)
    if news.empty:
        raise AnalysisError(f"news source {spec['news_source']!r} has no items with usable times")
    path = resolve_relative(claim, spec["stories_file"])
    if not path.is_file():
        raise AnalysisError(f"story rules {spec['stories_file']!r} not found (looked for {path})")
    rules = load_story_rules(path)
    return StoryInputs(spec["news_source"], news["t"].to_numpy(dtype=np.float64), news["title"],
                       news["day"], rules.rules, rules.sha256)
