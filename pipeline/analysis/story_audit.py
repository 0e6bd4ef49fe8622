"""Auditing story rules (``media-timing stories check``): what each rule catches, so a user can
see a misfire and fix the rule in minutes.

Per story: the first matches with their text, a sample of the rest, near misses (items with some
but not all terms of an ``all`` group, or caught and then excluded by ``none``), matches outside
the anchor's window, and the items that match two stories.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from pipeline.analysis.claims import Claim, EventSelector, resolve_relative
from pipeline.analysis.loading import load_events
from pipeline.analysis.onsets import OnsetError, in_window, onset_items, onset_sources, story_window
from pipeline.analysis.stories import StoryRule, StoryRules, load_story_rules, match_stories
from pipeline.timestamps import iso_z

FIRST, SAMPLE, MISSES = 5, 5, 5


def rules_file(claim: Claim) -> str:
    for spec in (claim.onsets, claim.displacement, claim.pressure):
        if spec and spec.get("stories_file"):
            return str(spec["stories_file"])
    raise OnsetError(f"claim {claim.id} names no story rules (onsets.stories_file, or "
                     "displacement/pressure stories_file)")


@dataclass
class Audit:
    rules: StoryRules
    sources: list[str]
    n_items: int
    stories: list[dict]
    overlaps: list[dict]


def _rows(items: pd.DataFrame, mask: np.ndarray, n: int, sample: bool = False, seed: int = 0) -> list[dict]:
    idx = np.flatnonzero(mask)
    if sample and idx.size > n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
    else:
        idx = idx[:n]
    return [{"utc": iso_z(float(items["lo"].iat[i])), "source": items["source"].iat[i],
             "outlet": items["outlet"].iat[i], "title": items["title"].iat[i]} for i in idx]


def _near_misses(items: pd.DataFrame, rule: StoryRule, hit: np.ndarray) -> tuple[np.ndarray, str]:
    """Items the rule almost caught (an `all` group one or more terms short, or caught and then
    excluded by `none`), each with a score: the rarer the terms it has, the nearer the miss (an
    item with "tape" but no "trump" is nearer than one with only "trump")."""
    score = np.zeros(len(items))
    for group in rule.all_of:
        terms = match_stories(items["title"], [StoryRule(f"t{i}", (t,)) for i, t in enumerate(group)]).to_numpy()
        n = terms.sum(axis=1)
        rarity = (terms / np.maximum(terms.sum(axis=0), 1)).sum(axis=1)
        score = np.maximum(score, np.where((n > 0) & (n < len(group)), rarity, 0.0))
    if rule.none_of:
        loose = StoryRule(rule.name, rule.any_of, rule.all_of)
        score = np.where(loose.matches(items["title"]) & ~hit, np.inf, score)
    kinds = (["an 'all' group short of a term"] if rule.all_of else []) + (["excluded by 'none'"] if rule.none_of else [])
    return np.where(hit, 0.0, score), " or ".join(kinds)


def _nearest(items: pd.DataFrame, score: np.ndarray, n: int) -> list[dict]:
    idx = [i for i in np.argsort(-score, kind="stable")[:n] if score[i] > 0]
    return _rows(items, np.isin(np.arange(len(items)), idx), n)


def audit(con: duckdb.DuckDBPyConnection, claim: Claim, sources: list[str] | None = None) -> Audit:
    rules = load_story_rules(resolve_relative(claim, rules_file(claim)))
    names = onset_sources(con, claim, claim.onsets or {}, sources)
    items = pd.concat([onset_items(con, n).assign(source=n) for n in names], ignore_index=True)
    items = items.sort_values(["lo", "hi"], kind="stable").reset_index(drop=True)
    ids = tuple(sorted({r.anchor for r in rules.rules if r.anchor}))
    anchors = {e.event_id: e for e in load_events(con, EventSelector(event_ids=ids))} if ids else {}
    matrix = match_stories(items["title"], rules.rules)
    stories = []
    for rule in rules.rules:
        hit = matrix[rule.name].to_numpy()
        span = story_window(rule, anchors)
        near = in_window(items, span)
        inside = hit & near
        window = [iso_z(span[0]), iso_z(span[1])] if span else None
        score, why = _near_misses(items, rule, hit)
        score = np.where(near, score, 0.0)
        stories.append({
            "story": rule.name, "anchor": rule.anchor, "window": window, "n_matches": int(hit.sum()),
            "n_in_window": int(inside.sum()), "first": _rows(items, inside, FIRST),
            "sample": _rows(items, inside, SAMPLE, sample=True), "outside_window": _rows(items, hit & ~inside, MISSES),
            "near_misses": _nearest(items, score, MISSES), "near_miss_kind": why,
            "note": None if hit.any() else "matches nothing: check the spelling of its terms",
        })
    overlaps = []
    cols = list(matrix.columns)
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            both = matrix[a].to_numpy() & matrix[b].to_numpy()
            if both.any():
                overlaps.append({"stories": [a, b], "n": int(both.sum()), "items": _rows(items, both, MISSES)})
    return Audit(rules, names, len(items), stories, overlaps)
