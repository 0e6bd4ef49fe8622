"""Faults a feed server or the network commits, against real loopback servers: each recorded with
its reason, one feed failing never stops the others, a rerun repairs, and nothing that should not
be reached is reached."""

import gzip
import time
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug import Response

from pipeline.config import Settings
from pipeline.sources.addresses import UnsupportedURL
from pipeline.sources.feeds import FeedSpec, add_feed
from pipeline.sources.ingest import due_feeds
from pipeline.store.database import open_db
from tests.feed_support import BIG, FEED, ingest, item_count, last_fetch, register, rows, rss, send


def test_a_server_error_is_recorded_and_a_rerun_repairs_it(settings, httpserver):
    state = {"broken": True}

    def handler(request):
        if state["broken"]:
            return Response("boom", status=500)
        return Response(FEED.read_bytes(), content_type="application/rss+xml")

    httpserver.expect_request("/feed.xml").respond_with_handler(handler)
    register(settings, "f", httpserver.url_for("/feed.xml"))
    broken = ingest(settings)
    assert broken.failed == 1 and "HTTP 500" in broken.failures[0]
    assert last_fetch(settings, "f")[:3] == ("failed", 500, "HTTP 500 INTERNAL SERVER ERROR")
    state["broken"] = False
    assert ingest(settings).items_new == 10
    assert ingest(settings).items_new == 0
    assert item_count(settings) == 10


def test_retry_after_is_honoured(settings, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "3600"}
    )
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    status, code, _, _, _, _, _, _, retry_after = last_fetch(settings, "f")
    assert (status, code) == ("failed", 429)
    now = datetime.now(UTC)
    assert timedelta(minutes=55) < retry_after - now <= timedelta(hours=1)
    with open_db(settings.db_path) as con:
        assert due_feeds(con, now=now + timedelta(minutes=30), poll_minutes=15) == []
        assert [
            r.name for r in due_feeds(con, now=now + timedelta(minutes=61), poll_minutes=15)
        ] == ["f"]


