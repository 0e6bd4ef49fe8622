"""Feed ingestion against real loopback servers: the ordinary life of a feed, the registry, politeness,
parser processes. Faults are in tests/faults/."""

import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug import Response

from pipeline.config import Settings
from pipeline.sources.addresses import parse_networks
from pipeline.sources.feeds import enable_feed, import_feeds
from pipeline.sources.ingest import shard_by_host
from pipeline.store.database import open_db, query_one
from tests.conftest import LOOPBACK
from tests.feed_support import (
    BIG,
    FEED,
    channel,
    ingest,
    item_count,
    last_fetch,
    many_feeds,
    register,
    rows,
    rss,
    spy_on_parsers,
)


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
    flags = rows(
        settings, "SELECT published_raw, published_utc FROM items ORDER BY item_id LIMIT 1"
    )[0]
    assert flags[0] and flags[1].tzinfo is not None


def test_a_server_ignoring_conditionals_is_caught_by_the_body_hash(settings, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        FEED.read_bytes(), content_type="application/rss+xml"
    )
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
        return Response(
            bodies[min(len(served) - 1, 1)],
            content_type="application/rss+xml",
            headers={"ETag": '"same"'},
        )

    httpserver.expect_request("/feed.xml").respond_with_handler(handler)
    register(settings, "f", httpserver.url_for("/feed.xml"))
    assert ingest(settings).items_new == 2
    second = ingest(settings)
    assert (second.items_new, second.items_seen) == (1, 2)
    assert last_fetch(settings, "f")[5:7] == (1, 2)
    assert item_count(settings) == 3


def test_missing_and_future_dates_are_flagged_not_invented(settings, httpserver):
    body = channel(
        "<item><guid>a</guid><title>no date</title></item>"
        "<item><guid>b</guid><title>later</title><pubDate>Tue, 01 Jan 2099 00:00:00 GMT</pubDate></item>"
        "<item><guid>c</guid><title>local</title><pubDate>2016-10-07T16:32:00</pubDate></item>"
    )
    httpserver.expect_request("/feed.xml").respond_with_data(
        body, content_type="application/rss+xml"
    )
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    got = dict(
        (g, (flags, utc))
        for g, flags, utc in rows(settings, "SELECT guid, time_flags, published_utc FROM items")
    )
    assert got["a"] == (["missing"], None)
    assert got["b"][0] == ["future"] and got["b"][1].year == 2099
    assert got["c"][0] == ["no_zone"]


def test_every_item_keeps_a_normalised_link(settings, httpserver):
    body = channel(
        "<item><guid>g1</guid><link>HTTPS://Example.ORG:443/story?utm_source=rss&amp;id=7#top</link></item>"
        "<item><link>https://example.org/other?fbclid=x</link></item>"
    )
    httpserver.expect_request("/feed.xml").respond_with_data(
        body, content_type="application/rss+xml"
    )
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    got = sorted(rows(settings, "SELECT dedup_key, url_normalized FROM items"))
    assert got == [
        ("guid:g1", "https://example.org/story?id=7"),
        ("url:https://example.org/other", "https://example.org/other"),
    ]


def test_duplicate_guids_are_one_item(settings, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss([("a", "first"), ("a", "again"), ("b", "x")])
    )
    register(settings, "f", httpserver.url_for("/feed.xml"))
    assert ingest(settings).items_new == 2
    assert rows(settings, "SELECT title FROM items WHERE guid = 'a'") == [("first",)]


def test_a_failing_feed_is_disabled_and_can_be_enabled(settings, httpserver):
    state = {"broken": True}

    def handler(request):
        return Response("no", status=500) if state["broken"] else Response(FEED.read_bytes())

    httpserver.expect_request("/feed.xml").respond_with_handler(handler)
    register(settings, "f", httpserver.url_for("/feed.xml"))
    for _ in range(3):
        ingest(settings)
    ((enabled, reason),) = rows(
        settings, "SELECT enabled, disabled_reason FROM sources WHERE name = 'f'"
    )
    assert not enabled and reason.startswith(
        "disabled after 3 consecutive failures; last: HTTP 500"
    )
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
    yml.write_text(
        "feeds:\n  - {url: 'https://gov.example/press.xml', name: gov, role: announcement, tags: [gov]}\n"
    )
    with open_db(settings.db_path) as con:
        assert import_feeds(con, opml)[:2] == (1, 0)
        added, existing, problems = import_feeds(con, opml)
        assert (added, existing) == (0, 1) and "Bad" in problems[0]
        assert import_feeds(con, yml)[:2] == (1, 0)
        got = con.execute("SELECT name, role, tags FROM sources ORDER BY name").fetchall()
    assert got == [("Example", "news", ["Politics"]), ("gov", "announcement", ["gov"])]


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
    from pipeline.sources.fetch import FeedRequest

    reqs = [FeedRequest(i, f"f{i}", f"https://host{i % 3}.example/{i}.xml") for i in range(12)]
    shards = shard_by_host(reqs, 2)
    hosts = [{r.url.split("/")[2] for r in s} for s in shards]
    assert sum(len(s) for s in shards) == 12 and not (hosts[0] & hosts[1])


