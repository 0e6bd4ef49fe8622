"""Parsing fetched feed bytes into items, keeping every date exactly as the source wrote it.

The fast path reads RSS 2.0, RSS 1.0 (RDF) and Atom with lxml and takes only what timing needs:
id, link, title, author, a short summary and the raw date strings; JSON Feed has its own reader.
Dates are then parsed by ``pipeline.timestamps`` so a zoneless or future date is flagged, never
silently read as UTC or as now. feedparser is the reference (the tests check both agree on
every fixture) and decides whenever the fast path refuses a document or finds nothing in it: a
document is not a feed only if both say so. What the XML spec calls an error but a browser
would read (a bare "&", an HTML entity such as &nbsp;, a UTF-8 document declaring UTF-16) is
repaired and read, and the repair is recorded with the feed.
"""

from __future__ import annotations

import calendar
import html.entities
import re
from datetime import UTC, datetime
from urllib.parse import urljoin

import numpy as np
import pandas as pd
from lxml import etree

from pipeline.sources.feed_text import reader_text
from pipeline.sources.json_feed import looks_like_json, parse_json_feed
from pipeline.sources.parse_types import NotAFeed, ParsedFeed, RawEntry
from pipeline.timestamps import parse_times

__all__ = ["NotAFeed", "ParsedFeed", "RawEntry", "parse_feed", "items_frame"]

ATOM = "http://www.w3.org/2005/Atom"
ATOM03 = "http://purl.org/atom/ns#"
RSS10 = "http://purl.org/rss/1.0/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
DCTERMS = "http://purl.org/dc/terms/"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
SUMMARY_CHARS = 500
FUTURE_SLACK = pd.Timedelta(minutes=10)
_TAGS = re.compile(r"<[^>]+>")
# Only to word a refusal: an HTML page is refused when neither reader finds a feed in it.
_HTML_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]",
                         re.IGNORECASE | re.DOTALL)
_TRUNCATED = ("Premature end of data", "EndTag: '</' not found", "Couldn't find end of Start Tag")
_CDATA = re.compile(rb"<!\[CDATA\[.*?\]\]>", re.DOTALL)
_BARE_AMP = re.compile(rb"&(?!(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9._-]{0,31});)")
_NAMED = re.compile(rb"&([A-Za-z][A-Za-z0-9]{0,31});")
_XML_NAMED = {b"amp", b"lt", b"gt", b"quot", b"apos"}
_DECLARED = re.compile(rb"^(\s*<\?xml[^>]*?encoding\s*=\s*[\"'])([A-Za-z0-9._-]+)([\"'])", re.IGNORECASE)


def _text(el) -> str | None:
    if el is None:
        return None
    value = "".join(el.itertext()).strip()
    return value or None


def _summary(value: str | None) -> str | None:
    """A summary as short plain text (it is context for a reader, not evidence: a fast regex
    pass is enough; the title is the field read with care)."""
    if not value:
        return None
    value = value[: SUMMARY_CHARS * 3]
    if "<" in value:
        value = _TAGS.sub(" ", value)
    return reader_text(value, "text" if "&" not in value else "guess", SUMMARY_CHARS)


def _first(el, *paths: str) -> str | None:
    for p in paths:
        found = el.find(p)
        value = _text(found)
        if value:
            return value
    return None


def _is_url(value: str | None) -> bool:
    return bool(value) and value.startswith(("http://", "https://"))


def _atom_link(entry, ns: str) -> str | None:
    best = None
    for link in entry.iterfind(f"{{{ns}}}link"):
        rel = link.get("rel", "alternate")
        href = (link.get("href") or "").strip()
        if not href:
            continue
        if rel == "alternate" and link.get("type", "text/html") in ("text/html", "application/xhtml+xml"):
            return href
        if rel == "alternate" and best is None:
            best = href
    return best


# Child tags, by namespace-qualified name, mapped to the entry field they fill, in order of
# preference (a lower rank wins when an item has several).
def _rss_fields(ns: str) -> dict[str, tuple[str, int]]:
    q = (lambda t: f"{{{ns}}}{t}") if ns else (lambda t: t)
    return {
        q("guid"): ("guid", 0), q("link"): ("link", 0), f"{{{ATOM}}}link": ("link", 1),
        q("title"): ("title", 0), f"{{{DC}}}title": ("title", 1),
        q("author"): ("author", 0), f"{{{DC}}}creator": ("author", 1),
        q("description"): ("summary", 0), f"{{{CONTENT}}}encoded": ("summary", 1),
        q("pubDate"): ("published", 0), f"{{{DC}}}date": ("published", 1),
        f"{{{DCTERMS}}}issued": ("published", 2),
        f"{{{ATOM}}}updated": ("updated", 0), f"{{{DCTERMS}}}modified": ("updated", 1),
    }


