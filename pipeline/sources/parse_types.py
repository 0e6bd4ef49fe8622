"""What a feed reader yields: the entries of one document, with its format and any trouble."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.errors import UserError


class NotAFeed(UserError):
    """An HTML page, an empty body, or XML that is not RSS or Atom."""


@dataclass
class RawEntry:
    guid: str | None = None
    link: str | None = None
    title: str | None = None
    author: str | None = None
    summary: str | None = None
    published: str | None = None
    updated: str | None = None
    # How the title is marked up: "text" (literal), "html" (escaped HTML), "guess" (RSS says not).
    title_type: str = "guess"


@dataclass
class ParsedFeed:
    format: str  # rss20, rss10, atom10, atom03, or feedparser's version string
    parser: str  # lxml or feedparser
    entries: list[RawEntry]
    bozo: bool = False
    bozo_reason: str | None = None
    truncated: bool = False
    title: str | None = None
    warnings: list[str] = field(default_factory=list)
