"""Synthetic streams with news-like rhythms, for calibration checks and benchmarks.

Announcements come from an inhomogeneous Poisson process whose rate follows a weekday ×
hour-of-day profile (busy weekday afternoons, quiet nights and weekends). Releases are drawn
independently, with a profile of their own; that independence is the null hypothesis.
"""

from __future__ import annotations

import numpy as np

from .nulls import MONDAY_EPOCH, WEEK

HOURS_PER_WEEK = 168


def news_profile(night: float = 0.15, weekend: float = 0.4, peak_hour: int = 15) -> np.ndarray:
    """Relative rate for each of the 168 hours of the week (Monday 00:00 UTC first)."""
    hours = np.arange(24)
    day = night + (1 - night) * np.exp(-0.5 * ((hours - peak_hour) / 4.0) ** 2)
    week = np.tile(day, 7)
    week[5 * 24:] *= weekend
    return week / week.mean()


def announcements(rng: np.random.Generator, start_week: int, weeks: int, per_week: float,
                  profile: np.ndarray | None = None) -> np.ndarray:
    """Sorted epoch seconds, whole seconds, with the given mean count per week."""
    profile = news_profile() if profile is None else profile
    origin = MONDAY_EPOCH + start_week * WEEK
    counts = rng.poisson(per_week * profile / HOURS_PER_WEEK, size=(weeks, HOURS_PER_WEEK))
    hour_starts = origin + (np.arange(weeks)[:, None] * WEEK + np.arange(HOURS_PER_WEEK)[None, :] * 3600)
    starts = np.repeat(hour_starts.ravel(), counts.ravel())
    return np.sort(np.floor(starts + rng.random(starts.size) * 3600))


def releases(rng: np.random.Generator, start_week: int, weeks: int, n: int,
             profile: np.ndarray | None = None, margin_weeks: int = 1) -> np.ndarray:
    """n release times: an hour of the week by ``profile``, then a uniform week (keeping
    ``margin_weeks`` clear at each end) and a uniform whole minute within the hour."""
    profile = news_profile(night=0.3) if profile is None else profile
    hour = rng.choice(HOURS_PER_WEEK, size=n, p=profile / profile.sum())
    week = rng.integers(margin_weeks, weeks - margin_weeks, size=n)
    minute = rng.integers(0, 60, size=n)
    return MONDAY_EPOCH + (start_week + week) * WEEK + hour * 3600.0 + minute * 60.0


def coverage_of(start_week: int, weeks: int) -> tuple[float, float]:
    origin = MONDAY_EPOCH + start_week * WEEK
    return float(origin), float(origin + weeks * WEEK)