def _atom_fields(ns: str) -> dict[str, tuple[str, int]]:
    q = lambda t: f"{{{ns}}}{t}"  # noqa: E731
    return {
        q("id"): ("guid", 0), q("title"): ("title", 0), q("author"): ("author", 0),
        f"{{{DC}}}creator": ("author", 1), q("summary"): ("summary", 0), q("content"): ("summary", 1),
        q("published"): ("published", 0), q("issued"): ("published", 1),
        f"{{{DC}}}date": ("published", 2), q("updated"): ("updated", 0), q("modified"): ("updated", 1),
    }


_FIELDS = {"": _rss_fields(""), RSS10: _rss_fields(RSS10), ATOM: _atom_fields(ATOM),
           ATOM03: _atom_fields(ATOM03)}


def _collect(item, fields: dict[str, tuple[str, int]]) -> dict[str, tuple[int, object]]:
    """One pass over the item's children: the best-ranked element for each field."""
    found: dict[str, tuple[int, object]] = {}
    for child in item:
        hit = fields.get(child.tag)
        if hit is None:
            continue
        name, rank = hit
        if name in found and found[name][0] <= rank:
            continue
        if name == "link" and rank == 1:  # an atom:link inside RSS: take alternates only
            if child.get("rel", "alternate") != "alternate" or not child.get("href"):
                continue
        elif not (child.text or len(child)):
            continue
        found[name] = (rank, child)
    return found


def _value(found, name: str) -> str | None:
    hit = found.get(name)
    return _text(hit[1]) if hit else None


def _rss_entry(item, ns: str = "") -> RawEntry:
    found = _collect(item, _FIELDS[ns])
    guid_el = found.get("guid", (0, None))[1]
    guid = _text(guid_el) or item.get(f"{{{RDF}}}about")
    link_hit = found.get("link")
    link = (link_hit[1].get("href") if link_hit[0] == 1 else _text(link_hit[1])) if link_hit else None
    if not link and _is_url(guid) and (guid_el is None or guid_el.get("isPermaLink", "true") != "false"):
        link = guid  # a permalink guid is the item's link (as feedparser reads it)
    return RawEntry(guid=guid, link=link, title=_value(found, "title"),
                    author=_value(found, "author"), summary=_value(found, "summary"),
                    published=_value(found, "published"), updated=_value(found, "updated"))


def _atom_entry(entry, ns: str) -> RawEntry:
    found = _collect(entry, _FIELDS[ns])
    guid = _value(found, "guid")
    author = found.get("author")
    if author and author[0] == 0:  # atom:author holds a name element
        author_name = _text(author[1].find(f"{{{ns}}}name"))
    else:
        author_name = _text(author[1]) if author else None
    title = found.get("title")
    kind = (title[1].get("type") or "text").lower() if title else "text"
    return RawEntry(
        guid=guid,
        link=_atom_link(entry, ns) or (guid if _is_url(guid) else None),
        title=_value(found, "title"), author=author_name, summary=_value(found, "summary"),
        published=_value(found, "published"), updated=_value(found, "updated"),
        # xhtml titles are markup already read as text by itertext
        title_type="html" if kind in ("html", "text/html") else "text",
    )


def _repair_entities(body: bytes) -> bytes:
    """Outside CDATA sections: a bare "&" becomes "&amp;", an HTML named entity (&nbsp;,
    &eacute;) its numeric form; what a browser shows, where XML would drop them."""
    def fix(seg: bytes) -> bytes:
        seg = _BARE_AMP.sub(b"&amp;", seg)

        def named(m):
            name = m.group(1)
            if name in _XML_NAMED:
                return m.group()
            cp = html.entities.name2codepoint.get(name.decode("ascii"))
            return b"&#%d;" % cp if cp else b"&amp;" + name + b";"
        return _NAMED.sub(named, seg)
    out, pos = [], 0
    for m in _CDATA.finditer(body):
        out += [fix(body[pos:m.start()]), m.group()]
        pos = m.end()
    out.append(fix(body[pos:]))
    return b"".join(out)