def test_coverage_shows_gaps_in_collection(settings, httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(FEED.read_bytes())
    register(settings, "f", httpserver.url_for("/feed.xml"))
    ingest(settings)
    now = datetime.now(UTC)
    got = rows(
        settings,
        "SELECT hour_utc, polls_ok, gap FROM feed_coverage(?, ?)",
        [now - timedelta(hours=3), now],
    )
    assert [g[2] for g in got] == [True, True, True, False]
    assert got[-1][1] == 1


def test_the_polling_rules_in_one_place():
    from pipeline.sources.poll_plan import FeedState, apply_fetches, due

    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    states = [
        FeedState(1, "fresh", "http://a/1", "news", True),
        FeedState(
            2, "recent", "http://a/2", "news", True, last_attempt_utc=now - timedelta(minutes=5)
        ),
        FeedState(
            3,
            "failing",
            "http://a/3",
            "news",
            True,
            last_attempt_utc=now - timedelta(minutes=40),
            consecutive_failures=2,
        ),  # backs off: 15 min x 4
        FeedState(
            4,
            "throttled",
            "http://a/4",
            "news",
            True,
            last_attempt_utc=now - timedelta(hours=2),
            retry_after_utc=now + timedelta(minutes=1),
        ),
        FeedState(5, "off", "http://a/5", "news", False),
        FeedState(6, "leaks", "http://b/6", "release", True),
    ]
    assert [r.name for r in due(states, now=now, poll_minutes=15)] == ["fresh", "leaks"]
    assert [r.name for r in due(states, now=now, poll_minutes=15, roles=["news"], force=True)] == [
        "fresh",
        "recent",
        "failing",
        "throttled",
    ]
    later = apply_fetches(
        states,
        [
            {"source_id": 3, "started_utc": now, "status": "ok", "etag": '"e"'},
            {"source_id": 1, "started_utc": now, "status": "failed"},
        ],
    )
    assert (later[2].consecutive_failures, later[2].etag) == (0, '"e"')
    assert later[0].consecutive_failures == 1 and later[0].last_attempt_utc == now


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


def _stored(settings):
    return sorted(
        rows(
            settings,
            """SELECT s.name, i.dedup_key, i.title, i.url, i.published_raw,
                                           i.published_utc, i.time_flags, i.summary
                                    FROM items i JOIN sources s USING (source_id)""",
        )
    )


def test_parser_processes_store_exactly_what_one_process_stores(
    settings, httpserver, tmp_path, monkeypatch
):

    many_feeds(settings, httpserver)
    marks = spy_on_parsers(monkeypatch, tmp_path)
    parallel = Settings(**{**settings.__dict__, "fetch_processes": 2})
    first = ingest(parallel)
    assert first.ok == 21 and first.failed == 0
    assert {int(p.name) for p in marks.iterdir()} - {os.getpid()}  # parsed in other processes
    serial = Settings(
        **{**settings.__dict__, "db_path": tmp_path / "serial.duckdb", "fetch_processes": 1}
    )
    register(serial, "placeholder", "http://127.0.0.1:9/never.xml")  # same schema, own file
    with open_db(serial.db_path) as con:
        con.execute("DELETE FROM sources")
    many_feeds(serial, httpserver)
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
    marks = spy_on_parsers(monkeypatch, tmp_path)
    parallel = Settings(**{**settings.__dict__, "fetch_processes": 2})
    assert ingest(parallel).items_new == 200
    started = len(list(marks.iterdir()))
    assert started == 2
    assert ingest(parallel).not_modified == 20
    assert len(list(marks.iterdir())) == started


def test_a_consumer_that_stops_early_is_not_held_by_slow_transfers(threaded_httpserver):
    httpserver = threaded_httpserver  # a slow handler must not hold the shared server for the next test
    from pipeline.sources.fetch import FeedRequest, Limits, fetch_all

    httpserver.expect_request("/fast.xml").respond_with_data(FEED.read_bytes())

    def slow(request):
        time.sleep(3)
        return Response(FEED.read_bytes())

    httpserver.expect_request("/slow.xml").respond_with_handler(slow)
    reqs = [
        FeedRequest(1, "fast", httpserver.url_for("/fast.xml")),
        FeedRequest(2, "slow", httpserver.url_for("/slow.xml")),
    ]
    started = time.monotonic()
    outcomes = fetch_all(
        reqs,
        Limits(read_timeout_s=10, deadline_s=10, allow_networks=parse_networks(LOOPBACK)),
        workers=2,
        per_host=2,
    )
    first = next(outcomes)
    outcomes.close()
    assert first.request.name == "fast" and first.status == "fetched"
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("body, status", [
    (None, "ok"),                                # the fixture feed
    (b"<html><body>hello</body></html>", "not_a_feed"),
    (b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title><item><title>a", "failed"),
])
def test_parsing_returns_a_new_outcome_and_leaves_the_fetch_record_alone(body, status):
    from pipeline.sources.batches import parse_outcome
    from pipeline.sources.fetch import FeedRequest, FetchOutcome
    from tests.conftest import FIXTURES

    raw = body if body is not None else (FIXTURES / "feeds" / "4179e7a13df0f120.xml").read_bytes()
    out = FetchOutcome(FeedRequest(1, "f", "http://example.org/f.xml"), "k", datetime.now(UTC), "fetched",
                       http_status=200, body=raw, bytes=len(raw))
    polled = parse_outcome(out)
    assert polled.outcome.status == status
    assert polled.outcome.body is None
    assert (out.status, out.body, out.error) == ("fetched", raw, None)
    assert (polled.feed is not None) == (status == "ok")
