"""Parsing feeds: the fast path agrees with feedparser, keeps raw dates and flags bad ones."""

from datetime import UTC, datetime

import pandas as pd
import pytest

from pipeline.parse_feed import (
    NotAFeed,
    items_frame,
    parse_feed,
    parse_with_feedparser,
    parse_with_lxml,
)
from tests.conftest import FIXTURES

FEEDS = sorted((FIXTURES / "feeds").glob("*.xml"))
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


def test_updated_is_never_passed_off_as_published():
    atom = (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><entry><id>x</id>'
            b"<title>only updated</title><updated>2016-10-07T20:00:00Z</updated></entry></feed>")
    f = frame(parse_feed(atom))
    assert pd.isna(f["published_utc"].iat[0]) and f["time_flags"].iat[0] == ["missing"]
    assert f["updated_utc"].iat[0] == pd.Timestamp("2016-10-07T20:00:00Z")


def test_malformed_xml_still_yields_its_items_and_is_flagged():
    body = rss("<item><guid>a</guid><title>One & two</title></item><item><guid>b</guid><title>ok</title></item>")
    feed = parse_feed(body)
    assert feed.bozo and feed.bozo_reason
    assert [e.guid for e in feed.entries] == ["a", "b"]


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