def _redeclared_utf8(body: bytes) -> bytes | None:
    """A document declaring another encoding whose bytes are in fact UTF-8, redeclared."""
    m = _DECLARED.match(body[:200])
    if not m or m.group(2).lower() in (b"utf-8", b"utf8") or b"\x00" in body[:400]:
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return m.group(1) + b"utf-8" + m.group(3) + body[m.end():]


def _lxml_root(body: bytes):
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True,
                             huge_tree=True, remove_comments=True)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        return None, [str(exc)]
    return root, [e.message for e in parser.error_log]


def parse_with_lxml(body: bytes) -> ParsedFeed:
    root, errors = _lxml_root(body)
    repairs = []
    if root is None or any("Entity" in e or "EntityRef" in e for e in errors):
        fixed = _redeclared_utf8(body) if root is None else None
        if fixed is not None:
            repairs.append("declared another encoding, but the bytes are UTF-8: read as UTF-8")
        else:
            fixed = _repair_entities(body)
            if fixed != body:
                repairs.append("bare '&' or HTML entities repaired")
        if fixed != body:
            root2, errors2 = _lxml_root(fixed)
            if root2 is not None:  # what was wrong stays the reason; the repair is noted beside it
                root, errors = root2, errors + errors2 + [f"repaired: {r}" for r in repairs]
    if root is None:
        raise NotAFeed(f"not XML: {errors[0] if errors else 'empty document'}")
    tag = etree.QName(root)
    local, ns = tag.localname, tag.namespace or ""
    if local == "rss":
        channel = root.find("channel")
        items = (channel if channel is not None else root).iterfind("item")
        entries = [_rss_entry(i) for i in items]
        fmt, title = "rss20", _first(channel, "title") if channel is not None else None
    elif local == "RDF":
        entries = [_rss_entry(i, RSS10) for i in root.iterfind(f"{{{RSS10}}}item")]
        if not entries:  # some RSS 0.9x-in-RDF feeds put items in no namespace
            entries = [_rss_entry(i) for i in root.iterfind("item")]
        fmt, title = "rss10", _first(root, f"{{{RSS10}}}channel/{{{RSS10}}}title")
    elif local == "feed" and ns in (ATOM, ATOM03):
        entries = [_atom_entry(e, ns) for e in root.iterfind(f"{{{ns}}}entry")]
        fmt, title = ("atom10" if ns == ATOM else "atom03"), _first(root, f"{{{ns}}}title")
    elif local.lower() == "html":
        raise NotAFeed("an HTML page, not a feed")
    else:
        raise NotAFeed(f"XML whose root is <{local}>, not RSS or Atom")
    real = [e for e in errors if not e.startswith("repaired: ")]
    return ParsedFeed(
        format=fmt, parser="lxml", entries=entries, bozo=bool(errors),
        bozo_reason=(real or errors or [None])[0],
        truncated=any(e.startswith(_TRUNCATED) for e in real), title=title, warnings=repairs,
    )


def _struct_to_iso(st) -> str | None:
    return datetime.fromtimestamp(calendar.timegm(st), UTC).isoformat() if st else None


def parse_with_feedparser(body: bytes, headers: dict | None = None) -> ParsedFeed:
    """The reference parser, for documents lxml can't read (and for the agreement tests)."""
    import feedparser

    parsed = feedparser.parse(body, response_headers={k.lower(): v for k, v in (headers or {}).items()},
                              sanitize_html=False, resolve_relative_uris=False)
    if not parsed.get("version") and not parsed.entries:
        raise NotAFeed("not a feed (feedparser found no RSS or Atom)")
    rss = (parsed.get("version") or "").startswith("rss")
    # feedparser files RSS 1.0's dc:date under "updated"; in RSS it is the publication date.
    entries = [
        RawEntry(guid=e.get("id"), link=e.get("link"), title=e.get("title"),
                 author=e.get("author"), summary=e.get("summary"),
                 published=e.get("published") or (e.get("updated") if rss else None),
                 updated=None if rss else e.get("updated"),
                 title_type="guess" if rss else ("html" if e.get("title_detail", {}).get("type") == "text/html"
                                                 else "text"))
        for e in parsed.entries
    ]
    exc = parsed.get("bozo_exception")
    return ParsedFeed(format=parsed.get("version") or "unknown", parser="feedparser", entries=entries,
                      bozo=bool(parsed.get("bozo")), bozo_reason=str(exc) if exc else None,
                      title=parsed.get("feed", {}).get("title"))


