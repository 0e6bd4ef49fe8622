"""One poll, two attempts: the orphaned first attempt of a worker whose process group died or
whose machine was cut off (it still stages its batch) and the retry Airflow starts after the
heartbeat timeout. Whatever the order, each item is stored and sighted once and each feed has
one fetch row per poll, except that a fetch the kept batch failed on is polled again by the
retry (once per poll, as the poll's repair batch), so that feed has its failure and the repair.
A retry that finds its predecessor's batch staged with nothing failed reuses it."""

from __future__ import annotations

from pipeline import jobs
from pipeline.sources import batches, ingest
from pipeline.sources.fetch import FeedRequest
from pipeline.store.database import open_db, query_one
from tests.feed_support import BIG, FEED, register

POLL = "ingest_feeds/scheduled__2026-12-02T12:00:00+00:00/0"


def _env(settings, monkeypatch, httpserver):
    httpserver.expect_request("/news.xml").respond_with_data(FEED.read_bytes())
    register(settings, "news", httpserver.url_for("/news.xml"), "news")
    monkeypatch.setenv("MEDIA_TIMING_DB", str(settings.db_path))
    monkeypatch.setenv("MEDIA_TIMING_DATA_DIR", str(settings.data_dir))
    (shard,) = jobs.plan_feed_shards(roles=jobs.NEWS_ROLES, force=True)
    return shard


def _counts(settings):
    with open_db(settings.db_path) as con:
        return (query_one(con, "SELECT count(*) FROM fetches")[0], query_one(con, "SELECT count(*) FROM items")[0],
                query_one(con, "SELECT count(*) FROM item_sightings")[0])


def _orphan_stages(settings, shard):
    """What the orphaned attempt does once its fetch returns: stage its own batch of the poll."""
    s = settings
    batch, _ = batches.make_batch(ingest.poll([FeedRequest(**r) for r in shard], limits=ingest.fetch_limits(s),
                                              workers=s.fetch_workers, per_host=s.fetch_per_host),
                                  batch_id=batches.poll_batch_id(POLL))
    return batches.stage(batch, batches.staging_lane(s.data_dir, "news"))


def test_an_orphan_staging_after_the_retry_was_merged_adds_nothing(settings, monkeypatch, httpserver):
    shard = _env(settings, monkeypatch, httpserver)
    retry = jobs.fetch_shard(shard, lane="news", poll_id=POLL)
    assert not retry.get("reused")
    assert jobs.load_staged(lane="news")["items_new"] == 10
    once = _counts(settings)
    assert once == (1, 10, 10)
    _orphan_stages(settings, shard)  # late: the retry's batch is already merged
    late = jobs.load_staged(lane="news")
    assert late["batches"] == 1 and late["fetches"] == 0 and late["items_new"] == 0
    assert _counts(settings) == once
    assert not batches.staged_dirs(batches.staging_lane(settings.data_dir, "news"))  # and its files are gone


def test_a_retry_reuses_its_predecessors_batch_instead_of_polling_again(settings, monkeypatch, httpserver):
    shard = _env(settings, monkeypatch, httpserver)
    _orphan_stages(settings, shard)  # the first attempt staged, then its worker died
    polled = len(httpserver.log)
    retry = jobs.fetch_shard(shard, lane="news", poll_id=POLL)
    assert retry["reused"] and retry["feeds"] == 1 and retry["ok"] == 1
    assert len(httpserver.log) == polled  # no second request to the feed
    jobs.load_staged(lane="news")
    assert _counts(settings) == (1, 10, 10)


def test_two_attempts_staging_at_once_leave_one_batch(settings, monkeypatch, httpserver):
    shard = _env(settings, monkeypatch, httpserver)
    lane = batches.staging_lane(settings.data_dir, "news")
    first = _orphan_stages(settings, shard)
    mark = (first / "fetches.parquet").read_bytes()
    second = _orphan_stages(settings, shard)  # the other attempt finishes a moment later
    assert first == second and (first / "fetches.parquet").read_bytes() == mark  # the first stays
    assert [d.name for d in lane.iterdir()] == [first.name]  # no hidden half-written folder left
    jobs.load_staged(lane="news")
    assert _counts(settings) == (1, 10, 10)


