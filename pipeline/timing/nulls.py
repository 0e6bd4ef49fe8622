"""Null models: what "by chance" means for a coincidence between releases and announcements.

Every Monte Carlo null here moves the *releases* and leaves the announcement stream exactly as
observed (its bursts, daily cycle and weekly rhythm all intact). Moving the m releases instead of
regenerating n announcements is what makes 10,000 surrogates over a million announcements cheap,
and it is the honest choice for bursty streams: shuffling announcements one by one would break
their clustering and make chance coincidences look rarer than they are.

Positions move in whole steps (a minute by default) so counts can be read from tables; the
observed position is always one of the null's possible positions, which keeps the Monte Carlo
p-value (b + 1) / (S + 1) valid.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from .counting import Reach

WEEK = 7 * 86400
DAY = 86400
# 1970-01-05 00:00 UTC was a Monday: weeks are counted from there.
MONDAY_EPOCH = 4 * DAY


@dataclass(frozen=True)
class Coverage:
    """The interval [start, end) in which the announcement stream was being collected."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise ValueError("coverage must end after it starts")

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass
class Draws:
    """Surrogate positions as whole steps from each release's observed time."""

    steps: np.ndarray  # (S, m) int64
    testable: np.ndarray  # (m,) bool: the null has room for this release inside the coverage
    positions: np.ndarray  # (m,) how many distinct positions the null can put each release at
    reason: list[str | None]  # why a release is not testable
    reach: list[Reach]  # every step the null could have drawn, per release


class Model:
    """What every model of "by chance" declares, Monte Carlo null or closed-form screen: its
    name, its options (validated by ``make_null``), what it moves and keeps, and the caveat a
    verdict made under it must carry. The verdict wording, the CLI's choices and the claim
    loader read these declarations and nothing else."""

    name = ""
    moves = "releases"
    preserves = ""
    destroys = ""
    caveat = ""  # what a result under this model cannot show, in one sentence for the verdict

    @classmethod
    def options(cls) -> dict[str, Any]:
        """The options a claim may set (``null_options``), with their defaults."""
        sig = inspect.signature(cls.__init__)
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return {n: p.default for n, p in sig.parameters.items() if n != "self" and p.kind in kinds}

    def describe(self) -> str:
        return (f"{self.name}: moves the {self.moves}; preserves {self.preserves}; "
                f"destroys {self.destroys}")

    def parameters(self) -> dict[str, Any]:
        return {"null": self.name}

    def candidate_weeks(self, positions: np.ndarray, step: float) -> np.ndarray | None:
        """How many weeks each release could have been moved to, where the model counts in
        weeks (it bounds how small one release's p-value can be); None where it does not."""
        return None

    @classmethod
    def resolution(cls, weeks: list[float]) -> str | None:
        """The caveat on how fine a p-value can be, given the candidate weeks of a result."""
        return None


class Null(Model):
    """A Monte Carlo null: draws surrogate release positions."""

    circular = False

    def draw(self, releases: np.ndarray, coverage: Coverage, window_s: float, step: float,
             rng: np.random.Generator, n: int) -> Draws:
        raise NotImplementedError


def _inside(releases: np.ndarray, coverage: Coverage, margin_lo: float, margin_hi: float) -> np.ndarray:
    return (releases - margin_lo >= coverage.start) & (releases + margin_hi <= coverage.end)


