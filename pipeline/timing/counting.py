"""Counting announcements near many candidate release positions, exactly and fast.

Every null model moves a release by whole steps (a minute by default) within a set of positions
it declares up front (its ``Reach``: for the weekday-hour shuffle, one hour-wide segment per
week). For each release we tabulate, once, how many announcements lie before every reachable
grid point, plus the window or lag margins. A count over a window whose edges are whole steps is
then two lookups in a table of a few thousand entries, which stays in cache while all the
surrogates of that release are counted; no binary search over a million announcements per
surrogate. Releases whose reach is too large to tabulate (or that share a grid, as under the
circular shift) share tables by grid or fall back to ``np.searchsorted``. All paths give
identical counts; the tests check them against brute force.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

# Above this many cells a release's table costs more to build than searching saves.
MAX_TABLE_CELLS = 4_000_000


@dataclass(frozen=True)
class TimeParts:
    """A set of announcement times given as parts: the exact times, the same in every draw of
    the uncertain ones, and one such draw. Every count is a sum over the parts, so the exact
    part is never merged with (or re-sorted beside) what each draw moves."""

    parts: tuple[np.ndarray, ...]
    # The first part's counts at each count table's grid, shared by every draw of one run. With
    # exact releases the grids are the same in every draw and only the drawn part is searched;
    # the first part is then taken as sorted and finite (checked once, where it was made).
    first_tables: dict[tuple[float, ...], dict[str, np.ndarray]] | None = None


@dataclass(frozen=True)
class Announcements:
    """Sorted announcement times (epoch seconds) on a line, or on a circle of length ``period``,
    as one or more sorted parts whose union is the set (see ``TimeParts``).

    On a circle (the circular-shift null) a time t and t + period are the same instant; counts
    near the seam then include announcements from the other end.
    """

    parts: tuple[np.ndarray, ...]
    period: float | None = None
    start: float = 0.0
    first_tables: dict[tuple[float, ...], dict[str, np.ndarray]] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, *parts: ArrayLike, period: float | None = None, start: float = 0.0,
           first_tables: dict[tuple[float, ...], dict[str, np.ndarray]] | None = None) -> Announcements:
        ready = []
        for i, part in enumerate(parts or (np.empty(0),)):
            arr = np.asarray(part, dtype=np.float64)
            if i == 0 and first_tables is not None:  # checked where it was made (TimeParts)
                ready.append(arr)
                continue
            if arr.size and not np.isfinite(arr).all():
                raise ValueError("announcement times must be finite")
            # Times from the store, and the exact part of every draw, come sorted: checking
            # costs a fraction of sorting again.
            ready.append(arr if (arr[1:] >= arr[:-1]).all() else np.sort(arr))
        return cls(tuple(ready), period, start, first_tables)

    @property
    def times(self) -> np.ndarray:
        """The whole set, sorted."""
        return self.parts[0] if len(self.parts) == 1 else np.sort(np.concatenate(self.parts))

    def unrolled(self, reach: float) -> tuple[np.ndarray, ...]:
        """Each part, with copies one period either side when on a circle (for windows ≤ reach)."""
        if self.period is None:
            return self.parts
        return tuple(np.concatenate([t[t >= self.start + self.period - reach] - self.period, t,
                                     t[t < self.start + reach] + self.period]) for t in self.parts)


def count_before(parts: tuple[np.ndarray, ...], positions: np.ndarray,
                 side: Literal["left", "right"]) -> np.ndarray:
    """#times < position (left) or <= it (right), summed over the sorted parts."""
    total = np.zeros(np.shape(positions), dtype=np.int64)
    for part in parts:
        total += np.searchsorted(part, positions, side=side)
    return total


@dataclass(frozen=True)
class Reach:
    """The steps a null can move one release by: {k * period + j : k_lo <= k <= k_hi, a <= j <= b}.

    ``b - a < period``, so every reachable step has one (k, j). Step 0 (the observed position)
    must be reachable.
    """

    period: int
    k_lo: int
    k_hi: int
    a: int
    b: int

    @classmethod
    def interval(cls, lo: int, hi: int) -> Reach:
        return cls(period=hi - lo + 1, k_lo=0, k_hi=0, a=lo, b=hi)

    @property
    def cells(self) -> int:
        return (self.k_hi - self.k_lo + 1) * (self.b - self.a + 1)