def test_failures_back_off(settings, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data("no", status=503)
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    ingest(settings)  # two consecutive failures: next poll after 15 min x 2^2
    with open_db(settings.db_path) as con:
        now = datetime.now(UTC)
        assert due_feeds(con, now=now + timedelta(minutes=50), poll_minutes=15) == []
        assert len(due_feeds(con, now=now + timedelta(minutes=61), poll_minutes=15)) == 1


def test_a_slow_server_times_out(settings, httpserver):
    def slow(request):
        time.sleep(1.6)
        return Response(FEED.read_bytes())

    httpserver.expect_request("/feed.xml").respond_with_handler(slow)
    register(settings, "f", httpserver.url_for("/feed.xml"))
    assert ingest(settings).failed == 1
    assert last_fetch(settings, "f")[2] == "read timeout after 1 s"


def test_an_oversized_body_is_refused(settings, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        BIG.read_bytes(), content_type="application/xml"
    )
    register(settings, "f", httpserver.url_for("/feed.xml"))
    small = Settings(**{**settings.__dict__, "fetch_max_bytes": 50_000})
    assert ingest(small).failed == 1
    assert last_fetch(settings, "f")[2] == "body larger than 50,000 bytes"
    assert item_count(settings) == 0


def test_redirects_are_followed_and_loops_refused(settings, httpserver):
    httpserver.expect_request("/old.xml").respond_with_data(
        "", status=301, headers={"Location": "/feed.xml"}
    )
    httpserver.expect_request("/feed.xml").respond_with_data(
        FEED.read_bytes(), content_type="application/rss+xml"
    )
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", status=302, headers={"Location": "/a"})
    register(settings, "moved", httpserver.url_for("/old.xml"))
    register(settings, "loop", httpserver.url_for("/a"))
    ingest(settings)
    assert last_fetch(settings, "moved")[0] == "ok"
    assert last_fetch(settings, "moved")[7] == httpserver.url_for("/feed.xml")
    assert last_fetch(settings, "loop")[:3] == (
        "failed",
        None,
        "redirect loop (more than 10 redirects)",
    )


def test_malformed_xml_keeps_its_items_and_the_reason(settings, httpserver):
    body = rss([("a", "Fish & chips"), ("b", "fine")])
    httpserver.expect_request("/feed.xml").respond_with_data(
        body, content_type="application/rss+xml"
    )
    register(settings, "f", httpserver.url_for("/feed.xml"))
    assert ingest(settings).items_new == 2
    status, _, _, bozo, reason, *_ = last_fetch(settings, "f")
    assert status == "ok" and bozo and "EntityRef" in reason


def test_a_wrong_charset_header_does_not_garble_titles(settings, httpserver):
    body = rss([("a", "Zürich — São Paulo")])
    httpserver.expect_request("/feed.xml").respond_with_data(
        body, content_type="text/xml; charset=iso-8859-1"
    )
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    assert rows(settings, "SELECT title FROM items")[0][0] == "Zürich — São Paulo"


def test_gzip_bodies_are_decoded(settings, httpserver):
    body = gzip.compress(FEED.read_bytes())
    httpserver.expect_request("/feed.xml").respond_with_data(
        body, content_type="application/rss+xml", headers={"Content-Encoding": "gzip"}
    )
    register(settings, "f", httpserver.url_for("/feed.xml"))
    assert ingest(settings).items_new == 10


@pytest.mark.parametrize(
    "body,content_type,status,error",
    [
        (
            b"<!DOCTYPE html><html><body>Moved to our new site</body></html>",
            "text/html",
            "not_a_feed",
            "HTML page",
        ),
        (b"", "application/rss+xml", "not_a_feed", "empty body"),
        (rss([]), "application/rss+xml", "ok", None),
    ],
)
def test_not_a_feed_and_empty_feeds(settings, httpserver, body, content_type, status, error):
    httpserver.expect_request("/feed.xml").respond_with_data(body, content_type=content_type)
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    got = last_fetch(settings, "f")
    assert got[0] == status and (error is None or error in got[2])
    assert item_count(settings) == 0


def test_a_body_shorter_than_its_content_length_is_a_failed_fetch(settings, raw_server):
    url, responses = raw_server
    body = FEED.read_bytes()
    responses.append(
        send(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body[: len(body) // 2]
        )
    )
    register(settings, "f", url)
    assert ingest(settings).failed == 1
    assert "cut short" in last_fetch(settings, "f")[2]
    assert item_count(settings) == 0


def test_a_connection_closed_mid_document_is_a_failed_fetch_and_a_rerun_repairs(
    settings, raw_server
):
    url, responses = raw_server
    body = FEED.read_bytes()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nConnection: close\r\n\r\n"
    responses.extend([send(head + body[: len(body) * 2 // 3]), send(head + body)])
    register(settings, "f", url)
    cut = ingest(settings)
    assert cut.failed == 1 and "ended early" in last_fetch(settings, "f")[2]
    assert item_count(settings) == 0  # never stored as a complete poll
    assert ingest(settings).items_new == 10
    assert ingest(settings).items_new == 0


def test_a_trickling_server_cannot_outlast_the_deadline(settings, raw_server):
    url, responses = raw_server

    def trickle(conn):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nConnection: close\r\n\r\n<rss>"
        )
        for _ in range(60):  # a byte every 0.1 s: each read is quick, the whole never ends
            conn.sendall(b" ")
            time.sleep(0.1)

    responses.append(trickle)
    register(settings, "f", url)
    started = time.monotonic()
    assert ingest(settings).failed == 1
    assert time.monotonic() - started < 4.5
    assert "deadline of 2 s exceeded" in last_fetch(settings, "f")[2]


def test_only_http_and_https_are_accepted(settings):
    for url in (
        "file:///etc/passwd",
        "ftp://example.com/feed.xml",
        "javascript:alert(1)",
        "example.com/feed",
    ):
        with pytest.raises(UnsupportedURL, match="only http and https"):
            register(settings, "x", url)


def test_a_redirect_to_another_scheme_is_refused(settings, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        "", status=302, headers={"Location": "file:///etc/passwd"}
    )
    register(settings, "f", httpserver.url_for("/feed.xml"))
    assert ingest(settings).failed == 1
    status, _, error, *_ = last_fetch(settings, "f")
    assert status == "failed" and "only http and https" in error


def test_https_feeds_are_verified_against_the_ca_bundle(settings, tls_server, monkeypatch):
    server, cert = tls_server
    server.expect_request("/feed.xml").respond_with_data(
        FEED.read_bytes(), content_type="application/rss+xml"
    )
    register(settings, "f", server.url_for("/feed.xml"))
    assert server.url_for("/feed.xml").startswith("https://")
    assert ingest(settings).failed == 1  # self-signed: not in the CA bundle
    assert last_fetch(settings, "f")[2].startswith("TLS failed")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now trusted
    assert ingest(settings).items_new == 10


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/x.xml",  # loopback
        "http://localhost:{port}/x.xml",  # a name that resolves to loopback (checked where we connect)
        "http://2130706433:{port}/x.xml",  # 127.0.0.1 as one integer
        "http://0x7f.1:{port}/x.xml",  # ... in hex
        "http://[::1]:{port}/x.xml",  # IPv6 loopback
        "http://[::ffff:127.0.0.1]:{port}/x.xml",  # IPv4-mapped IPv6
        "http://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata services
        "http://10.1.2.3/x.xml",
        "http://192.168.1.1/x.xml",  # private
        "http://224.0.0.1/x.xml",  # multicast
    ],
)
def test_loopback_private_link_local_and_multicast_addresses_are_refused(tmp_path, httpserver, url):
    strict = Settings(
        db_path=tmp_path / "s.duckdb",
        data_dir=tmp_path / "data",
        lock_wait_s=5,
        fetch_connect_timeout_s=2,
        fetch_deadline_s=3,
        fetch_allow_networks="",
    )
    httpserver.expect_request("/x.xml").respond_with_data(FEED.read_bytes())
    register(strict, "f", url.format(port=httpserver.port))
    summary = ingest(strict)
    assert summary.failed == 1 and not httpserver.log  # never reached
    status, *_, error = rows(strict, "SELECT status, error FROM fetches")[0]
    assert (
        status == "failed" and "refused" in error and "MEDIA_TIMING_FETCH_ALLOW_NETWORKS" in error
    )


def test_a_redirect_to_a_forbidden_address_is_refused(tmp_path, httpserver):
    """Only 127.0.0.1 is allowed; the allowed server redirects to another loopback address."""
    httpserver.expect_request("/moved.xml").respond_with_data(
        "", status=302, headers={"Location": f"http://127.0.0.2:{httpserver.port}/x.xml"}
    )
    strict = Settings(
        db_path=tmp_path / "s.duckdb",
        data_dir=tmp_path / "data",
        lock_wait_s=5,
        fetch_allow_networks="127.0.0.1/32",
    )
    register(strict, "f", httpserver.url_for("/moved.xml").replace("localhost", "127.0.0.1"))
    assert ingest(strict).failed == 1
    error = rows(strict, "SELECT error FROM fetches")[0][0]
    assert "127.0.0.2 is a loopback address" in error


def test_allowed_networks_are_reached(tmp_path, httpserver):
    httpserver.expect_request("/x.xml").respond_with_data(FEED.read_bytes())
    allowed = Settings(
        db_path=tmp_path / "s.duckdb",
        data_dir=tmp_path / "data",
        lock_wait_s=5,
        fetch_allow_networks="127.0.0.0/8",
    )
    register(allowed, "f", httpserver.url_for("/x.xml").replace("localhost", "127.0.0.1"))
    assert ingest(allowed).ok == 1


def test_user_names_and_passwords_in_feed_urls_are_refused(settings):
    with (
        open_db(settings.db_path) as con,
        pytest.raises(UnsupportedURL, match="user name or password"),
    ):
        add_feed(con, FeedSpec("http://user:secret@example.org/feed.xml", "x", "news"))


def test_text_from_the_network_reaches_no_terminal_with_control_characters(settings, raw_server):
    url, responses = raw_server
    responses.append(send(b"HTTP/1.1 500 Bad\x1b[31m red\x07 thing\r\nContent-Length: 0\r\n\r\n"))
    register(settings, "f", url)
    summary = ingest(settings)
    assert summary.failed == 1
    assert "\x1b" not in summary.failures[0] and "\x07" not in summary.failures[0]
    assert "Bad[31m red thing" in summary.failures[0]