def test_different_polls_keep_different_batches(settings, monkeypatch, httpserver):
    shard = _env(settings, monkeypatch, httpserver)
    jobs.fetch_shard(shard, lane="news", poll_id=POLL)
    jobs.fetch_shard(shard, lane="news", poll_id=POLL.replace("12:00", "12:15"))
    assert jobs.load_staged(lane="news")["batches"] == 2
    assert _counts(settings)[0] == 2  # two polls, two fetch rows


def test_a_batch_its_parsers_began_is_completed_in_place(settings, monkeypatch, httpserver):
    """`ingest feeds` forks parsers that write items-<n>.parquet into the batch folder first; the
    main process then stages the rest (fetch rows, the share of a parser that died) into that
    same folder, never dropping it as if another attempt had staged it."""
    shard = _env(settings, monkeypatch, httpserver)
    lane = batches.staging_lane(settings.data_dir, "news")
    batch, _ = batches.make_batch(ingest.poll([FeedRequest(**r) for r in shard], limits=ingest.fetch_limits(settings),
                                              workers=settings.fetch_workers, per_host=settings.fetch_per_host))
    target = lane / batch.batch_id
    target.mkdir(parents=True)
    batches.write_parquet(batch.items.iloc[:0], target / "items-0.parquet")  # a parser's (empty) share
    assert batches.stage(batch, lane, items=True) == target
    assert sorted(p.name for p in target.iterdir()) == ["_SUCCESS", "fetches.parquet", "items-0.parquet", "items.parquet"]
    jobs.load_staged(lane="news")
    assert _counts(settings) == (1, 10, 10)


def test_a_batch_whose_fetch_rows_are_recorded_under_another_name_adds_nothing(settings, monkeypatch, httpserver):
    """The merge inserts fetch rows without looking through the fetch log (the unique index
    stops a repeat); a batch holding already recorded fetch keys, under a folder name never
    merged, is merged again leaving those rows and their sightings out."""
    import shutil

    shard = _env(settings, monkeypatch, httpserver)
    lane = batches.staging_lane(settings.data_dir, "news")
    first = jobs.fetch_shard(shard, lane="news", poll_id=POLL)
    copy = lane / "copy-of-a-merged-batch"
    shutil.copytree(lane / first["batch"], copy)
    (copy / batches.SUCCESS_MARK).write_text(copy.name)
    jobs.load_staged(lane="news")  # both folders: the original, then the copy
    assert _counts(settings) == (1, 10, 10)
    assert not batches.staged_dirs(lane)


# A retry exists because an attempt failed, often for being cut off from the network; the
# feeds that attempt could not fetch are what the retry is for. Feed "cut" answers 503 to the
# first attempt only; feed "news" is fine throughout.
def _two_feeds(settings, monkeypatch, httpserver, first_answer=("", 503, {})):
    body, status, headers = first_answer
    httpserver.expect_oneshot_request("/cut.xml").respond_with_data(body, status=status, headers=headers)
    httpserver.expect_request("/cut.xml").respond_with_data(BIG.read_bytes())
    register(settings, "cut", httpserver.url_for("/cut.xml"), "news")
    return _env(settings, monkeypatch, httpserver)


def _requests(httpserver, path):
    return sum(1 for req, _ in httpserver.log if req.path == path)


def _by_feed(settings):
    with open_db(settings.db_path) as con:
        fetches = con.execute("""SELECT s.name, f.status FROM fetches f JOIN sources s USING (source_id)
                                 ORDER BY s.name, f.status""").fetchall()
        items = dict(con.execute("""SELECT s.name, count(*) FROM items i JOIN sources s USING (source_id)
                                    GROUP BY ALL""").fetchall())
        (sightings,) = query_one(con, "SELECT count(*) FROM item_sightings")
        (sighted,) = query_one(con, "SELECT count(DISTINCT item_id) FROM item_sightings")
    return fetches, items, sightings, sighted


