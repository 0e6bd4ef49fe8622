"""When a story broke in a stream, and which of two stories came first.

Three onset measures, because each fails differently (measured on a real headline stream, see
the README): the earliest item (most sensitive; one mis-dated item moves it), the time by which
a 2nd and a 3rd distinct outlet carried the story (robust to one stray item, late in sparse
streams), and the start of a burst in Kleinberg's batched two-state model (robust to scattered
early mentions, silent for small stories, quantised to bins).

Every time is an interval: an item stamped to the minute was published somewhere in
[t, t + 60 s); a date-only item anywhere in its day. Orders and gaps carry those bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


def kleinberg_states(relevant: np.ndarray, total: np.ndarray, s: float = 3.0,
                     gamma: float = 1.0) -> np.ndarray:
    """Kleinberg's batched two-state automaton (Kleinberg 2002, section 4): per bin, r of d
    items are relevant; the base state expects the overall share p0, the burst state s * p0.
    Moving up costs gamma * ln(bins), moving down is free. Returns the Viterbi state per bin
    (0 or 1). All-zero when there is nothing relevant or the burst share would exceed 1."""
    r = np.asarray(relevant, dtype=np.int64)
    d = np.asarray(total, dtype=np.int64)
    n = r.size
    if n == 0 or r.sum() == 0 or (r > d).any():
        return np.zeros(n, dtype=np.int8)
    p0 = r.sum() / d.sum()
    p1 = min(s * p0, 1.0)
    if p1 <= p0:
        return np.zeros(n, dtype=np.int8)
    cost = np.stack([-stats.binom.logpmf(r, d, p) for p in (p0, p1)])  # (2, n)
    cost = np.where(np.isfinite(cost), cost, 1e300)
    up = gamma * np.log(n)
    best = np.array([0.0, up]) + cost[:, 0]
    back = np.zeros((2, n), dtype=np.int8)
    for t in range(1, n):
        stay0, from1 = best[0], best[1]  # into 0: from 0, or down from 1 (free)
        stay1, from0 = best[1], best[0] + up
        back[0, t] = 0 if stay0 <= from1 else 1
        back[1, t] = 1 if stay1 <= from0 else 0
        best = np.array([min(stay0, from1), min(stay1, from0)]) + cost[:, t]
    states = np.zeros(n, dtype=np.int8)
    states[-1] = int(np.argmin(best))
    for t in range(n - 1, 0, -1):
        states[t - 1] = back[states[t], t]
    return states


@dataclass(frozen=True)
class Onset:
    """A story's onset in one stream. Times are epoch seconds; NaN where not defined."""

    n_items: int  # distinct items, a re-posted copy counted once per outlet
    n_outlets: int
    first: int  # index (into the arrays given) of the earliest item, -1 if none
    onset_lo: float
    onset_hi: float
    outlet2: float  # when a 2nd distinct outlet first had it
    outlet3: float
    burst_start: float  # start of the first 15-min bin in Kleinberg's burst state

    @property
    def found(self) -> bool:
        return self.first >= 0


NO_ONSET = Onset(0, 0, -1, np.nan, np.nan, np.nan, np.nan, np.nan)


def kth_outlet(lo: np.ndarray, outlets: np.ndarray, k: int) -> float:
    """When the k-th distinct outlet first carried the story (each outlet at its first item)."""
    firsts = np.sort([lo[outlets == o].min() for o in np.unique(outlets)])
    return float(firsts[k - 1]) if firsts.size >= k else np.nan


def story_onset(lo: np.ndarray, hi: np.ndarray, outlets: np.ndarray, copies: np.ndarray,
                stream_lo: np.ndarray, bin_s: float = 900.0, span: tuple[float, float] | None = None,
                s: float = 3.0, gamma: float = 1.0) -> Onset:
    """The onset of one story in one stream.

    ``lo``/``hi`` bound each story item's publication, ``outlets`` names who published it,
    ``copies`` groups near-duplicates (one group id per distinct text); ``stream_lo`` holds the
    lower bounds of every item of the stream (the denominators of the burst model), and ``span``
    the interval the bins cover (default: the stream's). A copy an outlet re-posted counts once.
    """
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    if lo.size == 0:
        return NO_ONSET
    outlets, copies = np.asarray(outlets), np.asarray(copies)
    pairs = {(o, c) for o, c in zip(outlets.tolist(), copies.tolist())}
    first = int(np.lexsort((hi, lo))[0])
    start, end = span if span else (float(np.min(stream_lo)), float(np.max(stream_lo)) + bin_s)
    edges = start + bin_s * np.arange(int(np.ceil((end - start) / bin_s)) + 1)
    burst = np.nan
    if edges.size > 1:
        r, _ = np.histogram(lo, bins=edges)
        d, _ = np.histogram(np.asarray(stream_lo, dtype=np.float64), bins=edges)
        states = kleinberg_states(r, np.maximum(d, r), s, gamma)
        if states.any():
            burst = float(edges[int(np.argmax(states))])
    return Onset(len(pairs), int(np.unique(outlets).size), first, float(lo[first]), float(hi[first]),
                 kth_outlet(lo, outlets, 2), kth_outlet(lo, outlets, 3), burst)


@dataclass(frozen=True)
class Order:
    """Which of two stories broke first in a stream, with the gap (b minus a) and its bounds."""

    first: str | None  # the story that came first, None when undetermined
    gap_s: float  # at the lower bounds of both onsets
    gap_lo_s: float
    gap_hi_s: float
    why: str  # "" when determined; else why the order cannot be told


def order_of(a: str, oa: Onset, b: str, ob: Onset, resolution_s: float) -> Order:
    """Order of the onsets of stories ``a`` and ``b``: undetermined when either has none, their
    intervals overlap, or the gap is below the stream's time resolution."""
    if not (oa.found and ob.found):
        missing = " and ".join(n for n, o in ((a, oa), (b, ob)) if not o.found)
        return Order(None, np.nan, np.nan, np.nan, f"no onset for {missing}")
    gap_lo, gap_hi = ob.onset_lo - oa.onset_hi, ob.onset_hi - oa.onset_lo
    gap = ob.onset_lo - oa.onset_lo
    if gap_lo < 0 < gap_hi or gap_lo == gap_hi == 0:
        return Order(None, gap, gap_lo, gap_hi, "their onset intervals overlap")
    if abs(gap) < resolution_s:
        return Order(None, gap, gap_lo, gap_hi, "the gap is below the stream's time resolution")
    return Order(a if gap > 0 else b, gap, gap_lo, gap_hi, "")
