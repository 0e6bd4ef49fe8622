"""Story onsets of a claim: when each story broke in each stream, and which came first.

load (``onset_inputs`` reads the store) -> measure (``measure_onsets``, no I/O) -> stored with the
claim's run (``runs.store_result``, table ``story_onsets``, view ``v_story_onsets``).

A claim names them under ``onsets:`` (``stories_file``, optionally ``stories``, ``sources`` and
``bin_minutes``). Each story's rule is anchored on a sourced event; an item counts for the onset
only inside the rule's window around that event. Near-duplicate copies (a re-post, a syndicated
headline) are grouped by MinHash and count once per outlet. Where a stream's onsets come later
than the sourced events they belong to by more than ``LAG_TOLERANCE_S``, the stream is lagged
(re-posting accounts, batch archives): its order is reported, its gaps are not the true gaps.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from itertools import combinations

import duckdb
import numpy as np
import pandas as pd
from datasketch import MinHash, MinHashLSH

from pipeline.analysis.claims import Claim, EventSelector, resolve_relative
from pipeline.analysis.loading import load_events
from pipeline.analysis.results import Event
from pipeline.analysis.stories import StoryRule, StoryRules, load_story_rules, match_stories
from pipeline.errors import UserError
from pipeline.timestamps import iso_z
from pipeline.timing.onsets import Onset, order_of, story_onset

ALL = "all streams"
MATCH = "_story:"  # the column prefix of an item's story matches
LAG_TOLERANCE_S = 15 * 60
COPY_THRESHOLD = 0.5  # Jaccard similarity of word-bigram sets above which two texts are copies
_WORDS = re.compile(r"[a-z0-9']+")
_NOISE = re.compile(r"https?://\S+|#\w+|^foke\s+|\s+#?foke$", re.IGNORECASE)


class OnsetError(UserError):
    pass


@dataclass
class OnsetInputs:
    """Everything ``measure_onsets`` reads: the rules, their anchor events, each stream's items."""

    rules: StoryRules
    stories: list[StoryRule]
    anchors: dict[str, Event]
    streams: dict[str, pd.DataFrame]  # source -> lo, hi, title, author, url, outlet
    bin_s: float

    def fingerprint(self) -> list:
        h = hashlib.sha256()
        for name, items in sorted(self.streams.items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(items["lo"].to_numpy(dtype=np.float64)).tobytes())
            h.update("\x1f".join(items["title"].fillna("")).encode())
        return [self.rules.sha256, sorted(self.streams), h.hexdigest()[:16]]


def onset_sources(con: duckdb.DuckDBPyConnection, claim: Claim, spec: dict,
                  chosen: list[str] | None = None) -> list[str]:
    """The streams onsets are measured in: ``chosen`` (``--source``), else the claim's
    ``onsets.sources``, else every source stream of the claim and its displacement news source."""
    names = list(chosen or spec.get("sources") or [])
    if not names:
        names = [s.source for s in claim.streams if s.source]
        if claim.displacement and claim.displacement["news_source"] not in names:
            names.append(claim.displacement["news_source"])
    known = {n for (n,) in con.execute("SELECT name FROM sources").fetchall()}
    missing = [n for n in names if n not in known]
    if missing:
        raise OnsetError(f"claim {claim.id}: no source {', '.join(map(repr, missing))} in the database; "
                         f"it has {', '.join(sorted(known)) or 'none'}")
    return names


def onset_items(con: duckdb.DuckDBPyConnection, source: str) -> pd.DataFrame:
    """A stream's items as intervals: a usable claimed time spans its precision (never finer
    than a minute: feeds that print seconds rarely keep them), and no later than the archive
    capture that already held the item; an archived item without a usable claim spans its
    first-seen interval (previous capture, first capture with it]."""
    return con.execute(
        """WITH i AS (
             SELECT epoch(published_utc) AS p, greatest(coalesce(time_precision_s, 1), 60) AS width,
                    epoch(first_seen_lo_utc) AS seen_lo, epoch(first_seen_utc) AS seen_hi, time_usable,
                    title, author, url, source, published_utc, item_id
             FROM v_items WHERE source = ? AND (time_usable OR first_seen_lo_utc IS NOT NULL))
           SELECT CASE WHEN time_usable THEN least(p, coalesce(seen_hi, p)) ELSE seen_lo END AS lo,
                  CASE WHEN time_usable THEN least(p + width, coalesce(seen_hi + 1, p + width)) ELSE seen_hi END AS hi,
                  title, coalesce(author, '') AS author, coalesce(url, '') AS url,
                  coalesce(nullif(author, ''), source) AS outlet
           FROM i ORDER BY lo, item_id""",
        [source]).df()


