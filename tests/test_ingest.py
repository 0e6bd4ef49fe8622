"""Feed ingestion against real loopback servers: every fault recorded, reruns repair gaps and
never duplicate, a locked database loses nothing."""

import gzip
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug import Response

from pipeline.config import Settings
from pipeline.database import open_db, query_one
from pipeline.feeds import FeedSpec, add_feed, enable_feed, import_feeds
from pipeline.fetch import UnsupportedURL, parse_networks
from pipeline.ingest import due_feeds, load_all_staged, run_ingest, shard_by_host
from tests.conftest import FIXTURES, LOOPBACK

FEED = FIXTURES / "feeds" / "4179e7a13df0f120.xml"  # RSS 2.0, 10 items
BIG = FIXTURES / "feeds" / "14dda539770f94e3.xml"  # RSS 1.0, 141 items, 124 KB


@pytest.fixture
def settings(tmp_path):
    return Settings(db_path=tmp_path / "feeds.duckdb", data_dir=tmp_path / "data", lock_wait_s=5,
                    fetch_connect_timeout_s=2, fetch_read_timeout_s=1, fetch_deadline_s=2,
                    fetch_max_bytes=2_000_000, fetch_workers=8, fetch_per_host=2, poll_minutes=15,
                    max_failures=3, fetch_allow_networks=LOOPBACK)


def register(settings, name, url, role="news"):
    with open_db(settings.db_path) as con:
        add_feed(con, FeedSpec(url, name, role))


def ingest(settings, **kw):
    return run_ingest(settings, force=kw.pop("force", True), show_progress=False, **kw)


def rows(settings, sql, params=None):
    with open_db(settings.db_path) as con:
        return con.execute(sql, params or []).fetchall()


def last_fetch(settings, name):
    return rows(settings, """SELECT status, http_status, error, bozo, bozo_reason, items_new, items_seen,
                                    final_url, retry_after_utc
                             FROM fetches JOIN sources USING (source_id) WHERE name = ?
                             ORDER BY fetch_id DESC LIMIT 1""", [name])[0]


def channel(items: str, title="T") -> bytes:
    """An RSS 2.0 document around the given <item> elements."""
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>{items}</channel></rss>'.encode()


def rss(items: list[tuple[str, str]], title="T") -> bytes:
    return channel("".join(f"<item><guid>{g}</guid><title>{t}</title><pubDate>Fri, 07 Oct 2016 20:32:00 +0000</pubDate></item>"
                           for g, t in items), title)


def item_count(settings):
    return rows(settings, "SELECT count(*) FROM items")[0][0]


# --- the ordinary life of a feed -------------------------------------------------------------

def test_first_poll_loads_items_and_the_repoll_is_conditional(settings, httpserver):
    body = FEED.read_bytes()

    def handler(request):
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(body, content_type="application/rss+xml", headers={"ETag": '"v1"'})

    httpserver.expect_request("/feed.xml").respond_with_handler(handler)
    register(settings, "f", httpserver.url_for("/feed.xml"))
    first = ingest(settings)
    assert (first.ok, first.items_new, first.failed) == (1, 10, 0)
    second = ingest(settings)
    assert (second.not_modified, second.items_new) == (1, 0)
    assert last_fetch(settings, "f")[:2] == ("not_modified", 304)
    assert item_count(settings) == 10
    assert rows(settings, "SELECT count(*) FROM item_sightings")[0][0] == 10
    flags = rows(settings, "SELECT published_raw, published_utc FROM items ORDER BY item_id LIMIT 1")[0]
    assert flags[0] and flags[1].tzinfo is not None


