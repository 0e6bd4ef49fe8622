"""One poll, two attempts: the orphaned first attempt of a worker whose process group died
(it still stages its batch) and the retry Airflow starts after the heartbeat timeout. Whatever
the order, `fetches` gets one row per feed and `item_sightings` one per item, and a retry that
finds its predecessor's batch staged reuses it instead of polling again."""

from __future__ import annotations

from pipeline import jobs
from pipeline.sources import batches, ingest
from pipeline.sources.fetch import FeedRequest
from pipeline.store.database import open_db, query_one
from tests.feed_support import register
from tests.test_ingest import FEED

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
