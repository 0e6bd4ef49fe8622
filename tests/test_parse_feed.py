"""Parsing feeds: the fast path agrees with feedparser, keeps raw dates and flags bad ones."""

from datetime import UTC, datetime

import pandas as pd
import pytest

from pipeline.sources.parse_feed import (
    NotAFeed,
    items_frame,
    parse_feed,
    parse_with_feedparser,
    parse_with_lxml,
)
from tests.conftest import FIXTURES

# The real documents (synthetic-* fixtures test repairs feedparser does not make).
FEEDS = sorted(p for p in (FIXTURES / "feeds").glob("*.xml") if not p.name.startswith("synthetic-"))
FETCHED = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def frame(feed, base="https://example.org/feed.xml", fetched=FETCHED):
    n = len(feed.entries)
    return items_frame(feed.entries, [base] * n, pd.Series([fetched] * n))


@pytest.mark.parametrize("path", FEEDS, ids=lambda p: p.stem)
def test_fast_path_agrees_with_feedparser(path):
    body = path.read_bytes()
    fast, ref = parse_with_lxml(body), parse_with_feedparser(body)
    assert len(fast.entries) == len(ref.entries) > 0
    a, b = frame(fast), frame(ref)
    for column in ("guid", "url", "title", "published_utc"):
        assert a[column].equals(b[column]) or list(a[column]) == list(b[column]), column


def rss(items: str, extra_ns: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" {extra_ns}><channel>'
            f"<title>T</title>{items}</channel></rss>").encode()


def test_raw_dates_are_kept_and_bad_ones_flagged():
    feed = parse_feed(rss(
        "<item><guid>a</guid><title>exact</title><pubDate>Fri, 07 Oct 2016 16:32:00 EDT</pubDate></item>"
        "<item><guid>b</guid><title>zoneless</title><pubDate>2016-10-07 20:32:00</pubDate></item>"
        "<item><guid>c</guid><title>future</title><pubDate>Mon, 01 Jan 2099 00:00:00 +0000</pubDate></item>"
        "<item><guid>d</guid><title>missing</title></item>"
        "<item><guid>e</guid><title>garbage</title><pubDate>yesterday-ish</pubDate></item>"
    ))
    f = frame(feed)
    assert list(f["published_raw"])[:2] == ["Fri, 07 Oct 2016 16:32:00 EDT", "2016-10-07 20:32:00"]
    assert f["published_utc"].iat[0] == pd.Timestamp("2016-10-07T20:32:00Z")
    assert list(f["time_flags"]) == [[], ["no_zone"], ["future"], ["missing"], ["unparseable"]]
    assert f["published_utc"].iat[1] == pd.Timestamp("2016-10-07T20:32:00Z")  # read as UTC, and flagged
    assert pd.isna(f["published_utc"].iat[3]) and pd.isna(f["published_utc"].iat[4])
    assert f["published_raw"].iat[4] == "yesterday-ish"
    assert bool(f["time_zone_explicit"].iat[0]) and not bool(f["time_zone_explicit"].iat[1])


def test_an_entry_dated_only_by_its_update_keeps_that_time_flagged():
    """5 of 40 Atom feeds in a real sample carry only <updated>: their items must keep a time."""
    atom = (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><entry><id>x</id>'
            b"<title>only updated</title><updated>2016-10-07T20:00:00Z</updated></entry>"
            b"<entry><id>y</id><title>both</title><published>2016-10-07T19:00:00Z</published>"
            b"<updated>2016-10-08T08:00:00Z</updated></entry></feed>")
    f = frame(parse_feed(atom))
    assert f["published_utc"].iat[0] == pd.Timestamp("2016-10-07T20:00:00Z")
    assert f["time_flags"].iat[0] == ["from_updated"] and pd.isna(f["published_raw"].iat[0])
    assert f["updated_raw"].iat[0] == "2016-10-07T20:00:00Z" and bool(f["time_zone_explicit"].iat[0])
    # Where there is a published date, updated never replaces it.
    assert f["published_utc"].iat[1] == pd.Timestamp("2016-10-07T19:00:00Z") and f["time_flags"].iat[1] == []


def test_malformed_xml_still_yields_its_items_and_is_flagged():
    body = rss("<item><guid>a</guid><title>One & two</title></item><item><guid>b</guid><title>ok</title></item>")
    feed = parse_feed(body)
    assert feed.bozo and feed.bozo_reason
    assert [e.guid for e in feed.entries] == ["a", "b"]
    assert feed.entries[0].title == "One & two" and feed.warnings  # the bare & kept, the repair noted


@pytest.mark.parametrize("title_xml, seen", [
    ("#include &lt;/etc/shadow&gt;", "#include </etc/shadow>"),  # text that looks like a tag is text
    ("AT&T and Verizon", "AT&T and Verizon"),  # a bare & (invalid XML) is kept, not dropped
    ("AT&amp;T &amp; Verizon", "AT&T & Verizon"),
    ("&lt;i&gt;X&lt;/i&gt;'s move", "X's move"),  # markup is rendered, not turned into spaces
    ("Caf&eacute; &nbsp;society", "Café society"),  # HTML entities XML does not define
    ("Two&lt;br&gt;lines", "Two lines"),
    ("&lt;script&gt;alert(1)&lt;/script&gt;Safe", "Safe"),
    ("Bell\x07 and \u202eevil", "Bell and evil"),  # control and bidi characters never get through
    ("<![CDATA[R&D <b>bold</b> & more]]>", "R&D bold & more"),
])
def test_titles_keep_the_text_a_reader_would_see(title_xml, seen):
    title_xml = title_xml.replace("\\x07", "\x07").replace("\\u202e", "\u202e")
    f = frame(parse_feed(rss(f"<item><guid>a</guid><title>{title_xml}</title></item>")))
    assert f["title"].iat[0] == seen


