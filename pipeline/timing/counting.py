"""Counting announcements near many candidate release positions, exactly and fast.

Every null model here moves releases by whole steps of ``step`` seconds (a minute by default),
so each candidate position is ``base + k * step`` for an integer k. For releases sharing the
same ``base mod step`` we tabulate, once, how many announcements lie before each grid point;
any count in a window whose edges are whole steps is then two lookups in a small table instead
of two binary searches over a million announcements. Releases whose phases are too varied to
share tables fall back to ``np.searchsorted``; both paths give identical counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Above this many distinct phases, building tables costs more than it saves.
MAX_TABLE_GROUPS = 64
# A table covers the span plus margins; refuse absurd spans rather than allocate gigabytes.
MAX_TABLE_CELLS = 50_000_000


@dataclass(frozen=True)
class Announcements:
    """Sorted announcement times (epoch seconds) on a line, or on a circle of length ``period``.

    On a circle (the circular-shift null) a time t and t + period are the same instant; counts
    near the seam then include announcements from the other end.
    """

    times: np.ndarray
    period: float | None = None
    start: float = 0.0

    @classmethod
    def of(cls, times, *, period: float | None = None, start: float = 0.0) -> Announcements:
        arr = np.sort(np.asarray(times, dtype=np.float64))
        if arr.size and not np.isfinite(arr).all():
            raise ValueError("announcement times must be finite")
        return cls(arr, period, start)

    def unrolled(self, reach: float) -> np.ndarray:
        """The times, with copies one period either side when on a circle (for windows ≤ reach)."""
        if self.period is None:
            return self.times
        t = self.times
        before = t[t >= self.start + self.period - reach] - self.period
        after = t[t < self.start + reach] + self.period
        return np.concatenate([before, t, after])


class PositionCounter:
    """Counts for positions ``bases[i] + steps[..., i] * step`` (the last axis is the release).

    ``window(steps, w)``: announcements with |t - position| <= w * step.
    ``between(steps, lo, hi)``: announcements with position + lo*step <= t < position + hi*step.
    ``span_steps`` bounds the steps that will be asked for, ``reach_steps`` the offsets.
    """

    def __init__(self, ann: Announcements, bases: np.ndarray, step: float, reach_steps: int,
                 span_steps: tuple[int, int]):
        self.step = float(step)
        self.bases = np.asarray(bases, dtype=np.float64)
        self.times = ann.unrolled((reach_steps + 1) * self.step)
        self.index: np.ndarray | None = None  # per release: table offset of step 0
        lo_steps, hi_steps = span_steps
        phase = np.mod(self.bases, self.step)
        phases, group_of = np.unique(phase, return_inverse=True)
        anchor = np.rint((self.bases - phase) / self.step).astype(np.int64)
        if not 0 < len(phases) <= MAX_TABLE_GROUPS:
            return
        grids, index, used = [], np.empty(len(self.bases), dtype=np.int64), 0
        for g, ph in enumerate(phases):
            members = group_of == g
            k0 = int(anchor[members].min()) + lo_steps - reach_steps
            k1 = int(anchor[members].max()) + hi_steps + reach_steps
            if used + (k1 - k0 + 1) > MAX_TABLE_CELLS:
                return
            grids.append(ph + self.step * np.arange(k0, k1 + 1, dtype=np.float64))
            index[members] = used - k0 + anchor[members]
            used += k1 - k0 + 1
        grid = np.concatenate(grids)
        # Cumulative counts at every grid point: < (left) and <= (right).
        self.lt = np.searchsorted(self.times, grid, side="left").astype(np.int32)
        self.le = np.searchsorted(self.times, grid, side="right").astype(np.int32)
        self.index = index

    @property
    def tabulated(self) -> bool:
        return self.index is not None

    def _edge(self, steps: np.ndarray, offset: int, side: str) -> np.ndarray:
        steps = np.asarray(steps, dtype=np.int64)
        if self.index is None:
            pos = self.bases + (steps + offset) * self.step
            return np.searchsorted(self.times, pos, side=side)
        table = self.lt if side == "left" else self.le
        return table[steps + (self.index + offset)]

    def window(self, steps: np.ndarray, w: int) -> np.ndarray:
        return self._edge(steps, w, "right").astype(np.int64) - self._edge(steps, -w, "left")

    def between(self, steps: np.ndarray, lo: int, hi: int) -> np.ndarray:
        return self._edge(steps, hi, "left").astype(np.int64) - self._edge(steps, lo, "left")
