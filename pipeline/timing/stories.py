"""Stories as keyword rules: which items are about which story (rules live in YAML)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


@dataclass(frozen=True)
class StoryRule:
    name: str
    any_of: tuple[str, ...]
    none_of: tuple[str, ...] = ()

    def pattern(self, words: tuple[str, ...]) -> re.Pattern[str] | None:
        if not words:
            return None
        alts = "|".join(re.escape(w.lower()) for w in words)
        return re.compile(rf"(?<![a-z0-9])(?:{alts})", re.IGNORECASE)

    def matches(self, texts: pd.Series) -> np.ndarray:
        text = texts.fillna("").astype(str)
        hit = text.str.contains(self.pattern(self.any_of), regex=True).to_numpy(dtype=bool, copy=True)
        if self.none_of:
            hit &= ~text.str.contains(self.pattern(self.none_of), regex=True).to_numpy(dtype=bool)
        return hit


def load_story_rules(path: Path | str) -> list[StoryRule]:
    """Rules file: ``stories: {name: {any: [...], none: [...]}}``; words match at word starts."""
    doc = yaml.safe_load(Path(path).read_text()) or {}
    rules = []
    for name, spec in (doc.get("stories") or {}).items():
        any_of = tuple(spec.get("any") or ())
        if not any_of:
            raise ValueError(f"{path}: story {name!r} needs a non-empty 'any' list")
        rules.append(StoryRule(name, any_of, tuple(spec.get("none") or ())))
    return rules


def story_matrix(texts: pd.Series, rules: list[StoryRule]) -> pd.DataFrame:
    """One boolean column per story; an item can belong to several."""
    return pd.DataFrame({r.name: r.matches(texts) for r in rules}, index=texts.index)
