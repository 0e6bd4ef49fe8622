"""A merge killed at any instant (SIGKILL: no cleanup, no atexit), and a lock taken while a poll is
fetching: after the next run the database holds exactly what an undisturbed run stores."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime

import pytest
from werkzeug import Response

from pipeline.sources.addresses import parse_networks
from pipeline.sources.batches import make_batch, stage, staging_lane
from pipeline.sources.fetch import Limits
from pipeline.sources.ingest import due_feeds, poll
from pipeline.sources.merge import load_every_lane
from pipeline.store.database import open_db
from tests.conftest import LOOPBACK
from tests.feed_support import hold_write_lock, ingest, many_feeds, rows

STORED = """SELECT s.name, i.dedup_key, i.title, i.url, i.published_raw, i.published_utc
            FROM items i JOIN sources s USING (source_id) ORDER BY ALL"""


def _staged_but_not_merged(settings, httpserver):
    """21 feeds fetched and staged as one batch, nothing merged yet."""
    many_feeds(settings, httpserver)
    with open_db(settings.db_path) as con:
        reqs = due_feeds(con, now=datetime.now(UTC), poll_minutes=15, force=True)
    batch, _ = make_batch(poll(reqs, limits=Limits(allow_networks=parse_networks(LOOPBACK)), workers=4,
                               per_host=4))
    stage(batch, staging_lane(settings.data_dir, "cli"))


def _reference(settings, tmp_path):
    """What an undisturbed merge of the same staged batch stores."""
    ref_db, ref_data = tmp_path / "ref.duckdb", tmp_path / "ref-data"
    shutil.copy(settings.db_path, ref_db)
    shutil.copytree(settings.data_dir, ref_data)
    with open_db(ref_db) as con:
        load_every_lane(con, ref_data, max_failures=3)
        return con.execute(STORED).fetchall(), con.execute("SELECT count(*) FROM fetches").fetchone()[0]


def _load_process(settings, die_at: str | None = None):
    """`media-timing ingest load` in its own process; ``die_at`` names the step at which it sends
    itself SIGKILL (no cleanup, no atexit, as the OOM killer or a power cut would end it)."""
    env = {**os.environ, "MEDIA_TIMING_DB": str(settings.db_path),
           "MEDIA_TIMING_DATA_DIR": str(settings.data_dir)}
    code = textwrap.dedent(f"""
        import os, signal, sys
        from pipeline.sources import merge
        from pipeline.store import items as store

        def dying(module, name):
            real = getattr(module, name)
            def wrapper(*args, **kw):
                if {die_at!r} == "before " + name:
                    os.kill(os.getpid(), signal.SIGKILL)
                out = real(*args, **kw)
                if {die_at!r} == "after " + name:
                    os.kill(os.getpid(), signal.SIGKILL)
                return out
            setattr(module, name, wrapper)

        dying(store, "store_planned")      # fetch rows written, items not yet
        dying(merge, "_disable_failing")  # every row written, the transaction not committed
        dying(merge.shutil, "rmtree")     # committed, the staged files not yet removed
        from pipeline.cli import main
        sys.exit(main(["ingest", "load"]))
    """)
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


KILL_POINTS = ["before store_planned", "after store_planned", "after _disable_failing", "before rmtree",
               "after rmtree"]


@pytest.mark.parametrize("when", [*KILL_POINTS, "at 0.3 s", "at 1 s", "at 2 s"])
def test_a_merge_killed_at_any_instant_is_completed_exactly_once_by_the_next(settings, httpserver, tmp_path,
                                                                             when):
    _staged_but_not_merged(settings, httpserver)
    want_items, want_fetches = _reference(settings, tmp_path)
    assert want_fetches == 21 and len(want_items) > 400
    if when in KILL_POINTS:
        proc = _load_process(settings, die_at=when)
        assert proc.wait(timeout=120) == -signal.SIGKILL, proc.stderr.read()
    else:
        proc = _load_process(settings)
        time.sleep(float(when.split()[1]))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # Whatever instant it died at, the database opens and holds all of the merge or none of it.
    (items, fetches) = rows(settings, "SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM fetches)")[0]
    assert (items, fetches) in ((0, 0), (len(want_items), want_fetches))
    if when in ("before rmtree", "after rmtree"):
        assert (items, fetches) == (len(want_items), want_fetches)
    elif when in KILL_POINTS:
        assert (items, fetches) == (0, 0)
    rerun = _load_process(settings)
    assert rerun.wait(timeout=120) == 0, rerun.stderr.read()
    assert rows(settings, STORED) == want_items
    assert rows(settings, "SELECT count(*) FROM fetches")[0][0] == want_fetches
    assert not any((settings.data_dir / "staging").rglob("*.parquet")), "a merged batch was left staged"


def test_a_lock_taken_while_the_poll_fetches_leaves_the_batch_staged_and_the_next_merge_loses_nothing(
        settings, httpserver, monkeypatch):
    """An analyst opens the database for writing after the poll has planned and before it merges."""
    from pipeline.config import Settings
    from pipeline.sources import ingest as ingest_module
    from tests.feed_support import register, rss

    body = {"v": rss([("a", "one"), ("b", "two")])}
    httpserver.expect_request("/feed.xml").respond_with_handler(
        lambda r: Response(body["v"], content_type="application/rss+xml"))
    register(settings, "f", httpserver.url_for("/feed.xml"))
    assert ingest(settings).items_new == 2
    body["v"] = rss([("a", "one"), ("b", "two"), ("c", "three")])
    holders = []
    real_poll = ingest_module.poll

    def poll_then_lock(*args, **kw):
        results = list(real_poll(*args, **kw))
        holders.append(hold_write_lock(settings.db_path, 3))  # between fetching and merging
        return iter(results)

    monkeypatch.setattr(ingest_module, "poll", poll_then_lock)
    impatient = Settings(**{**settings.__dict__, "lock_wait_s": 0.5})
    staged = ingest(impatient)
    assert holders, "the lock was never taken"
    holders[0].wait()
    assert staged.staged_only and staged.failed == 0, staged  # fetched and kept, not failed
    assert rows(settings, "SELECT count(*) FROM items")[0][0] == 2
    with open_db(settings.db_path) as con:
        merged = load_every_lane(con, settings.data_dir, max_failures=3)
        assert [r.items_new for r in merged] == [1]
        assert load_every_lane(con, settings.data_dir, max_failures=3) == []  # nothing left to merge
    assert rows(settings, "SELECT count(*), count(DISTINCT dedup_key) FROM items")[0] == (3, 3)
    assert rows(settings, "SELECT count(*) FROM fetches")[0][0] == 2
