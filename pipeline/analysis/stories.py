"""Stories as rules a reader can audit: which items are about which story.

A rules file (YAML, beside the claims) names each story with

- ``any``: phrases or words, any of which puts an item in the story;
- ``all``: groups of terms that must all occur (``all: [[trump, tape]]``), each group an
  alternative to ``any``;
- ``none``: terms that take an item out again;
- ``anchor`` (an event id) and ``window_hours`` (default [-24, 48]): the story belongs to that
  event, so for onsets an item outside the window around it is not the story (an "Assange to
  speak" item days earlier is not the leak).

Terms match case-insensitively at word starts (``hack`` matches "hackers", not "shack"). All
stories are matched in one vectorised pass: each becomes one RE2 expression that DuckDB evaluates
over every item at once (bench/stories.py: a million items by twenty stories).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml

from pipeline.errors import UserError

DEFAULT_WINDOW_HOURS = (-24.0, 48.0)
KEYS = {"any", "all", "none", "anchor", "window_hours"}


class StoryRulesError(UserError):
    pass


def _regex(terms: tuple[str, ...]) -> str | None:
    """One RE2 (and Python) expression matching any of ``terms`` at a word start."""
    if not terms:
        return None
    def start(t: str) -> str:
        # RE2's \b knows only ASCII words; a term opening with another letter (über) needs its
        # own word start. A term opening with punctuation (#maga) may start anywhere.
        if t[:1].isascii() and t[:1].isalnum():
            return r"\b"
        return r"(?:^|[^\pL\pN_])" if t[:1].isalnum() else ""
    alts = "|".join(start(t) + re.escape(t.lower()) for t in terms)
    return f"(?i)(?:{alts})"


def _has(column: str, terms: tuple[str, ...]) -> str:
    literal = str(_regex(terms)).replace("'", "''")
    return f"regexp_matches({column}, '{literal}')"


@dataclass(frozen=True)
class StoryRule:
    name: str
    any_of: tuple[str, ...] = ()
    all_of: tuple[tuple[str, ...], ...] = ()
    none_of: tuple[str, ...] = ()
    anchor: str | None = None
    window_hours: tuple[float, float] = DEFAULT_WINDOW_HOURS

    def sql(self, column: str = "title") -> str:
        """A DuckDB boolean expression over ``column``: is the item in this story? The `all`
        groups are tried only where one of their terms occurs, `none` only where the story
        matched (CASE evaluates lazily): most items pay for one expression."""
        include = [_has(column, self.any_of)] if self.any_of else []
        if self.all_of:
            groups = " OR ".join("(" + " AND ".join(_has(column, (t,)) for t in g) + ")" for g in self.all_of)
            some = tuple(t for g in self.all_of for t in g)
            include.append(f"CASE WHEN {_has(column, some)} THEN ({groups}) ELSE false END")
        expr = "(" + " OR ".join(include) + ")"
        return f"CASE WHEN {expr} THEN NOT {_has(column, self.none_of)} ELSE false END" if self.none_of else expr

    def matches(self, texts: pd.Series) -> np.ndarray:
        return match_stories(texts, [self])[self.name].to_numpy(dtype=bool)

    def terms(self) -> tuple[str, ...]:
        return self.any_of + tuple(t for g in self.all_of for t in g)


@dataclass(frozen=True)
class StoryRules:
    path: Path
    rules: list[StoryRule]
    sha256: str

    def named(self, names: list[str] | None) -> list[StoryRule]:
        if not names:
            return self.rules
        known = {r.name: r for r in self.rules}
        missing = [n for n in names if n not in known]
        if missing:
            raise StoryRulesError(f"{self.path.name}: no story {', '.join(map(repr, missing))}; it has "
                                  f"{', '.join(known)}")
        return [known[n] for n in names]


def _terms(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not all(isinstance(t, str) and t.strip() for t in value):
        raise StoryRulesError(f"{where}: write a list of non-empty words or phrases, e.g. [podesta, wikileaks]")
    return tuple(t.strip() for t in value)


def _rule(name: str, spec, where: str) -> StoryRule:
    if not isinstance(spec, dict):
        raise StoryRulesError(f"{where}: story {name!r} must be a mapping with any/all/none")
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        raise StoryRulesError(f"{where}: story {name!r} has unknown key(s) {', '.join(unknown)}; "
                              f"it may have {', '.join(sorted(KEYS))}")
    groups = spec.get("all") or []
    if not isinstance(groups, list):
        raise StoryRulesError(f"{where}: story {name!r}: 'all' is a list of groups, e.g. [[trump, tape]]")
    all_of = tuple(_terms(g, f"{where}: story {name!r} all") for g in groups)
    any_of = _terms(spec.get("any"), f"{where}: story {name!r} any")
    if not any_of and not any(all_of):
        raise StoryRulesError(f"{where}: story {name!r} needs a non-empty 'any' list or an 'all' group")
    window = spec.get("window_hours", list(DEFAULT_WINDOW_HOURS))
    try:
        lo, hi = (float(x) for x in window)
    except (TypeError, ValueError):
        raise StoryRulesError(f"{where}: story {name!r}: window_hours is [hours before, hours after], "
                              "e.g. [-24, 48]") from None
    if not lo < hi:
        raise StoryRulesError(f"{where}: story {name!r}: window_hours must run forward, e.g. [-24, 48]")
    anchor = spec.get("anchor")
    return StoryRule(name, any_of, tuple(g for g in all_of if g), _terms(spec.get("none"), where),
                     str(anchor) if anchor else None, (lo, hi))


def load_story_rules(path: Path | str) -> StoryRules:
    path = Path(path)
    try:
        raw = path.read_bytes()
        doc = yaml.safe_load(raw) or {}
    except OSError as exc:
        raise StoryRulesError(f"story rules {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise StoryRulesError(f"story rules {path} are not valid YAML: {exc}") from None
    stories = doc.get("stories") if isinstance(doc, dict) else None
    if not isinstance(stories, dict) or not stories:
        raise StoryRulesError(f"story rules {path}: expected 'stories:' with one entry per story")
    rules = [_rule(str(name), spec, path.name) for name, spec in stories.items()]
    return StoryRules(path, rules, hashlib.sha256(raw).hexdigest()[:16])


def match_stories(texts: pd.Series, rules: list[StoryRule]) -> pd.DataFrame:
    """One boolean column per story, one row per text (an item can be in several stories), in
    one DuckDB pass over all texts for all stories: a text with no term of any story is passed
    over by one expression (bench/stories.py measures it)."""
    out = np.zeros((len(texts), len(rules)), dtype=bool)
    if rules and len(texts):
        frame = pd.DataFrame({"i": np.arange(len(texts), dtype=np.int64),
                              "title": texts.astype(object).where(texts.notna(), "").to_numpy()})
        every = tuple(dict.fromkeys(t for r in rules for t in r.terms()))
        cols = ", ".join(f'{r.sql()} AS "{k}"' for k, r in enumerate(rules))
        with duckdb.connect() as con:
            con.register("texts", frame)
            got = con.execute(f"SELECT i, {cols} FROM texts WHERE {_has('title', every)}").fetchnumpy()
        rows = np.asarray(got["i"], dtype=np.int64)
        for k in range(len(rules)):
            out[rows, k] = np.asarray(got[str(k)], dtype=bool)
    return pd.DataFrame(out, columns=[r.name for r in rules], index=texts.index)