class ReleaseTable:
    """Cumulative announcement counts at every grid point a release can reach, ± a margin."""

    def __init__(self, parts: tuple[np.ndarray, ...], origin: float, step: float, reach: Reach, margin: int,
                 first: dict[str, np.ndarray] | None = None):
        self.reach = reach
        self.margin = margin
        self.width = reach.b - reach.a + 1 + 2 * margin
        ks = np.arange(reach.k_lo, reach.k_hi + 1)
        js = np.arange(reach.a - margin, reach.b + margin + 1)
        grid = origin + step * (ks[:, None] * reach.period + js[None, :]).ravel().astype(np.float64)
        self._parts = parts
        self._grid = grid
        self._first = first  # the first part's counts at this grid, kept across draws
        self.lt = self._count("left")
        self._le: np.ndarray | None = None

    def _count(self, side: Literal["left", "right"]) -> np.ndarray:
        if self._first is None:
            return count_before(self._parts, self._grid, side).astype(np.int32)
        first = self._first.get(side)
        if first is None:
            first = self._first[side] = np.searchsorted(self._parts[0], self._grid, side=side)
        return (first + count_before(self._parts[1:], self._grid, side)).astype(np.int32)

    @property
    def le(self) -> np.ndarray:
        if self._le is None:  # only windows closed on the right need it
            if len(self._parts) > 1:
                self._le = self._count("right")
                return self._le
            # "<=" differs from "<" only where an announcement sits exactly on a grid point.
            times = self._parts[0]
            le = self.lt.copy()
            n = len(times)
            if n:
                on = times[np.minimum(self.lt, n - 1)] == self._grid
                le[on] = np.searchsorted(times, self._grid[on], side="right")
            self._le = le
        return self._le

    def index(self, steps: np.ndarray, offset: np.ndarray | int) -> np.ndarray:
        r = self.reach
        if r.k_lo == r.k_hi == 0:  # one segment (jitter, circular): no week arithmetic
            return steps + (offset - (r.a - self.margin))
        k = np.floor_divide(steps - r.a, r.period)
        return (k - r.k_lo) * self.width + (steps + offset - k * r.period - (r.a - self.margin))


class ReleaseCounter:
    """Counts for one release at positions ``base + steps * step``."""

    def __init__(self, parts: tuple[np.ndarray, ...], base: float, step: float, table: ReleaseTable | None):
        self.parts = parts
        self.base = base
        self.step = step
        self.table = table

    def edge(self, steps: np.ndarray, offset: np.ndarray | int, side: Literal["left", "right"]) -> np.ndarray:
        """#announcements < position + offset*step (left) or <= it (right).

        ``offset`` may be an array broadcasting against ``steps`` (all lag edges at once).
        """
        if self.table is None:
            pos = self.base + np.add(steps, offset, dtype=np.float64) * self.step
            return count_before(self.parts, pos, side)
        idx = self.table.index(steps, offset)
        return (self.table.lt if side == "left" else self.table.le)[idx]

    def window(self, steps: np.ndarray, w: int) -> np.ndarray:
        """Announcements with |t - position| <= w steps."""
        return self.edge(steps, w, "right").astype(np.int64) - self.edge(steps, -w, "left")

    def between(self, steps: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Announcements with position + lo*step <= t < position + hi*step."""
        return self.edge(steps, hi, "left").astype(np.int64) - self.edge(steps, lo, "left")


class PositionCounter:
    """One ``ReleaseCounter`` per release, sharing tables between releases on the same grid."""

    def __init__(self, ann: Announcements, bases: np.ndarray, step: float, margin: int,
                 reaches: list[Reach]):
        self.step = float(step)
        self.bases = np.asarray(bases, dtype=np.float64)
        self.parts = ann.unrolled((margin + 1) * self.step)
        self.margin = margin
        self.first_tables = ann.first_tables
        # Not NaN for "no circle": NaN != NaN, so no later draw would find the tables it keys.
        self.grid_of = (float(margin), self.step, 0.0 if ann.period is None else ann.period, ann.start)
        self.reaches = reaches
        self._shared: dict[tuple[float, ...], ReleaseTable] = {}
        self._counters: dict[int, ReleaseCounter] = {}

    def release(self, i: int) -> ReleaseCounter:
        found = self._counters.get(i)
        if found is None:
            found = self._counters[i] = self._build(i)
        return found

    def _build(self, i: int) -> ReleaseCounter:
        base = self.bases[i]
        reach = self.reaches[i]
        if reach.cells + (reach.k_hi - reach.k_lo + 1) * 2 * self.margin > MAX_TABLE_CELLS:
            return ReleaseCounter(self.parts, base, self.step, None)
        # Releases whose grids coincide (same phase, same absolute cells) share one table.
        phase = float(np.mod(base, self.step))
        anchor = int(round((base - phase) / self.step))
        key = (phase, anchor + reach.a + reach.k_lo * reach.period, reach.b - reach.a,
               reach.period, reach.k_hi - reach.k_lo)
        table = self._shared.get(key)
        if table is None:
            first = None if self.first_tables is None else self.first_tables.setdefault(self.grid_of + key, {})
            table = ReleaseTable(self.parts, base, self.step, reach, self.margin, first)
            self._shared[key] = table
        elif table.reach != reach:
            table = _rebased(table, reach)
        return ReleaseCounter(self.parts, base, self.step, table)

    # Whole-matrix conveniences (the last axis is the release), used by tests and small jobs.
    def window(self, steps: np.ndarray, w: int) -> np.ndarray:
        steps = np.asarray(steps, dtype=np.int64)
        out = np.empty(steps.shape, dtype=np.int64)
        for i in range(steps.shape[-1]):
            out[..., i] = self.release(i).window(steps[..., i], w)
        return out

    def between(self, steps: np.ndarray, lo: int, hi: int) -> np.ndarray:
        steps = np.asarray(steps, dtype=np.int64)
        out = np.empty(steps.shape, dtype=np.int64)
        for i in range(steps.shape[-1]):
            out[..., i] = self.release(i).between(steps[..., i], lo, hi)
        return out


def _rebased(table: ReleaseTable, reach: Reach) -> ReleaseTable:
    """The same cells seen from another release on the same grid (its steps are shifted)."""
    view = object.__new__(ReleaseTable)
    view.__dict__.update(table.__dict__)
    view.reach = reach
    return view
