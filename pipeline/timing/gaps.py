"""Gaps and order: how far apart releases and announcements were, and who moved first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


def nearest_gaps(releases: ArrayLike, announcements: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Seconds from each release back to the nearest announcement at or before it, and forward
    to the nearest one at or after it (inf where there is none)."""
    rel = np.asarray(releases, dtype=np.float64)
    ann = np.sort(np.asarray(announcements, dtype=np.float64))
    before = np.full(rel.shape, np.inf)
    after = np.full(rel.shape, np.inf)
    if ann.size:
        i = np.searchsorted(ann, rel, side="right")
        has = i > 0
        before[has] = rel[has] - ann[i[has] - 1]
        j = np.searchsorted(ann, rel, side="left")
        has = j < ann.size
        after[has] = ann[j[has]] - rel[has]
    return before, after


@dataclass
class LeadLag:
    """Within ±window of each release: announcements before it, after it, and their mean lag
    (announcement minus release; negative means announcements led)."""

    before: np.ndarray
    after: np.ndarray
    mean_lag_s: np.ndarray
    first_mover: list[str]


def lead_lag(releases: ArrayLike, announcements: ArrayLike, window_s: float) -> LeadLag:
    rel = np.asarray(releases, dtype=np.float64)
    ann = np.sort(np.asarray(announcements, dtype=np.float64))
    lo = np.searchsorted(ann, rel - window_s, side="left")
    mid_l = np.searchsorted(ann, rel, side="left")
    mid_r = np.searchsorted(ann, rel, side="right")
    hi = np.searchsorted(ann, rel + window_s, side="right")
    csum = np.concatenate([[0.0], np.cumsum(ann)])
    n = hi - lo
    total = csum[hi] - csum[lo] - n * rel
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    before, after = mid_l - lo, hi - mid_r
    first = ["announcement" if b else "release" if a else "none within window"
             for b, a in zip(before, after)]
    return LeadLag(before, after, mean, first)


def gap_range(ann_lo: ArrayLike, ann_hi: ArrayLike, rel_lo: ArrayLike, rel_hi: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Signed gap (announcement minus release) bounds when both times are intervals."""
    return (np.asarray(ann_lo) - np.asarray(rel_hi), np.asarray(ann_hi) - np.asarray(rel_lo))


def order_of(gap_lo: float, gap_hi: float) -> str:
    """Which came first, as far as the intervals allow."""
    if gap_hi < 0:
        return "announcement first"
    if gap_lo > 0:
        return "release first"
    return "order unknown (intervals overlap)"
