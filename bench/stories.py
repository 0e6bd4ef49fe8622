"""Benchmark of story matching: 1,000,000 items x 20 stories (issue 13: under 5 s on 2 cores).

Items are real headlines (the bundled IRA NewsFeed stream, 5,989 of them) drawn with replacement
to a million, so match rates are those of real news. The 20 stories are the case study's eight
rules (claims/stories/2016.yaml, with their `all` groups and `none` lists) plus twelve keyword
stories of common news words. The baseline, measured in this same run on the same items, is the
per-story loop this project used before (Python `re` through pandas `str.contains`, one pass per
story and per term list), run on a tenth of the items and scaled (printed beside it).

Run: .venv/bin/python bench/stories.py [--items N]
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.analysis.stories import StoryRule, load_story_rules, match_stories

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["police", "court", "judge", "school", "fire", "crash", "killed", "arrested", "football",
         "game", "vote", "ballot", "obama", "pence", "kaine", "fbi", "comey", "putin", "iran",
         "china", "election", "teacher", "weather", "flood"]


def stories() -> list[StoryRule]:
    rules = load_story_rules(ROOT / "claims" / "stories" / "2016.yaml").rules
    extra = [StoryRule(f"kw{i}", tuple(WORDS[2 * i:2 * i + 2])) for i in range(12)]
    return rules + extra


def per_story_loop(titles: pd.Series, rules: list[StoryRule]) -> pd.DataFrame:
    """The old matcher: Python regular expressions, one pandas pass per story and term list."""
    def pattern(words):
        return re.compile(r"(?<![a-z0-9])(?:" + "|".join(re.escape(w.lower()) for w in words) + ")", re.I)
    text = titles.fillna("")
    out = {}
    for r in rules:
        hit = text.str.contains(pattern(r.any_of)).to_numpy() if r.any_of else np.zeros(len(text), bool)
        for group in r.all_of:
            hit = hit | np.logical_and.reduce([text.str.contains(pattern((w,))).to_numpy() for w in group])
        if r.none_of:
            hit = hit & ~text.str.contains(pattern(r.none_of)).to_numpy()
        out[r.name] = hit
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    args = ap.parse_args()
    src = pd.read_csv(ROOT / "data" / "case_2016" / "ira_newsfeed_2016-10-01_to_2016-10-14.csv.gz")
    rng = np.random.default_rng(0)
    titles = pd.Series(src["content"].to_numpy()[rng.integers(0, len(src), args.items)])
    rules = stories()
    print(f"{args.items:,} items x {len(rules)} stories, {os.cpu_count()} cores")
    t = time.perf_counter()
    got = match_stories(titles, rules)
    ours = time.perf_counter() - t
    print(f"  one DuckDB pass (RE2):          {ours:6.2f} s  ({args.items / ours:,.0f} items/s); "
          f"{int(got.to_numpy().any(axis=1).sum()):,} items in some story")
    n = max(1, args.items // 10)
    t = time.perf_counter()
    old = per_story_loop(titles[:n], rules)
    base = (time.perf_counter() - t) * args.items / n
    print(f"  per-story pandas loop (Python re): {base:6.2f} s  (measured on {n:,} items, scaled)")
    agree = (old.to_numpy() == got.to_numpy()[:n]).mean()
    print(f"  ratio: {base / ours:.1f}x faster; the two agree on {agree:.4%} of (item, story) cells")
    print(f"  target: under 5 s -> {'met' if ours < 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
