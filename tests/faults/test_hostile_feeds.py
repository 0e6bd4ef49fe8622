"""Feeds written to hurt the reader, served over loopback: each one fails alone or is read safely, in
bounded memory and time, and the feed beside it loads as usual."""

import gzip
import resource
import socket
import time

import pytest
from werkzeug import Response

from pipeline.config import Settings
from tests.feed_support import FEED, ingest, item_count, last_fetch, register, rows, rss

LAUGHS = ('<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "ha">'
          + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
          + ']><rss version="2.0"><channel><title>T</title>'
          '<item><guid>laugh</guid><title>&j;</title><link>http://example.org/1</link>'
          '<pubDate>Fri, 07 Oct 2016 20:32:00 +0000</pubDate></item></channel></rss>').encode()


def _with_a_good_neighbour(settings, httpserver, path, handler):
    httpserver.expect_request(path).respond_with_handler(handler)
    httpserver.expect_request("/good.xml").respond_with_data(FEED.read_bytes(), content_type="application/rss+xml")
    register(settings, "hostile", httpserver.url_for(path))
    register(settings, "good", httpserver.url_for("/good.xml"))
    summary = ingest(settings)
    assert last_fetch(settings, "good")[0] == "ok" and last_fetch(settings, "good")[5] == 10
    return summary


def _peak_rss_mb():
    return max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def test_external_entities_are_never_fetched_or_read(settings, httpserver, tmp_path):
    """XXE: a SYSTEM entity naming a local file and one naming a URL are both left unresolved."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    hits = []
    httpserver.expect_request("/dtd").respond_with_handler(lambda r: hits.append(1) or Response("x"))
    body = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY file SYSTEM "file://{secret}">'
            f'<!ENTITY net SYSTEM "{httpserver.url_for("/dtd")}"> %net;]>'
            '<rss version="2.0"><channel><title>T</title><item><guid>x</guid><title>a &file; b &net;</title>'
            '<pubDate>Fri, 07 Oct 2016 20:32:00 +0000</pubDate></item></channel></rss>').encode()
    _with_a_good_neighbour(settings, httpserver, "/xxe.xml",
                           lambda r: Response(body, content_type="application/rss+xml"))
    stored = rows(settings, "SELECT title FROM items JOIN sources USING (source_id) WHERE name = 'hostile'")
    assert not hits, "the parser reached out for an external entity"
    assert all("TOP SECRET" not in (t or "") for (t,) in stored)


def test_entity_expansion_is_not_expanded(settings, httpserver):
    """A billion laughs (10^9 'ha's from a 1 KB document) is read without expanding it."""
    started = time.monotonic()
    _with_a_good_neighbour(settings, httpserver, "/laughs.xml",
                           lambda r: Response(LAUGHS, content_type="application/rss+xml"))
    assert time.monotonic() - started < 30
    titles = rows(settings, "SELECT title FROM items JOIN sources USING (source_id) WHERE name = 'hostile'")
    assert all(len(t or "") < 10_000 for (t,) in titles)
    assert _peak_rss_mb() < 1500


def test_a_gzip_bomb_is_refused_at_the_size_limit(settings, httpserver):
    """2 MB of limit; 100 MB of feed that gzips to about 100 KB."""
    bomb = gzip.compress(b'<?xml version="1.0"?><rss version="2.0"><channel><title>' + b"A" * 100_000_000, 9)
    assert len(bomb) < 200_000
    summary = _with_a_good_neighbour(settings, httpserver, "/bomb.xml", lambda r: Response(
        bomb, content_type="application/rss+xml", headers={"Content-Encoding": "gzip"}))
    assert summary.failed == 1
    assert last_fetch(settings, "hostile")[2] == f"body larger than {settings.fetch_max_bytes:,} bytes"


def test_an_oversized_body_without_a_length_is_cut_at_the_limit(settings, httpserver):
    """Chunked, no Content-Length: the limit is counted as the bytes arrive, not announced."""
    sent = {"bytes": 0}

    def endless(request):
        def chunks():
            yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
            for _ in range(10_000):  # 10,000 x 64 KB = 640 MB if nobody stops it
                sent["bytes"] += 65536
                yield b"<item><title>" + b"x" * 65500 + b"</title></item>"
        return Response(chunks(), content_type="application/rss+xml", direct_passthrough=True)

    small = Settings(**{**settings.__dict__, "fetch_deadline_s": 20, "fetch_read_timeout_s": 10})
    httpserver.expect_request("/endless.xml").respond_with_handler(endless)
    register(small, "hostile", httpserver.url_for("/endless.xml"))
    assert ingest(small).failed == 1
    assert last_fetch(small, "hostile")[2] == f"body larger than {small.fetch_max_bytes:,} bytes"
    assert sent["bytes"] < 100 * small.fetch_max_bytes


@pytest.mark.parametrize("shape", ["deep", "wide title", "many items", "attribute flood"])
def test_documents_shaped_to_exhaust_the_parser_are_read_or_refused_alone(settings, httpserver, shape):
    body = {
        "deep": b'<?xml version="1.0"?><rss version="2.0"><channel>' + b"<x>" * 200_000 + b"</x>" * 200_000
                + b"</channel></rss>",
        "wide title": rss([("a", "t" * 1_500_000)]),
        "many items": rss([(f"g{i}", "t") for i in range(20_000)]),
        "attribute flood": b'<?xml version="1.0"?><rss version="2.0"><channel><item '
                           + b" ".join(b'a%d="v"' % i for i in range(100_000)) + b"><guid>z</guid></item>"
                           + b"</channel></rss>",
    }[shape]
    assert len(body) < settings.fetch_max_bytes
    _with_a_good_neighbour(settings, httpserver, "/shape.xml",
                           lambda r: Response(body, content_type="application/rss+xml"))
    status, _, error, *_ = last_fetch(settings, "hostile")
    assert status in ("ok", "not_a_feed", "failed"), (status, error)
    if status != "ok":
        assert error, "a refusal says why"
    if shape == "many items":
        assert status == "ok" and last_fetch(settings, "hostile")[5] == 20_000
    titles = rows(settings, "SELECT max(length(title)) FROM items JOIN sources USING (source_id) "
                            "WHERE name = 'hostile'")[0][0]
    assert titles is None or titles <= 1_500_000


def test_a_server_that_never_closes_the_header_is_cut_by_the_deadline(settings, raw_server):
    """Headers that never end (one byte a second, forever) cannot hold the poll past its deadline."""
    url, responses = raw_server

    def slow_headers(conn: socket.socket):
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(30):
            conn.sendall(b"X-A: b\r\n")
            time.sleep(0.5)

    responses[:] = [slow_headers]
    register(settings, "hostile", url)
    started = time.monotonic()
    assert ingest(settings).failed == 1
    assert time.monotonic() - started < settings.fetch_deadline_s + 5
    assert item_count(settings) == 0