def test_a_server_ignoring_conditionals_is_caught_by_the_body_hash(settings, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(FEED.read_bytes(), content_type="application/rss+xml")
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    again = ingest(settings)
    assert again.not_modified == 1 and again.items_new == 0
    assert last_fetch(settings, "f")[0] == "unchanged"


def test_a_feed_that_changes_without_changing_its_etag_is_reread(settings, httpserver):
    bodies = [rss([("a", "one"), ("b", "two")]), rss([("a", "one"), ("b", "two"), ("c", "three")])]
    served = []

    def handler(request):  # ignores If-None-Match and never changes its ETag: servers lie
        served.append(1)
        return Response(bodies[min(len(served) - 1, 1)], content_type="application/rss+xml", headers={"ETag": '"same"'})

    httpserver.expect_request("/feed.xml").respond_with_handler(handler)
    register(settings, "f", httpserver.url_for("/feed.xml"))
    assert ingest(settings).items_new == 2
    second = ingest(settings)
    assert (second.items_new, second.items_seen) == (1, 2)
    assert last_fetch(settings, "f")[5:7] == (1, 2)
    assert item_count(settings) == 3


# --- faults ----------------------------------------------------------------------------------

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
    httpserver.expect_request("/feed.xml").respond_with_data("slow down", status=429, headers={"Retry-After": "3600"})
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    status, code, _, _, _, _, _, _, retry_after = last_fetch(settings, "f")
    assert (status, code) == ("failed", 429)
    now = datetime.now(UTC)
    assert timedelta(minutes=55) < retry_after - now <= timedelta(hours=1)
    with open_db(settings.db_path) as con:
        assert due_feeds(con, now=now + timedelta(minutes=30), poll_minutes=15) == []
        assert [r.name for r in due_feeds(con, now=now + timedelta(minutes=61), poll_minutes=15)] == ["f"]


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
    httpserver.expect_request("/feed.xml").respond_with_data(BIG.read_bytes(), content_type="application/xml")
    register(settings, "f", httpserver.url_for("/feed.xml"))
    small = Settings(**{**settings.__dict__, "fetch_max_bytes": 50_000})
    assert ingest(small).failed == 1
    assert last_fetch(settings, "f")[2] == "body larger than 50,000 bytes"
    assert item_count(settings) == 0


def test_redirects_are_followed_and_loops_refused(settings, httpserver):
    httpserver.expect_request("/old.xml").respond_with_data("", status=301, headers={"Location": "/feed.xml"})
    httpserver.expect_request("/feed.xml").respond_with_data(FEED.read_bytes(), content_type="application/rss+xml")
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", status=302, headers={"Location": "/a"})
    register(settings, "moved", httpserver.url_for("/old.xml"))
    register(settings, "loop", httpserver.url_for("/a"))
    ingest(settings)
    assert last_fetch(settings, "moved")[0] == "ok"
    assert last_fetch(settings, "moved")[7] == httpserver.url_for("/feed.xml")
    assert last_fetch(settings, "loop")[:3] == ("failed", None, "redirect loop (more than 10 redirects)")


def test_malformed_xml_keeps_its_items_and_the_reason(settings, httpserver):
    body = rss([("a", "Fish & chips"), ("b", "fine")])
    httpserver.expect_request("/feed.xml").respond_with_data(body, content_type="application/rss+xml")
    register(settings, "f", httpserver.url_for("/feed.xml"))
    assert ingest(settings).items_new == 2
    status, _, _, bozo, reason, *_ = last_fetch(settings, "f")
    assert status == "ok" and bozo and "EntityRef" in reason


def test_a_wrong_charset_header_does_not_garble_titles(settings, httpserver):
    body = rss([("a", "Zürich — São Paulo")])
    httpserver.expect_request("/feed.xml").respond_with_data(body, content_type="text/xml; charset=iso-8859-1")
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    assert rows(settings, "SELECT title FROM items")[0][0] == "Zürich — São Paulo"


def test_gzip_bodies_are_decoded(settings, httpserver):
    body = gzip.compress(FEED.read_bytes())
    httpserver.expect_request("/feed.xml").respond_with_data(
        body, content_type="application/rss+xml", headers={"Content-Encoding": "gzip"})
    register(settings, "f", httpserver.url_for("/feed.xml"))
    assert ingest(settings).items_new == 10


@pytest.mark.parametrize("body,content_type,status,error", [
    (b"<!DOCTYPE html><html><body>Moved to our new site</body></html>", "text/html", "not_a_feed", "HTML page"),
    (b"", "application/rss+xml", "not_a_feed", "empty body"),
    (rss([]), "application/rss+xml", "ok", None),
])
def test_not_a_feed_and_empty_feeds(settings, httpserver, body, content_type, status, error):
    httpserver.expect_request("/feed.xml").respond_with_data(body, content_type=content_type)
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    got = last_fetch(settings, "f")
    assert got[0] == status and (error is None or error in got[2])
    assert item_count(settings) == 0


def test_missing_and_future_dates_are_flagged_not_invented(settings, httpserver):
    body = channel("<item><guid>a</guid><title>no date</title></item>"
                   "<item><guid>b</guid><title>later</title><pubDate>Tue, 01 Jan 2099 00:00:00 GMT</pubDate></item>"
                   "<item><guid>c</guid><title>local</title><pubDate>2016-10-07T16:32:00</pubDate></item>")
    httpserver.expect_request("/feed.xml").respond_with_data(body, content_type="application/rss+xml")
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    got = dict((g, (flags, utc)) for g, flags, utc in rows(settings, "SELECT guid, time_flags, published_utc FROM items"))
    assert got["a"] == (["missing"], None)
    assert got["b"][0] == ["future"] and got["b"][1].year == 2099
    assert got["c"][0] == ["no_zone"]


def test_every_item_keeps_a_normalised_link(settings, httpserver):
    body = channel("<item><guid>g1</guid><link>HTTPS://Example.ORG:443/story?utm_source=rss&amp;id=7#top</link></item>"
                   "<item><link>https://example.org/other?fbclid=x</link></item>")
    httpserver.expect_request("/feed.xml").respond_with_data(body, content_type="application/rss+xml")
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    got = sorted(rows(settings, "SELECT dedup_key, url_normalized FROM items"))
    assert got == [("guid:g1", "https://example.org/story?id=7"),
                   ("url:https://example.org/other", "https://example.org/other")]


def test_duplicate_guids_are_one_item(settings, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(rss([("a", "first"), ("a", "again"), ("b", "x")]))
    register(settings, "f", httpserver.url_for("/feed.xml"))
    assert ingest(settings).items_new == 2
    assert rows(settings, "SELECT title FROM items WHERE guid = 'a'") == [("first",)]


# --- bodies cut short (a raw socket server: well-behaved frameworks won't lie) ---------------

@pytest.fixture
def raw_server():
    """Serve canned raw HTTP responses, one per connection, then close."""
    responses = []
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                sock.settimeout(0.2)
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                step = responses.pop(0) if len(responses) > 1 else responses[0]
                try:
                    step(conn)
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/feed.xml", responses
    stop.set()
    t.join(2)
    sock.close()


def send(raw: bytes):
    return lambda conn: conn.sendall(raw)


def test_a_body_shorter_than_its_content_length_is_a_failed_fetch(settings, raw_server):
    url, responses = raw_server
    body = FEED.read_bytes()
    responses.append(send(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body[: len(body) // 2]))
    register(settings, "f", url)
    assert ingest(settings).failed == 1
    assert "cut short" in last_fetch(settings, "f")[2]
    assert item_count(settings) == 0


def test_a_connection_closed_mid_document_is_a_failed_fetch_and_a_rerun_repairs(settings, raw_server):
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
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nConnection: close\r\n\r\n<rss>")
        for _ in range(60):  # a byte every 0.1 s: each read is quick, the whole never ends
            conn.sendall(b" ")
            time.sleep(0.1)

    responses.append(trickle)
    register(settings, "f", url)
    started = time.monotonic()
    assert ingest(settings).failed == 1
    assert time.monotonic() - started < 4.5
    assert "deadline of 2 s exceeded" in last_fetch(settings, "f")[2]


# --- the registry and feed health ------------------------------------------------------------

def test_only_http_and_https_are_accepted(settings):
    for url in ("file:///etc/passwd", "ftp://example.com/feed.xml", "javascript:alert(1)", "example.com/feed"):
        with pytest.raises(UnsupportedURL, match="only http and https"):
            register(settings, "x", url)


def test_a_failing_feed_is_disabled_and_can_be_enabled(settings, httpserver):
    state = {"broken": True}

    def handler(request):
        return Response("no", status=500) if state["broken"] else Response(FEED.read_bytes())

    httpserver.expect_request("/feed.xml").respond_with_handler(handler)
    register(settings, "f", httpserver.url_for("/feed.xml"))
    for _ in range(3):
        ingest(settings)
    (enabled, reason), = rows(settings, "SELECT enabled, disabled_reason FROM sources WHERE name = 'f'")
    assert not enabled and reason.startswith("disabled after 3 consecutive failures; last: HTTP 500")
    assert ingest(settings).feeds == 0  # not polled while disabled
    state["broken"] = False
    with open_db(settings.db_path) as con:
        enable_feed(con, "f")
    assert ingest(settings).items_new == 10
    assert rows(settings, "SELECT consecutive_failures FROM v_feed_health")[0][0] == 0


def test_feed_lists_import_from_opml_and_yaml(settings, tmp_path):
    opml = tmp_path / "feeds.opml"
    opml.write_text("""<?xml version="1.0"?><opml version="2.0"><head/><body>
        <outline text="Politics"><outline text="Example" xmlUrl="https://example.org/rss.xml"/></outline>
        <outline text="Bad" xmlUrl="gopher://example.org/"/></body></opml>""")
    yml = tmp_path / "feeds.yaml"
    yml.write_text("feeds:\n  - {url: 'https://gov.example/press.xml', name: gov, role: announcement, tags: [gov]}\n")
    with open_db(settings.db_path) as con:
        assert import_feeds(con, opml)[:2] == (1, 0)
        added, existing, problems = import_feeds(con, opml)
        assert (added, existing) == (0, 1) and "Bad" in problems[0]
        assert import_feeds(con, yml)[:2] == (1, 0)
        got = con.execute("SELECT name, role, tags FROM sources ORDER BY name").fetchall()
    assert got == [("Example", "news", ["Politics"]), ("gov", "announcement", ["gov"])]


@pytest.fixture
def threaded_httpserver():
    from pytest_httpserver import HTTPServer

    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def test_at_most_k_requests_in_flight_per_host(settings, threaded_httpserver):
    httpserver = threaded_httpserver
    in_flight, peak, lock = [0], [0], threading.Lock()

    def handler(request):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.25)
        with lock:
            in_flight[0] -= 1
        return Response(rss([(request.path, "x")]))

    for i in range(8):
        httpserver.expect_request(f"/f{i}.xml").respond_with_handler(handler)
        register(settings, f"f{i}", httpserver.url_for(f"/f{i}.xml"))
    ingest(settings)
    assert peak[0] == 2  # settings.fetch_per_host, although 8 workers were free
    peak[0] = 0
    ingest(Settings(**{**settings.__dict__, "fetch_per_host": 4}))
    assert peak[0] > 2


def test_sharding_keeps_each_host_in_one_shard():
    from pipeline.fetch import FeedRequest

    reqs = [FeedRequest(i, f"f{i}", f"https://host{i % 3}.example/{i}.xml") for i in range(12)]
    shards = shard_by_host(reqs, 2)
    hosts = [{r.url.split("/")[2] for r in s} for s in shards]
    assert sum(len(s) for s in shards) == 12 and not (hosts[0] & hosts[1])


def test_coverage_shows_gaps_in_collection(settings, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(FEED.read_bytes())
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    now = datetime.now(UTC)
    got = rows(settings, "SELECT hour_utc, polls_ok, gap FROM feed_coverage(?, ?)",
               [now - timedelta(hours=3), now])
    assert [g[2] for g in got] == [True, True, True, False]
    assert got[-1][1] == 1


# --- one writer: a locked database loses nothing ---------------------------------------------

def hold_write_lock(db, seconds):
    """Another process holding the database for writing (an analyst's writable session)."""
    code = textwrap.dedent(f"""
        import duckdb, time
        con = duckdb.connect({str(db)!r})
        print("locked", flush=True)
        time.sleep({seconds})
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_held_database_does_not_stop_a_poll_and_the_next_run_merges_it(settings, httpserver):
    bodies = {"v": rss([("a", "one"), ("b", "two")])}
    httpserver.expect_request("/feed.xml").respond_with_handler(
        lambda req: Response(bodies["v"], content_type="application/rss+xml"))
    register(settings, "f", httpserver.url_for("/feed.xml"))
    assert ingest(settings).items_new == 2  # the plan is saved after this merge
    bodies["v"] = rss([("a", "one"), ("b", "two"), ("c", "three")])
    impatient = Settings(**{**settings.__dict__, "lock_wait_s": 0.5})
    holder = hold_write_lock(settings.db_path, 6)
    try:
        held = ingest(impatient)  # plans from the saved plan, fetches, stages; cannot merge
        assert held.ok == 1 and held.staged_only is not None and "saved at" in held.note
        staged = [d for d in held.staged_only.iterdir() if (d / "_SUCCESS").exists()]
        assert len(staged) == 1
        # Polling again while still held: the staged fetch counts, so the feed is not due yet.
        again = run_ingest(impatient, show_progress=False)
        assert again.feeds == 0 and again.staged_only is not None
    finally:
        holder.wait()
    after = ingest(settings, force=False)  # the lock is free: the staged batch is merged
    assert item_count(settings) == 3 and after.feeds == 0
    assert rows(settings, "SELECT count(*) FROM fetches")[0][0] == 2


def test_with_no_saved_plan_a_held_database_is_one_clear_error(settings, httpserver):
    register(settings, "f", httpserver.url_for("/feed.xml"))
    impatient = Settings(**{**settings.__dict__, "lock_wait_s": 0.5})
    holder = hold_write_lock(settings.db_path, 3)
    try:
        from pipeline.database import DatabaseLocked

        with pytest.raises(DatabaseLocked, match="no saved plan"):
            ingest(impatient)
    finally:
        holder.wait()


def test_the_polling_rules_in_one_place():
    from pipeline.poll_plan import FeedState, apply_fetches, due

    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    states = [FeedState(1, "fresh", "http://a/1", "news", True),
              FeedState(2, "recent", "http://a/2", "news", True, last_attempt_utc=now - timedelta(minutes=5)),
              FeedState(3, "failing", "http://a/3", "news", True, last_attempt_utc=now - timedelta(minutes=40),
                        consecutive_failures=2),  # backs off: 15 min x 4
              FeedState(4, "throttled", "http://a/4", "news", True, last_attempt_utc=now - timedelta(hours=2),
                        retry_after_utc=now + timedelta(minutes=1)),
              FeedState(5, "off", "http://a/5", "news", False),
              FeedState(6, "leaks", "http://b/6", "release", True)]
    assert [r.name for r in due(states, now=now, poll_minutes=15)] == ["fresh", "leaks"]
    assert [r.name for r in due(states, now=now, poll_minutes=15, roles=["news"], force=True)] == \
        ["fresh", "recent", "failing", "throttled"]
    later = apply_fetches(states, [{"source_id": 3, "started_utc": now, "status": "ok", "etag": '"e"'},
                                   {"source_id": 1, "started_utc": now, "status": "failed"}])
    assert (later[2].consecutive_failures, later[2].etag) == (0, '"e"')
    assert later[0].consecutive_failures == 1 and later[0].last_attempt_utc == now


def test_a_batch_loaded_twice_adds_nothing(settings, httpserver, tmp_path):
    import shutil

    httpserver.expect_request("/feed.xml").respond_with_data(FEED.read_bytes())
    register(settings, "f", httpserver.url_for("/feed.xml"))
    from pipeline.fetch import Limits
    from pipeline.ingest import make_batch, poll, stage

    with open_db(settings.db_path) as con:
        reqs = due_feeds(con, now=datetime.now(UTC), poll_minutes=15, force=True)
    staged = stage(make_batch(poll(reqs, limits=Limits(allow_networks=parse_networks(LOOPBACK)), workers=2, per_host=1))[0], settings.data_dir / "staging")
    copy = tmp_path / "copy" / staged.name
    shutil.copytree(staged, copy)
    with open_db(settings.db_path) as con:
        load_all_staged(con, settings.data_dir / "staging", max_failures=3)
        shutil.copytree(copy, staged)  # as if the process died between commit and cleanup
        again = load_all_staged(con, settings.data_dir / "staging", max_failures=3)
        assert again[0].already_loaded
        assert query_one(con, "SELECT count(*) FROM items")[0] == 10
        assert query_one(con, "SELECT count(*) FROM fetches")[0] == 1
    assert not staged.exists()


def test_ingest_while_the_lock_is_briefly_held_waits_and_succeeds(settings, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(FEED.read_bytes())
    register(settings, "f", httpserver.url_for("/feed.xml"))
    code = textwrap.dedent(f"""
        import duckdb, time
        con = duckdb.connect({str(settings.db_path)!r}, read_only=True)
        print("reading", flush=True)
        time.sleep(1.5)
    """)
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "reading"
    try:
        assert ingest(settings).items_new == 10  # waited for the analyst, lost nothing
    finally:
        reader.wait()


def test_each_loader_merges_only_its_own_lane(settings, httpserver, monkeypatch):
    """The release DAG's load must not swallow the news DAG's batch: the news DAG announces
    new items only for what it loaded itself. `ingest load` merges every lane."""
    from pipeline import jobs
    from pipeline.cli import main

    httpserver.expect_request("/news.xml").respond_with_data(FEED.read_bytes())
    httpserver.expect_request("/leaks.xml").respond_with_data(BIG.read_bytes())
    register(settings, "news", httpserver.url_for("/news.xml"), "news")
    register(settings, "leaks", httpserver.url_for("/leaks.xml"), "release")
    monkeypatch.setenv("MEDIA_TIMING_DB", str(settings.db_path))
    monkeypatch.setenv("MEDIA_TIMING_DATA_DIR", str(settings.data_dir))

    for roles, lane in ((jobs.NEWS_ROLES, "news"), (jobs.RELEASE_ROLES, "release")):
        for shard in jobs.plan_feed_shards(roles=roles):
            jobs.fetch_shard(shard, lane=lane)
    release = jobs.load_staged(lane="release")
    assert (release["batches"], release["items_new"]) == (1, 141)
    with open_db(settings.db_path) as con:
        assert query_one(con, "SELECT count(*) FROM v_items WHERE source = 'news'")[0] == 0
    news = jobs.load_staged(lane="news")
    assert (news["batches"], news["items_new"]) == (1, 10)

    for shard in jobs.plan_feed_shards(roles=jobs.NEWS_ROLES, force=True):
        jobs.fetch_shard(shard, lane="news")
    assert main(["ingest", "load"]) == 0
    assert jobs.load_staged(lane="news")["batches"] == 0
    with open_db(settings.db_path) as con:
        assert query_one(con, "SELECT count(*) FROM fetches")[0] == 3
        assert query_one(con, "SELECT count(*) FROM items")[0] == 151
    with pytest.raises(ValueError, match="plain name"):
        jobs.load_staged(lane="../elsewhere")


# --- parsing in parser processes ---------------------------------------------------------------

def _many_feeds(settings, httpserver, n=20):
    """n feeds cycled from the fixture files, plus one whose items have neither guid nor link."""
    files = sorted((FIXTURES / "feeds").glob("*.xml"))
    for i in range(n):
        httpserver.expect_request(f"/f{i}.xml").respond_with_data(files[i % len(files)].read_bytes(),
                                                                  content_type="application/xml")
        register(settings, f"f{i}", httpserver.url_for(f"/f{i}.xml"))
    bare = channel("<item><title>same</title><pubDate>Fri, 07 Oct 2016 20:32:00 +0000</pubDate></item>"
                   "<item><title>same</title><pubDate>Fri, 07 Oct 2016 20:32:00 +0000</pubDate></item>"
                   "<item><title>other</title><pubDate>Fri, 07 Oct 2016 20:33:00 +0000</pubDate></item>")
    httpserver.expect_request("/bare.xml").respond_with_data(bare, content_type="application/xml")
    register(settings, "bare", httpserver.url_for("/bare.xml"))


def _stored(settings):
    return sorted(rows(settings, """SELECT s.name, i.dedup_key, i.title, i.url, i.published_raw,
                                           i.published_utc, i.time_flags, i.summary
                                    FROM items i JOIN sources s USING (source_id)"""))


def _spy_on_parsers(monkeypatch, tmp_path, die_as=None):
    """Each parser process leaves a file named for its pid; ``die_as`` parser exits at once."""
    import os

    from pipeline import ingest as ingest_module

    real = ingest_module._parse_worker
    marks = tmp_path / "parsers"
    marks.mkdir()

    def spy(tasks, results, items_path, i, parent):
        (marks / str(os.getpid())).touch()
        if i == die_as:
            os._exit(3)  # as the OOM killer would end it: no report, no cleanup
        real(tasks, results, items_path, i, parent)

    monkeypatch.setattr(ingest_module, "_parse_worker", spy)
    return marks


def test_parser_processes_store_exactly_what_one_process_stores(settings, httpserver, tmp_path, monkeypatch):
    import os

    _many_feeds(settings, httpserver)
    marks = _spy_on_parsers(monkeypatch, tmp_path)
    parallel = Settings(**{**settings.__dict__, "fetch_processes": 2})
    first = ingest(parallel)
    assert first.ok == 21 and first.failed == 0
    assert {int(p.name) for p in marks.iterdir()} - {os.getpid()}  # parsed in other processes
    serial = Settings(**{**settings.__dict__, "db_path": tmp_path / "serial.duckdb", "fetch_processes": 1})
    register(serial, "placeholder", "http://127.0.0.1:9/never.xml")  # same schema, own file
    with open_db(serial.db_path) as con:
        con.execute("DELETE FROM sources")
    _many_feeds(serial, httpserver)
    assert ingest(serial).items_new == first.items_new
    assert _stored(parallel) == _stored(serial)
    # Items without guid or link are told apart by a hash of title, date and summary.
    assert sorted(r[2] for r in _stored(parallel) if r[0] == "bare") == ["other", "same"]
    again = ingest(parallel)  # same bodies: caught by their hash, not parsed again
    assert (again.not_modified, again.items_new) == (21, 0)
    assert rows(parallel, "SELECT count(*) FROM items")[0][0] == first.items_new


def test_a_poll_of_unchanged_feeds_starts_no_parser(settings, httpserver, tmp_path, monkeypatch):
    body = FEED.read_bytes()

    def conditional(request):
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(body, content_type="application/rss+xml", headers={"ETag": '"v1"'})

    for i in range(20):
        httpserver.expect_request(f"/f{i}.xml").respond_with_handler(conditional)
        register(settings, f"f{i}", httpserver.url_for(f"/f{i}.xml"))
    marks = _spy_on_parsers(monkeypatch, tmp_path)
    parallel = Settings(**{**settings.__dict__, "fetch_processes": 2})
    assert ingest(parallel).items_new == 200
    started = len(list(marks.iterdir()))
    assert started == 2
    assert ingest(parallel).not_modified == 20
    assert len(list(marks.iterdir())) == started


def test_a_parser_process_that_dies_loses_nothing(settings, httpserver, tmp_path, monkeypatch):
    _many_feeds(settings, httpserver)
    _spy_on_parsers(monkeypatch, tmp_path, die_as=0)
    parallel = Settings(**{**settings.__dict__, "fetch_processes": 2})
    summary = ingest(parallel)
    assert summary.ok == 21 and summary.failed == 0  # the dead parser's share was parsed here
    (fetches,) = rows(settings, "SELECT count(*) FROM fetches")[0]
    assert fetches == 21
    (items, distinct) = rows(settings, "SELECT count(*), count(DISTINCT (source_id, dedup_key)) FROM items")[0]
    assert items == distinct == summary.items_new


def test_a_redirect_to_another_scheme_is_refused(settings, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data("", status=302, headers={"Location": "file:///etc/passwd"})
    register(settings, "f", httpserver.url_for("/feed.xml"))
    assert ingest(settings).failed == 1
    status, _, error, *_ = last_fetch(settings, "f")
    assert status == "failed" and "only http and https" in error


def test_a_consumer_that_stops_early_is_not_held_by_slow_transfers(httpserver):
    from pipeline.fetch import FeedRequest, Limits, fetch_all

    httpserver.expect_request("/fast.xml").respond_with_data(FEED.read_bytes())

    def slow(request):
        time.sleep(3)
        return Response(FEED.read_bytes())

    httpserver.expect_request("/slow.xml").respond_with_handler(slow)
    reqs = [FeedRequest(1, "fast", httpserver.url_for("/fast.xml")),
            FeedRequest(2, "slow", httpserver.url_for("/slow.xml"))]
    started = time.monotonic()
    outcomes = fetch_all(reqs, Limits(read_timeout_s=10, deadline_s=10, allow_networks=parse_networks(LOOPBACK)), workers=2, per_host=2)
    first = next(outcomes)
    outcomes.close()
    assert first.request.name == "fast" and first.status == "fetched"
    assert time.monotonic() - started < 2


def test_an_abandoned_batch_directory_is_cleared_and_a_fresh_one_kept(settings, tmp_path):
    import os

    lane = settings.data_dir / "staging" / "cli"
    old, fresh = lane / "old", lane / "fresh"
    for d in (old, fresh):
        d.mkdir(parents=True)
        (d / "items-0.parquet").write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    with open_db(settings.db_path) as con:
        assert load_all_staged(con, lane, max_failures=3) == []
    assert not old.exists() and fresh.exists()  # fresh: perhaps a poll still writing it


@pytest.fixture
def tls_server(tmp_path):
    """A loopback HTTPS server with a self-signed certificate; yields the server and the
    certificate's path (to trust it, or not)."""
    import datetime as dt
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from pytest_httpserver import HTTPServer

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = HTTPServer(host="localhost", ssl_context=context)
    server.start()
    yield server, cert_path
    server.clear()
    server.stop()


def test_https_feeds_are_verified_against_the_ca_bundle(settings, tls_server, monkeypatch):
    server, cert = tls_server
    server.expect_request("/feed.xml").respond_with_data(FEED.read_bytes(), content_type="application/rss+xml")
    register(settings, "f", server.url_for("/feed.xml"))
    assert server.url_for("/feed.xml").startswith("https://")
    assert ingest(settings).failed == 1  # self-signed: not in the CA bundle
    assert last_fetch(settings, "f")[2].startswith("TLS failed")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now trusted
    assert ingest(settings).items_new == 10


# --- a poll killed or stopped: no process left behind ------------------------------------------

def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    return {int(p) for p, pp in (line.split() for line in out.splitlines()) if int(pp) == pid}


def _alive(pids) -> set[int]:
    left = set()
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                if f.read().split(") ")[-1][0] != "Z":
                    left.add(p)
        except OSError:
            pass
    return left


@pytest.fixture
def slow_feeds(settings, threaded_httpserver):
    """20 feeds: the first answers at once (so parsers are forked), the rest only after 4 s."""
    body = FEED.read_bytes()

    def handler(request):
        if not request.path.endswith("/0.xml"):
            time.sleep(4)
        return Response(body, content_type="application/rss+xml")

    threaded_httpserver.expect_request(re.compile(r"/\d+\.xml")).respond_with_handler(handler)
    for i in range(20):
        register(settings, f"f{i}", threaded_httpserver.url_for(f"/{i}.xml"))
    return settings


def _start_poll(settings):
    env = {**os.environ, "MEDIA_TIMING_DB": str(settings.db_path), "MEDIA_TIMING_DATA_DIR": str(settings.data_dir),
           "MEDIA_TIMING_FETCH_PROCESSES": "2", "MEDIA_TIMING_FETCH_PER_HOST": "20", "MEDIA_TIMING_FETCH_DEADLINE_S": "30"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "ingest", "feeds", "--force", "--no-progress"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    parsers = _children(proc.pid)
    assert len(parsers) >= 2, proc.communicate(timeout=30)
    return proc, parsers


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_or_stopped_poll_leaves_no_parser_behind(slow_feeds, sig):
    proc, parsers = _start_poll(slow_feeds)
    os.kill(proc.pid, sig)
    proc.wait(timeout=15)
    deadline = time.monotonic() + 5
    while _alive(parsers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(parsers), "parser processes outlived the poll"
    if sig == signal.SIGTERM:  # an orderly stop: its half-written batch is gone, nothing recorded
        assert proc.returncode == 128 + signal.SIGTERM
        lane = slow_feeds.data_dir / "staging" / "cli"
        assert not lane.exists() or not any(lane.iterdir())
    assert rows(slow_feeds, "SELECT count(*) FROM fetches")[0][0] == 0  # nothing of it was recorded
    assert ingest(slow_feeds).feeds == 20  # so the next poll polls every feed again
    assert rows(slow_feeds, "SELECT count(*) FROM fetches")[0][0] == 20


# --- server-side request forgery: feeds may not reach what is behind the poller ---------------

@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/x.xml",  # loopback
    "http://localhost:{port}/x.xml",  # a name that resolves to loopback (checked where we connect)
    "http://2130706433:{port}/x.xml",  # 127.0.0.1 as one integer
    "http://0x7f.1:{port}/x.xml",  # ... in hex
    "http://[::1]:{port}/x.xml",  # IPv6 loopback
    "http://[::ffff:127.0.0.1]:{port}/x.xml",  # IPv4-mapped IPv6
    "http://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata services
    "http://10.1.2.3/x.xml", "http://192.168.1.1/x.xml",  # private
    "http://224.0.0.1/x.xml",  # multicast
])
def test_loopback_private_link_local_and_multicast_addresses_are_refused(tmp_path, httpserver, url):
    strict = Settings(db_path=tmp_path / "s.duckdb", data_dir=tmp_path / "data", lock_wait_s=5,
                      fetch_connect_timeout_s=2, fetch_deadline_s=3, fetch_allow_networks="")
    httpserver.expect_request("/x.xml").respond_with_data(FEED.read_bytes())
    register(strict, "f", url.format(port=httpserver.port))
    summary = ingest(strict)
    assert summary.failed == 1 and not httpserver.log  # never reached
    status, *_, error = rows(strict, "SELECT status, error FROM fetches")[0]
    assert status == "failed" and "refused" in error and "MEDIA_TIMING_FETCH_ALLOW_NETWORKS" in error


def test_a_redirect_to_a_forbidden_address_is_refused(tmp_path, httpserver):
    """Only 127.0.0.1 is allowed; the allowed server redirects to another loopback address."""
    httpserver.expect_request("/moved.xml").respond_with_data("", status=302,
                                                             headers={"Location": f"http://127.0.0.2:{httpserver.port}/x.xml"})
    strict = Settings(db_path=tmp_path / "s.duckdb", data_dir=tmp_path / "data", lock_wait_s=5,
                      fetch_allow_networks="127.0.0.1/32")
    register(strict, "f", httpserver.url_for("/moved.xml").replace("localhost", "127.0.0.1"))
    assert ingest(strict).failed == 1
    error = rows(strict, "SELECT error FROM fetches")[0][0]
    assert "127.0.0.2 is a loopback address" in error


def test_allowed_networks_are_reached(tmp_path, httpserver):
    httpserver.expect_request("/x.xml").respond_with_data(FEED.read_bytes())
    allowed = Settings(db_path=tmp_path / "s.duckdb", data_dir=tmp_path / "data", lock_wait_s=5,
                       fetch_allow_networks="127.0.0.0/8")
    register(allowed, "f", httpserver.url_for("/x.xml").replace("localhost", "127.0.0.1"))
    assert ingest(allowed).ok == 1


def test_user_names_and_passwords_in_feed_urls_are_refused(settings):
    with open_db(settings.db_path) as con, pytest.raises(UnsupportedURL, match="user name or password"):
        add_feed(con, FeedSpec("http://user:secret@example.org/feed.xml", "x", "news"))


def test_text_from_the_network_reaches_no_terminal_with_control_characters(settings, raw_server):
    url, responses = raw_server
    responses.append(send(b"HTTP/1.1 500 Bad\x1b[31m red\x07 thing\r\nContent-Length: 0\r\n\r\n"))
    register(settings, "f", url)
    summary = ingest(settings)
    assert summary.failed == 1
    assert "\x1b" not in summary.failures[0] and "\x07" not in summary.failures[0]
    assert "Bad[31m red thing" in summary.failures[0]
