"""Each feed's polling state (sql/013 feed_state) is kept by the merge, batch by batch; whatever
order batches arrive in, repeated or re-enabled, it must equal what the fetch log says
(feed_state_from_log)."""

import random
import shutil
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from pipeline.sources import batches, feeds
from pipeline.sources.batches import FETCH_COLUMNS
from pipeline.sources.merge import load_staged_dir
from pipeline.sources.poll_plan import read_states
from pipeline.store.database import SQL_DIR, connect, migrate

STATUSES = ["ok", "not_modified", "unchanged", "failed", "not_a_feed"]
START = datetime(2026, 3, 1, tzinfo=UTC)
STATE = "SELECT * FROM feed_state ORDER BY source_id"
FROM_LOG = "SELECT * FROM feed_state_from_log(NULL) ORDER BY source_id"


def stage(folder, name: str, rows: list[dict]):
    """A staged batch of fetch rows alone, as the fetch tasks write them."""
    df = pd.DataFrame([{c: r.get(c) for c in FETCH_COLUMNS} for r in rows], columns=FETCH_COLUMNS)
    for c in ("started_utc", "retry_after_utc"):
        df[c] = pd.to_datetime(df[c], utc=True)
    return batches.stage(batches.Batch(name, df, pd.DataFrame()), folder, items=False)


def fetch(rng, key: str, source_id: int, at: datetime) -> dict:
    status = rng.choice(STATUSES)
    ok = status in ("ok", "not_modified", "unchanged")
    return {"fetch_key": key, "source_id": source_id, "started_utc": at, "status": status,
            "url": f"http://feeds.test/{source_id}",
            "etag": rng.choice([None, f'"{key}"']) if ok else None,
            "last_modified": rng.choice([None, at.strftime("%a, %d %b %Y %H:%M:%S GMT")]) if ok else None,
            "body_sha256": rng.choice([None, key]) if status == "ok" else None,
            "retry_after_utc": at + timedelta(minutes=30) if status == "failed" and rng.random() < 0.3 else None,
            "error": f"boom {key}" if not ok else None}


@pytest.fixture
def feeds_con(con):
    con.execute("INSERT INTO sources (name, role, kind, url) SELECT 'feed-' || s, 'news', 'feed', "
                "'http://feeds.test/' || s FROM range(1, 5) t(s)")
    return con


@pytest.mark.parametrize("seed", range(8))
def test_the_kept_state_equals_the_log_whatever_order_batches_come_in(feeds_con, tmp_path, monkeypatch, seed):
    con, rng = feeds_con, random.Random(seed)
    ids = [r[0] for r in con.execute("SELECT source_id FROM sources ORDER BY 1").fetchall()]
    clock = {"t": START}
    monkeypatch.setattr(feeds, "datetime", type("Clock", (), {"now": staticmethod(lambda tz=None: clock["t"])}))
    made: list[list[dict]] = []
    for n in range(25):
        roll = rng.random()
        if roll < 0.1 and made:  # a batch staged again under another id (an orphaned retry's twin)
            rows = rng.choice(made)
        elif roll < 0.2:  # re-enabled now: earlier failures stop counting
            feeds.enable_feed(con, f"feed-{rng.choice(ids)}")
            rows = []
        else:
            # in time order mostly; sometimes a batch from earlier (a lane merged late)
            back = timedelta(minutes=rng.choice([0, 0, 0, 45, 300]))
            rows = [fetch(rng, f"{seed}-{n}-{k}", rng.choice(ids), clock["t"] - back + timedelta(minutes=k + 1))
                    for k in range(rng.randint(1, 6))]
            made.append(rows)
            clock["t"] += timedelta(minutes=10)
        if rows:
            load_staged_dir(con, stage(tmp_path, f"b{n}", rows), max_failures=4)
        assert con.execute(STATE).fetchall() == con.execute(FROM_LOG).fetchall(), f"after step {n}"
    assert con.execute("SELECT count(*) FROM fetches").fetchone() == \
        con.execute("SELECT sum(fetches) FROM feed_state").fetchone()

def test_failures_disable_a_feed_and_re_enabling_starts_the_count_again(feeds_con, tmp_path):
    con, rng = feeds_con, random.Random(1)
    at = [START + timedelta(minutes=m) for m in range(10)]
    rows = [dict(fetch(rng, f"f{m}", 1, at[m]), status="failed", error="HTTP 503", etag=None,
                 last_modified=None, body_sha256=None) for m in range(4)]
    res = load_staged_dir(con, stage(tmp_path, "fails", rows), max_failures=4)
    assert res.disabled == ["feed-1"]
    assert con.execute("SELECT consecutive_failures, last_error FROM v_feed_health WHERE source_id = 1"
                       ).fetchone() == (4, "HTTP 503")
    feeds.enable_feed(con, "feed-1")
    (state,) = [s for s in read_states(con) if s.source_id == 1]
    assert state.enabled and state.consecutive_failures == 0
    assert con.execute(STATE).fetchall() == con.execute(FROM_LOG).fetchall()


def test_a_feed_never_fetched_has_no_state_and_is_due(feeds_con):
    states = read_states(feeds_con)
    assert len(states) == 4 and all(s.last_attempt_utc is None and s.consecutive_failures == 0 for s in states)
    assert feeds_con.execute("SELECT count(*) FROM feed_state").fetchone() == (0,)


def test_the_migration_derives_the_state_of_fetches_already_recorded(db_path, tmp_path):
    old = tmp_path / "sql"
    shutil.copytree(SQL_DIR, old)
    (old / "013_feed_state.sql").unlink()
    (old / "views" / "020_feed_views.sql").write_text("SELECT 1;")  # that version's health view read the log
    c = connect(db_path)
    migrate(c, old)
    c.execute("INSERT INTO sources (name, role, kind, url) VALUES ('a', 'news', 'feed', 'u1'), ('b', 'news', 'feed', 'u2')")
    rng = random.Random(3)
    rows = [fetch(rng, f"k{m}", 1 + m % 2, START + timedelta(minutes=m)) for m in range(40)]
    staging = tmp_path / "staging"
    load_dir = stage(staging, "old", rows)
    c.execute(f"""INSERT INTO fetches ({", ".join(FETCH_COLUMNS)})
                  SELECT {", ".join(FETCH_COLUMNS)} FROM read_parquet('{load_dir / "fetches.parquet"}')""")
    assert migrate(c) == ["013_feed_state.sql"]
    got = c.execute(STATE).fetchall()
    assert len(got) == 2 and sum(r[1] for r in got) == 40
    assert got == c.execute(FROM_LOG).fetchall()
    c.close()
