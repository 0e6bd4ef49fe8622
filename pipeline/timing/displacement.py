"""Displacement ("was it buried?"): how much of the news after a release was about its story,
compared with the same share after the other releases of the same series."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


def story_share(item_times: np.ndarray, is_story: np.ndarray, start: float, hours: float) -> tuple[int, int]:
    """(story items, all items) in [start, start + hours)."""
    lo, hi = np.searchsorted(item_times, [start, start + hours * 3600], side="left")
    return int(is_story[lo:hi].sum()), int(hi - lo)


@dataclass
class DisplacementResult:
    """``difference`` = focal share minus the mean share after the series' other releases.

    Negative means the focal release's story got a smaller share of the news than the series
    usually did: consistent with being crowded out, not proof of it. ``ci`` is a percentile
    bootstrap interval (items resampled within each window, other releases resampled).
    ``rank_pvalue`` is the share of releases (focal included) whose share was as low or lower.
    """

    hours: float
    focal_share: float
    focal_counts: tuple[int, int]
    other_shares: np.ndarray
    other_ids: list[str]
    difference: float
    ci: tuple[float, float]
    rank_pvalue: float
    skipped: list[str]
    other_counts: list[tuple[int, int]]  # (story items, all items) after each other release

    @property
    def story_items(self) -> int:
        """Story items in every window compared, the focal one included."""
        return self.focal_counts[0] + sum(k for k, _ in self.other_counts)


def displacement(item_times: ArrayLike, is_story: ArrayLike, focal: tuple[str, float], others: list[tuple[str, float]],
                 *, hours: float, coverage: tuple[float, float], n_boot: int = 2000,
                 seed: int = 0, level: float = 0.95) -> DisplacementResult:
    """Compare the focal release's story share in the next ``hours`` with the series' others.

    Releases whose window is not fully inside the news stream's ``coverage`` are skipped (and
    named), since a gap in collection would look like a drop in attention.
    """
    order = np.argsort(item_times, kind="stable")
    t = np.asarray(item_times, dtype=np.float64)[order]
    s = np.asarray(is_story, dtype=bool)[order]

    def covered(start: float) -> bool:
        return coverage[0] <= start and start + hours * 3600 <= coverage[1]

    if not covered(focal[1]):
        raise ValueError(f"the {hours} h after {focal[0]} are not inside the news stream's coverage")
    fk, fn = story_share(t, s, focal[1], hours)
    kept: list[tuple[str, float]] = []
    skipped: list[tuple[str, float]] = []
    for name, start in others:
        (kept if covered(start) else skipped).append((name, start))
    counts = [story_share(t, s, start, hours) for _, start in kept]
    shares = np.array([k / n if n else np.nan for k, n in counts])
    valid = ~np.isnan(shares)
    focal_share = fk / fn if fn else float("nan")
    diff = focal_share - float(np.nanmean(shares)) if valid.any() else float("nan")
    rng = np.random.default_rng(seed)
    boots = []
    if valid.any() and fn:
        ks = np.array([k for (k, n), v in zip(counts, valid) if v])
        ns = np.array([n for (k, n), v in zip(counts, valid) if v])
        for _ in range(n_boot):
            f = rng.binomial(fn, focal_share) / fn
            pick = rng.integers(0, len(ns), len(ns))
            o = rng.binomial(ns[pick], ks[pick] / ns[pick]) / ns[pick]
            boots.append(f - o.mean())
    alpha = 1 - level
    ci = (float(np.quantile(boots, alpha / 2)), float(np.quantile(boots, 1 - alpha / 2))) if boots else (np.nan, np.nan)
    all_shares = np.append(shares[valid], focal_share)
    rank_p = float((all_shares <= focal_share).sum() / len(all_shares))
    return DisplacementResult(hours, focal_share, (fk, fn), shares, [n for n, _ in kept], diff,
                              ci, rank_p, [n for n, _ in skipped], [(int(k), int(n)) for k, n in counts])
