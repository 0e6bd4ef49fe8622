"""JSON Feed 1.0 and 1.1 (jsonfeed.org): the same entries the XML readers give, dates as written."""

from __future__ import annotations

import json

from pipeline.sources.parse_types import NotAFeed, ParsedFeed, RawEntry

VERSION_PREFIX = "https://jsonfeed.org/version/"


def looks_like_json(body: bytes) -> bool:
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return head == b"{"


def _author(item: dict) -> str | None:
    authors = item.get("authors")  # 1.1
    if isinstance(authors, list) and authors:
        names = [a.get("name") for a in authors if isinstance(a, dict) and a.get("name")]
        return ", ".join(names) or None
    author = item.get("author")  # 1.0
    return author.get("name") if isinstance(author, dict) else None


def _str(value) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def parse_json_feed(body: bytes) -> ParsedFeed:
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotAFeed(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(VERSION_PREFIX):
        raise NotAFeed("JSON, but not a JSON Feed (no https://jsonfeed.org/version/ in 'version')")
    items = doc.get("items")
    if not isinstance(items, list):
        raise NotAFeed("a JSON Feed without an 'items' list")
    entries, skipped = [], 0
    for item in items:
        if not isinstance(item, dict):
            skipped += 1
            continue
        entries.append(RawEntry(
            guid=_str(item.get("id")), link=_str(item.get("url") or item.get("external_url")),
            title=_str(item.get("title")), author=_str(_author(item)),
            summary=_str(item.get("summary") or item.get("content_text") or item.get("content_html")),
            published=_str(item.get("date_published")), updated=_str(item.get("date_modified")),
            title_type="text",
        ))
    version = str(doc["version"])[len(VERSION_PREFIX):]
    return ParsedFeed(format=f"json{version.replace('.', '')}", parser="json", entries=entries,
                      bozo=bool(skipped), bozo_reason=f"{skipped} items were not objects" if skipped else None,
                      title=_str(doc.get("title")))
