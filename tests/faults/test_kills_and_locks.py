"""A poll killed at any point, a database held by another process, a batch merged twice: nothing is
lost, nothing is recorded twice, no process is left behind."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime

import pytest
from werkzeug import Response

from pipeline.config import Settings
from pipeline.sources.addresses import parse_networks
from pipeline.sources.ingest import due_feeds, run_ingest
from pipeline.sources.merge import load_all_staged
from pipeline.store.database import open_db, query_one
from tests.conftest import LOOPBACK
from tests.feed_support import (
    FEED,
    _start_poll,
    hold_write_lock,
    ingest,
    item_count,
    many_feeds,
    register,
    rows,
    rss,
    spy_on_parsers,
)
from tests.processes import alive


def test_a_held_database_does_not_stop_a_poll_and_the_next_run_merges_it(settings, httpserver):
    bodies = {"v": rss([("a", "one"), ("b", "two")])}
    httpserver.expect_request("/feed.xml").respond_with_handler(
        lambda req: Response(bodies["v"], content_type="application/rss+xml")
    )
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
        from pipeline.store.database import DatabaseLocked

        with pytest.raises(DatabaseLocked, match="no saved plan"):
            ingest(impatient)
    finally:
        holder.wait()


def test_a_batch_loaded_twice_adds_nothing(settings, httpserver, tmp_path):
    import shutil

    httpserver.expect_request("/feed.xml").respond_with_data(FEED.read_bytes())
    register(settings, "f", httpserver.url_for("/feed.xml"))
    from pipeline.sources.batches import make_batch, stage
    from pipeline.sources.fetch import Limits
    from pipeline.sources.ingest import poll

    with open_db(settings.db_path) as con:
        reqs = due_feeds(con, now=datetime.now(UTC), poll_minutes=15, force=True)
    staged = stage(
        make_batch(
            poll(
                reqs, limits=Limits(allow_networks=parse_networks(LOOPBACK)), workers=2, per_host=1
            )
        )[0],
        settings.data_dir / "staging",
    )
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


def test_a_parser_process_that_dies_loses_nothing(settings, httpserver, tmp_path, monkeypatch):
    many_feeds(settings, httpserver)
    spy_on_parsers(monkeypatch, tmp_path, die_as=0)
    parallel = Settings(**{**settings.__dict__, "fetch_processes": 2})
    summary = ingest(parallel)
    assert summary.ok == 21 and summary.failed == 0  # the dead parser's share was parsed here
    (fetches,) = rows(settings, "SELECT count(*) FROM fetches")[0]
    assert fetches == 21
    (items, distinct) = rows(
        settings, "SELECT count(*), count(DISTINCT (source_id, dedup_key)) FROM items"
    )[0]
    assert items == distinct == summary.items_new


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


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_or_stopped_poll_leaves_no_parser_behind(slow_feeds, sig):
    proc, parsers = _start_poll(slow_feeds)
    os.kill(proc.pid, sig)
    proc.wait(timeout=15)
    deadline = time.monotonic() + 5
    while alive(parsers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(parsers), "parser processes outlived the poll"
    if sig == signal.SIGTERM:  # an orderly stop: its half-written batch is gone, nothing recorded
        assert proc.returncode == 128 + signal.SIGTERM
        lane = slow_feeds.data_dir / "staging" / "cli"
        assert not lane.exists() or not any(lane.iterdir())
    assert rows(slow_feeds, "SELECT count(*) FROM fetches")[0][0] == 0  # nothing of it was recorded
    assert ingest(slow_feeds).feeds == 20  # so the next poll polls every feed again
    assert rows(slow_feeds, "SELECT count(*) FROM fetches")[0][0] == 20