def onset_inputs(con: duckdb.DuckDBPyConnection, claim: Claim,
                 sources: list[str] | None = None) -> OnsetInputs | None:
    """Load what the claim's onsets read (None when the claim names no onsets). ``sources``
    overrides the claim's streams."""
    spec = claim.onsets
    if not spec:
        return None
    path = resolve_relative(claim, spec["stories_file"])
    rules = load_story_rules(path)
    stories = rules.named(spec.get("stories"))
    ids = sorted({r.anchor for r in stories if r.anchor})
    # load_events refuses ids that are not in the events table, naming them.
    anchors = {e.event_id: e for e in load_events(con, EventSelector(event_ids=tuple(ids)))} if ids else {}
    names = onset_sources(con, claim, spec, sources)
    return OnsetInputs(rules, stories, anchors, {n: onset_items(con, n) for n in names},
                       float(spec.get("bin_minutes", 15)) * 60)


def copy_groups(texts: pd.Series) -> np.ndarray:
    """A group id per text; near-duplicates (MinHash LSH over word bigrams, Jaccard >= 0.5)
    share one. Links (t.co) and hashtags are not part of a headline's text."""
    lsh = MinHashLSH(threshold=COPY_THRESHOLD, num_perm=64)
    parent = np.arange(len(texts))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for i, text in enumerate(texts.fillna("").astype(str)):
        words = _WORDS.findall(_NOISE.sub(" ", text).lower())
        grams = {" ".join(p) for p in zip(words, words[1:])} or set(words) or {f"\x00{i}"}
        m = MinHash(num_perm=64, seed=1)
        m.update_batch([g.encode() for g in grams])
        for j in lsh.query(m):
            parent[root(int(j))] = root(i)
        lsh.insert(i, m)
    return np.array([root(i) for i in range(len(texts))])


def resolution_s(items: pd.DataFrame) -> float:
    """The stream's time resolution: the median width of its items' time intervals, at least a
    minute (an order closer than that cannot be told)."""
    return max(60.0, float(np.median(items["hi"] - items["lo"]))) if len(items) else 60.0


def story_window(rule: StoryRule, anchors: dict[str, Event]) -> tuple[float, float] | None:
    """The (epoch) span around its anchor event in which an item can be the story's onset;
    None for a story without an anchor (or whose anchor is not loaded)."""
    e = anchors.get(rule.anchor) if rule.anchor else None
    if e is None:
        return None
    return e.lo + rule.window_hours[0] * 3600, e.hi + rule.window_hours[1] * 3600


def in_window(items: pd.DataFrame, window: tuple[float, float] | None) -> np.ndarray:
    """Which items' intervals reach into ``window`` (all of them for no window)."""
    if window is None:
        return np.ones(len(items), dtype=bool)
    return (items["hi"].to_numpy() > window[0]) & (items["lo"].to_numpy() <= window[1])


def _record(story: str, source: str, items: pd.DataFrame, o: Onset, anchor: Event | None) -> dict:
    def z(t: float) -> str | None:
        return iso_z(t) if np.isfinite(t) else None
    first = items.iloc[o.first] if o.found else None
    lag = (o.onset_lo - anchor.hi) / 60 if (o.found and anchor is not None) else None
    return {
        "story": story, "source": source, "onset_utc": z(o.onset_lo), "onset_lo_utc": z(o.onset_lo),
        "onset_hi_utc": z(o.onset_hi), "first_title": None if first is None else first["title"],
        "first_author": None if first is None else first["outlet"],
        "first_url": None if first is None else (first["url"] or None),
        "outlet2_utc": z(o.outlet2), "outlet3_utc": z(o.outlet3), "burst_start_utc": z(o.burst_start),
        "n_items": o.n_items, "n_outlets": o.n_outlets,
        "anchor_event": anchor.event_id if anchor else None,
        "anchor_utc": iso_z(anchor.ts) if anchor else None,
        "lag_minutes": None if lag is None else round(float(lag), 1),
    }