def parse_feed(body: bytes, headers: dict | None = None) -> ParsedFeed:
    """The fast reader first (lxml, or the JSON Feed reader); feedparser decides whenever it
    refuses the document or finds no entry in it. Not a feed only if both say so."""
    if not body or not body.strip():
        raise NotAFeed("empty body")
    if looks_like_json(body):
        return parse_json_feed(body)
    first, fast = None, None
    try:
        fast = parse_with_lxml(body)
    except NotAFeed as exc:
        first = exc
    if fast is not None and fast.entries:
        return fast
    try:
        ref = parse_with_feedparser(body, headers)
    except NotAFeed:
        if fast is not None:
            return fast  # a feed with no items: both agree there is nothing in it
        if _HTML_START.match(body[:4096]):
            raise NotAFeed("an HTML page, not a feed") from None
        raise first from None
    if fast is not None and not ref.entries:
        return fast
    ref.warnings.append(f"the fast reader {'could not read it (' + str(first) + ')' if first else 'found no entries'}; "
                        "parsed by feedparser")
    return ref


def items_frame(entries: list[RawEntry], base_urls: list[str], fetched_utc: pd.Series) -> pd.DataFrame:
    """Items of a whole batch of feeds, with raw and parsed times and flags.

    One call per batch, not per feed: the date parsing is vectorised over every entry at once.
    A date without a zone is read as UTC *and flagged* (no_zone); an unparseable one keeps its
    raw string and no parsed value (unparseable); an entry with only an updated date takes it,
    flagged from_updated; none at all is flagged missing; a date more than ten minutes after its
    fetch is flagged future. ``url_normalized`` (tracking parameters
    and fragment dropped) is the dedup key where there is no guid, and lets an analyst match the
    same story across sources.
    """
    from pipeline.urls import normalize_url

    raw_pub = pd.Series([e.published for e in entries], dtype="string")
    raw_upd = pd.Series([e.updated for e in entries], dtype="string")
    pub = parse_times(raw_pub, assume_tz="UTC")
    upd = parse_times(raw_upd, assume_tz="UTC")
    fetched = pd.Series(fetched_utc, dtype="datetime64[us, UTC]").reset_index(drop=True)
    has_pub = raw_pub.notna().to_numpy()
    bad = np.array([e is not None for e in pub.error], dtype=bool) & has_pub
    # An entry dated only by when it was last updated (common in Atom) keeps that time, flagged
    # from_updated: an upper bound on when it first appeared, never silently absent.
    from_upd = ~has_pub & raw_upd.notna().to_numpy() & np.array([e is None for e in upd.error], dtype=bool)
    when = pub.utc.where(~from_upd, upd.utc)
    zone = np.where(from_upd, upd.zone_explicit, pub.zone_explicit)
    precision = np.where(from_upd, upd.precision_s, pub.precision_s)
    has_time = has_pub | from_upd
    future = (when > fetched + FUTURE_SLACK).fillna(False).to_numpy(dtype=bool)
    no_zone = has_time & ~bad & ~zone
    flags = [
        (["from_updated"] if u else ["missing"] if not p else ["unparseable"] if b else [])
        + (["no_zone"] if z else []) + (["future"] if f else [])
        for p, u, b, z, f in zip(has_pub, from_upd, bad, no_zone, future)
    ]
    links = [(e.link if _is_url(e.link) else urljoin(base, e.link.strip())) if e.link else None
             for e, base in zip(entries, base_urls)]
    guids = [e.guid.strip() if e.guid else None for e in entries]
    return pd.DataFrame({
        "guid": guids,
        "url": links,
        "url_normalized": [normalize_url(u) for u in links],
        "title": [reader_text(e.title, e.title_type) for e in entries],
        "author": [reader_text(e.author, "guess", 200) for e in entries],
        "summary": [_summary(e.summary) for e in entries],
        "published_raw": raw_pub,
        "updated_raw": raw_upd,
        "published_utc": when,
        "updated_utc": upd.utc,
        "time_precision_s": pd.Series(precision, dtype="Int32").where(has_time),
        "time_zone_explicit": pd.Series(zone, dtype="boolean").where(has_time),
        "time_flags": flags,
        "first_seen_utc": fetched,
    })