class WeekdayHourShuffle(Null):
    """Each release moves to a uniformly random instant of the same weekday × hour-of-day bucket
    (UTC) in any week of the coverage period whose window fits inside the coverage.

    Null hypothesis: given its weekday and hour, the week and minute of a release are
    independent of the announcement stream. The p-value of one release can be no finer than its
    number of candidate weeks allows; with ten weeks of data, ten is about all the evidence there
    is, and the result says how many weeks it had.
    """

    name = "shuffle-weekday-hour"
    preserves = ("the announcement stream exactly, and each release's weekday and hour of day "
                 "(so business hours and weekly rhythms cannot make a coincidence)")
    destroys = "which week, and which minute within the hour, a release fell in"
    caveat = "The weekday-hour null keeps weekday and hour, not the news agenda."

    def __init__(self, bucket_s: float = 3600.0):
        self.bucket_s = float(bucket_s)

    def parameters(self) -> dict[str, Any]:
        return {"null": self.name, "bucket_minutes": self.bucket_s / 60}

    def candidate_weeks(self, positions: np.ndarray, step: float) -> np.ndarray | None:
        return np.asarray(positions, dtype=np.float64) / (self.bucket_s / step)

    @classmethod
    def resolution(cls, weeks: list[float]) -> str | None:
        if not weeks:
            return None
        return (f"The weekday-hour null compares a release with the same hour of the week in other "
                f"weeks of each stream ({min(weeks):.0f}-{max(weeks):.0f} weeks here), so one release "
                f"can never reach a p-value much below 1/(weeks); that is all the evidence there is.")

    def draw(self, releases: np.ndarray, coverage: Coverage, window_s: float, step: float,
             rng: np.random.Generator, n: int) -> Draws:
        m = len(releases)
        if WEEK % step or self.bucket_s % step:
            raise ValueError("step must divide the week and the bucket width")
        per_week, per_bucket = int(WEEK // step), int(self.bucket_s // step)
        tow = np.mod(releases - MONDAY_EPOCH, WEEK)
        into_bucket = np.mod(tow, self.bucket_s)
        j_lo = -np.floor(into_bucket / step).astype(np.int64)
        j_hi = j_lo + per_bucket - 1
        bucket_start = releases - into_bucket
        # Weeks (relative to the release's own) in which the whole bucket ± window is covered.
        dk_lo = np.ceil((coverage.start + window_s - bucket_start) / WEEK).astype(np.int64)
        dk_hi = np.floor((coverage.end - window_s - bucket_start - self.bucket_s) / WEEK).astype(np.int64)
        own_ok = (dk_lo <= 0) & (0 <= dk_hi)
        inside = _inside(releases, coverage, window_s, window_s)
        testable = own_ok & inside
        reason = [None if t else "its window does not fit in the stream's coverage for the "
                  "whole weekday-hour bucket" for t in testable]
        dk_lo = np.where(testable, dk_lo, 0)
        dk_hi = np.where(testable, dk_hi, 0)
        j_lo = np.where(testable, j_lo, 0)
        j_hi = np.where(testable, j_hi, 0)
        weeks = rng.integers(dk_lo, dk_hi + 1, size=(n, m))
        within = rng.integers(j_lo, j_hi + 1, size=(n, m))
        steps = weeks * per_week + within
        positions = (dk_hi - dk_lo + 1) * (j_hi - j_lo + 1)
        reach = [Reach(per_week, int(a), int(b), int(c), int(d))
                 for a, b, c, d in zip(dk_lo, dk_hi, j_lo, j_hi)]
        return Draws(steps, testable, positions, reason, reach)


class Jitter(Null):
    """Each release moves independently by a uniform offset in [-J, +J].

    Null hypothesis: at scales finer than J, release times are independent of the announcement
    stream. Tests fine alignment only; slow structure (days, weeks) is kept on both sides.
    """

    name = "jitter"
    preserves = "the announcement stream exactly, and each release's time to within ±J"
    destroys = "alignment finer than ±J"
    caveat = ("The jitter null keeps everything slower than ±J on both sides, the day's news "
              "agenda included: it speaks only to alignment finer than that.")

    def __init__(self, jitter_s: float = 6 * 3600.0):
        self.jitter_s = float(jitter_s)

    def parameters(self) -> dict[str, Any]:
        return {"null": self.name, "jitter_minutes": self.jitter_s / 60}

    def draw(self, releases: np.ndarray, coverage: Coverage, window_s: float, step: float,
             rng: np.random.Generator, n: int) -> Draws:
        m = len(releases)
        reach = int(self.jitter_s // step)
        testable = _inside(releases, coverage, self.jitter_s + window_s, self.jitter_s + window_s)
        reason = [None if t else "release ± (jitter + window) is outside the coverage" for t in testable]
        steps = rng.integers(-reach, reach + 1, size=(n, m))
        steps[:, ~testable] = 0
        positions = np.where(testable, 2 * reach + 1, 1)
        reaches = [Reach.interval(-reach, reach) if t else Reach.interval(0, 0) for t in testable]
        return Draws(steps, testable, positions, reason, reaches)


class CircularShift(Null):
    """All releases shift together by one random offset, wrapping around the coverage period.

    Equivalent to rotating the announcement stream on a circle. Null hypothesis: the two streams
    are independent as wholes. Preserves the spacing between releases and everything about the
    announcements; with ``shift_unit='day'`` it also keeps the time of day, with 'week' the weekday.
    """

    name = "circular"
    preserves = "both streams' internal structure (the spacing of the releases, the announcement bursts)"
    destroys = "the alignment of one stream against the other"
    caveat = ("The circular shift moves releases to other times of day and week (unless its "
              "shift_unit is day or week), so rhythms both streams share can make a coincidence "
              "look rarer than it is.")
    circular = True

    def __init__(self, shift_unit: str = "step"):
        if shift_unit not in ("step", "day", "week"):
            raise ValueError("shift_unit is one of step, day, week")
        self.shift_unit = shift_unit
        if shift_unit != "step":
            self.preserves += f", and the {'time of day' if shift_unit == 'day' else 'time of week'}"

    def parameters(self) -> dict[str, Any]:
        return {"null": self.name, "shift_unit": self.shift_unit}

    def period_steps(self, coverage: Coverage, step: float) -> int:
        unit = {"step": step, "day": DAY, "week": WEEK}[self.shift_unit]
        return int(coverage.length // unit) * int(round(unit / step))

    def draw(self, releases: np.ndarray, coverage: Coverage, window_s: float, step: float,
             rng: np.random.Generator, n: int) -> Draws:
        m = len(releases)
        unit_steps = {"step": 1, "day": int(DAY // step), "week": int(WEEK // step)}[self.shift_unit]
        period = self.period_steps(coverage, step)
        testable = (releases >= coverage.start) & (releases < coverage.start + period * step)
        reason = [None if t else "release is outside the coverage" for t in testable]
        shift = rng.integers(0, period // unit_steps, size=(n, 1)) * unit_steps
        offset = np.floor((releases - coverage.start) / step).astype(np.int64)
        steps = shift + np.zeros((1, m), dtype=np.int64)
        steps = np.where(offset + steps >= period, steps - period, steps)
        steps[:, ~testable] = 0
        positions = np.where(testable, period // unit_steps, 1)
        reaches = [Reach.interval(-int(o), period - 1 - int(o)) if t else Reach.interval(0, 0)
                   for o, t in zip(offset, testable)]
        return Draws(steps, testable, positions, reason, reaches)