def test_atom_text_titles_are_literal_and_html_titles_are_rendered():
    atom = (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
            b'<entry><id>a</id><title type="text">&lt;i&gt; is the italic tag</title><updated>2016-10-07T20:00:00Z</updated></entry>'
            b'<entry><id>b</id><title type="html">&lt;i&gt;X&lt;/i&gt;\'s move</title><updated>2016-10-07T20:00:00Z</updated></entry>'
            b'</feed>')
    f = frame(parse_feed(atom))
    assert list(f["title"]) == ["<i> is the italic tag", "X's move"]


def test_a_stray_html_doctype_before_a_feed_is_read():
    body = (FIXTURES / "feeds" / "1ab0c5cc619c3b8e.xml").read_bytes()
    decl, rest = body.split(b"?>", 1) if body.startswith(b"<?xml") else (b"", body)
    feed = parse_feed(b"<!DOCTYPE html>\n" + rest)
    assert len(feed.entries) == len(parse_feed(body).entries) == 3


def test_a_utf8_document_declaring_utf16_is_read_as_utf8():
    body = rss("<item><guid>a</guid><title>café</title></item>").replace(b'encoding="utf-8"', b'encoding="utf-16"')
    feed = parse_feed(body)
    assert feed.entries[0].title == "café" and any("UTF-8" in w for w in feed.warnings)


def test_json_feed_is_parsed_with_its_dates():
    import json

    for version in ("1", "1.1"):
        doc = {"version": f"https://jsonfeed.org/version/{version}", "title": "J", "items": [
            {"id": "1", "url": "https://x.org/1", "title": "Hello", "date_published": "2016-10-07T16:32:00-04:00",
             "authors": [{"name": "A. Writer"}]},
            {"id": "2", "external_url": "https://x.org/2", "content_text": "no title", "date_modified": "2016-10-07T21:00:00Z",
             "author": {"name": "B"}}]}
        feed = parse_feed(json.dumps(doc).encode())
        f = frame(feed)
        assert feed.format == "json" + version.replace(".", "")
        assert list(f["guid"]) == ["1", "2"] and list(f["url"]) == ["https://x.org/1", "https://x.org/2"]
        assert f["published_utc"].iat[0] == pd.Timestamp("2016-10-07T20:32:00Z")
        assert f["time_flags"].iat[1] == ["from_updated"] and list(f["author"])[0] == "A. Writer"
    with pytest.raises(NotAFeed, match="not a JSON Feed"):
        parse_feed(b'{"version": "2", "items": []}')


def test_an_offset_beyond_fourteen_hours_is_unparseable_not_shifted():
    f = frame(parse_feed(rss("<item><guid>a</guid><pubDate>Fri, 07 Oct 2016 20:32:00 +9900</pubDate></item>"
                             "<item><guid>b</guid><pubDate>2016-10-07T20:32:00+99:00</pubDate></item>"
                             "<item><guid>c</guid><pubDate>2016-10-07T20:32:00+14:00</pubDate></item>")))
    assert list(f["time_flags"])[:2] == [["unparseable"], ["unparseable"]]
    assert pd.isna(f["published_utc"].iat[0]) and pd.isna(f["published_utc"].iat[1])
    assert f["published_utc"].iat[2] == pd.Timestamp("2016-10-07T06:32:00Z")


def test_a_document_cut_off_is_recognised():
    body = (FIXTURES / "feeds" / "4179e7a13df0f120.xml").read_bytes()
    feed = parse_feed(body[: len(body) // 2])
    assert feed.truncated and feed.bozo


@pytest.mark.parametrize("body,reason", [
    (b"", "empty body"),
    (b"   \n", "empty body"),
    (b"<!doctype html><html><head><title>Not a feed</title></head><body>hi</body></html>", "HTML page"),
    (b'<?xml version="1.0"?><sitemap><url/></sitemap>', "root is <sitemap>"),
])
def test_not_a_feed(body, reason):
    with pytest.raises(NotAFeed, match=reason):
        parse_feed(body)


def test_a_feed_with_no_items_is_a_feed():
    feed = parse_feed(rss(""))
    assert feed.format == "rss20" and feed.entries == []


def test_relative_links_are_resolved_against_the_feed_url():
    f = frame(parse_feed(rss("<item><guid>a</guid><link>/story/1?utm_source=rss</link></item>")),
              base="https://news.example.org/feeds/all.xml")
    assert f["url"].iat[0] == "https://news.example.org/story/1?utm_source=rss"


def test_external_entities_are_not_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    body = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file://{secret}">]>'
            '<rss version="2.0"><channel><item><guid>a</guid><title>&x;</title></item></channel></rss>').encode()
    feed = parse_feed(body)
    assert "TOP SECRET" not in (feed.entries[0].title or "")


def test_summaries_are_text_and_short():
    long_html = "<p>" + "word " * 1000 + "</p>"
    f = frame(parse_feed(rss(f"<item><guid>a</guid><description><![CDATA[{long_html}]]></description></item>")))
    s = f["summary"].iat[0]
    assert "<p>" not in s and len(s) <= 500 and s.endswith("…")
