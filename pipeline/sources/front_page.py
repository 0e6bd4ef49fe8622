"""Headlines of an HTML front page: the links whose text reads like a headline.

An archived front page has no publication times, only links; its items carry their first-seen
interval and nothing else (time_flags: missing). A link counts as a headline when its text has
at least ``MIN_WORDS`` words and it points to an http(s) page of the same site.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import lxml.html

from pipeline.sources.parse_types import RawEntry

MIN_WORDS = 5


def headline_links(body: bytes, base_url: str) -> list[RawEntry]:
    try:
        doc = lxml.html.fromstring(body)
    except (ValueError, lxml.etree.ParserError):
        return []
    site = (urlsplit(base_url).hostname or "").removeprefix("www.")
    seen, out = set(), []
    for a in doc.iter("a"):
        href = (a.get("href") or "").strip()
        text = " ".join(a.text_content().split())
        if not href or len(text.split()) < MIN_WORDS:
            continue
        url = urljoin(base_url, href)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not (parts.hostname or "").removeprefix("www.").endswith(site):
            continue
        if url in seen:
            continue
        seen.add(url)
        out.append(RawEntry(link=url, title=text, title_type="text"))
    return out