def _orders(source: str, found: dict[str, Onset], res: float, lagged: bool) -> list[dict]:
    out = []
    for a, b in combinations(list(found), 2):
        o = order_of(a, found[a], b, found[b], res)
        out.append({"source": source, "story_a": a, "story_b": b, "first": o.first,
                    "gap_minutes": None if not np.isfinite(o.gap_s) else round(o.gap_s / 60, 1),
                    "gap_lo_minutes": None if not np.isfinite(o.gap_lo_s) else round(o.gap_lo_s / 60, 1),
                    "gap_hi_minutes": None if not np.isfinite(o.gap_hi_s) else round(o.gap_hi_s / 60, 1),
                    "undetermined": o.why or None, "lagged": lagged,
                    "resolution_minutes": round(res / 60, 1)})
    return out


def _stream(source: str, items: pd.DataFrame, inp: OnsetInputs) -> tuple[list[dict], list[dict], dict]:
    """``items`` carries a boolean column MATCH + story per story (matched once for all streams)."""
    records, found, notes = [], {}, {}
    res = resolution_s(items)
    for rule in inp.stories:
        span = story_window(rule, inp.anchors)
        mask = items[MATCH + rule.name].to_numpy(dtype=bool) & in_window(items, span)
        story_items = items[mask].reset_index(drop=True)
        anchor = inp.anchors.get(rule.anchor) if rule.anchor else None
        o = story_onset(story_items["lo"].to_numpy(), story_items["hi"].to_numpy(),
                        story_items["outlet"].to_numpy(), copy_groups(story_items["title"]),
                        items["lo"].to_numpy(), inp.bin_s, span)
        records.append(_record(rule.name, source, story_items, o, anchor))
        found[rule.name] = o
        if not o.found:
            notes[rule.name] = "matches nothing in this stream" + (" inside its window" if anchor else "")
        elif anchor is not None and o.onset_hi < anchor.lo - res:
            notes[rule.name] = (f"its first match comes {(anchor.lo - o.onset_hi) / 60:.0f} min before the "
                                f"sourced event {anchor.event_id}: a pre-story or a rule that catches "
                                "something else; audit it with `media-timing stories check`")
    # Lag: how long after its sourced event (the end of the event's interval) a story's first
    # item came. A stream that lags cannot give the true gaps, only (at best) the order.
    lags = [r["lag_minutes"] for r in records if r["lag_minutes"] is not None]
    lagged = bool(lags) and max(lags) * 60 > LAG_TOLERANCE_S
    summary = {"source": source, "n_items": len(items), "resolution_minutes": round(res / 60, 1),
               "lagged": lagged, "max_lag_minutes": max(lags) if lags else None, "notes": notes}
    return records, _orders(source, found, res, lagged), summary


def measure_onsets(inp: OnsetInputs) -> dict:
    """Onsets of every story in every stream and in all streams together, the order of each
    pair of stories per stream, and each stream's lag behind the sourced events. No I/O."""
    frames = [df.assign(stream=name) for name, df in inp.streams.items()]
    every = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["title", "stream"])
    matrix = match_stories(every["title"], inp.stories)  # one pass over every stream for every story
    every = pd.concat([every, matrix.add_prefix(MATCH)], axis=1)
    streams = {name: every[every["stream"] == name].reset_index(drop=True) for name in inp.streams}
    if len(streams) > 1:
        together = every.assign(outlet=every["stream"] + "/" + every["outlet"])
        streams[ALL] = together.sort_values(["lo", "hi"], kind="stable").reset_index(drop=True)
    records, orders, summaries = [], [], []
    for source, items in streams.items():
        r, o, s = _stream(source, items, inp)
        records += r
        orders += o
        summaries.append(s)
    overlaps = {f"{a} & {b}": int((matrix[a] & matrix[b]).sum()) for a, b in combinations(matrix.columns, 2)
                if (matrix[a] & matrix[b]).any()}
    return {"rules_file": inp.rules.path.name, "rules_sha256": inp.rules.sha256,
            "stories": [r.name for r in inp.stories], "bin_minutes": inp.bin_s / 60,
            "records": records, "orders": orders, "streams": summaries, "overlaps": overlaps}