def test_a_retry_polls_again_only_what_its_predecessor_failed(settings, monkeypatch, httpserver):
    shard = _two_feeds(settings, monkeypatch, httpserver)
    assert len(shard) == 2
    _orphan_stages(settings, shard)  # "cut" failed, "news" fetched; then its worker was lost
    retry = jobs.fetch_shard(shard, lane="news", poll_id=POLL)
    assert not retry.get("reused") and retry["feeds"] == 1 and retry["ok"] == 1
    assert (_requests(httpserver, "/cut.xml"), _requests(httpserver, "/news.xml")) == (2, 1)
    again = jobs.fetch_shard(shard, lane="news", poll_id=POLL)  # a third attempt: all is staged
    assert again["reused"] and _requests(httpserver, "/cut.xml") == 2
    assert jobs.load_staged(lane="news")["batches"] == 2  # the poll and its repair
    fetches, items, sightings, sighted = _by_feed(settings)
    assert fetches == [("cut", "failed"), ("cut", "ok"), ("news", "ok")]
    assert items == {"cut": 141, "news": 10} and sightings == sighted == 151


def test_a_retry_that_loses_the_race_keeps_what_only_it_fetched(settings, monkeypatch, httpserver):
    """The retry polls everything; before it stages, the orphan stages its own batch of the poll,
    with "cut" failed. The orphan's batch stays (first wins); the retry's "cut" becomes the repair."""
    shard = _two_feeds(settings, monkeypatch, httpserver)
    lane = batches.staging_lane(settings.data_dir, "news")
    real_poll = jobs._poll
    retry_polled = []

    def poll_then_orphan_stages(s, requests, batch_id):
        out = real_poll(s, requests, batch_id)  # the retry's poll: both feeds, "cut" on its second try
        retry_polled.append(out)
        _orphan_stages(settings, shard)  # the orphan's: "cut" answered 200 now too...
        return out
    # ...so the orphan's own request for "cut" (the second one) must be the one that fails.
    from werkzeug import Response
    asked = []

    def cut(request):
        asked.append(request)
        return Response(BIG.read_bytes()) if len(asked) == 1 else Response("", status=503)
    httpserver.clear_all_handlers()
    httpserver.expect_request("/news.xml").respond_with_data(FEED.read_bytes())
    httpserver.expect_request("/cut.xml").respond_with_handler(cut)
    monkeypatch.setattr(jobs, "_poll", poll_then_orphan_stages)
    retry = jobs.fetch_shard(shard, lane="news", poll_id=POLL)
    assert retry["repaired"] == 1 and retry_polled
    assert len(batches.staged_dirs(lane)) == 2
    jobs.load_staged(lane="news")
    fetches, items, sightings, sighted = _by_feed(settings)
    assert fetches == [("cut", "failed"), ("cut", "ok"), ("news", "ok")]
    assert items == {"cut": 141, "news": 10} and sightings == sighted == 151


def test_a_feed_that_said_when_to_come_back_is_not_asked_again_by_the_retry(settings, monkeypatch, httpserver):
    shard = _two_feeds(settings, monkeypatch, httpserver, first_answer=("", 429, {"Retry-After": "3600"}))
    _orphan_stages(settings, shard)
    retry = jobs.fetch_shard(shard, lane="news", poll_id=POLL)
    assert retry["reused"] and _requests(httpserver, "/cut.xml") == 1
    jobs.load_staged(lane="news")
    fetches, items, _, _ = _by_feed(settings)
    assert fetches == [("cut", "failed"), ("news", "ok")] and items == {"news": 10}


def test_an_orphan_that_fetched_less_than_the_kept_retry_repairs_nothing(settings, monkeypatch, httpserver):
    shard = _two_feeds(settings, monkeypatch, httpserver, first_answer=(BIG.read_bytes(), 200, {}))
    httpserver.expect_oneshot_request("/cut.xml").respond_with_data("", status=503)  # the orphan's, later
    jobs.fetch_shard(shard, lane="news", poll_id=POLL)  # the retry stages first: both fine
    _orphan_stages(settings, shard)  # the orphan, late, with "cut" failed: dropped, and nothing to repair
    lane = batches.staging_lane(settings.data_dir, "news")
    assert len(batches.staged_dirs(lane)) == 1
    jobs.load_staged(lane="news")
    fetches, items, sightings, sighted = _by_feed(settings)
    assert fetches == [("cut", "ok"), ("news", "ok")] and sightings == sighted == 151
