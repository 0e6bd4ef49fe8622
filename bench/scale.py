"""Do the store's costs stay flat as it grows? Synthetic items at growing sizes, measured against
the empty store in the same run.

The store is filled with realistic synthetic rows straight in SQL (5,000 sources, items spread
over two years in the order they would have arrived, one sighting each, and a fetch log of
1,000 feeds polled every 15 minutes: a year of it, 35M rows, from the first non-empty size on),
then measured at each size (medians of --runs):
  merge, first poll  a staged 1,000-feed batch, 25 new items per feed (what a poll stages)
  merge, re-poll     the same feeds again: 90% of the items seen before, 10% new
  poll plan          every feed's state for planning the next poll (v_feed_health, sql/013)
  state from the log one feed's state derived from the whole fetch log (a re-enabled feed, a late batch)
  v_items_hourly     one week, all sources
  feed_coverage      one day, every feed
  v_item_sightings   the newest 20
  release_neighbours every release's neighbours
  open               connecting and checking the schema, as every command does
and the file's size per million items. Each figure is printed with its ratio to the empty store.

Run: .venv/bin/python bench/scale.py [--sizes 1000000,10000000] [--runs 3] [--keep DIR]
(With 50,000,000 the file reaches about 9 GB and the whole run takes about 4 minutes on 2 cores.)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.sources import feed_state  # noqa: E402
from pipeline.sources.batches import SUCCESS_MARK  # noqa: E402
from pipeline.sources.merge import load_staged_dir  # noqa: E402
from pipeline.sources.poll_plan import read_states  # noqa: E402
from pipeline.store.database import open_db  # noqa: E402

SOURCES, POLLED, PER_FEED = 5000, 1000, 25
START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=730)
YEAR_OF_POLLS = POLLED * 4 * 24 * 365  # fetch rows a 1,000-feed poller writes in a year
NOW = START + SPAN


def fill(con, upto: int, fetch_rows: int) -> None:
    """Grow items (and their sightings) to ``upto`` rows and the fetch log to ``fetch_rows``."""
    (have, top) = con.execute("SELECT count(*), coalesce(max(item_id), 0) FROM items").fetchone()
    (have_f,) = con.execute("SELECT count(*) FROM fetches").fetchone()
    step = SPAN.total_seconds() / max(upto, 1)
    if fetch_rows > have_f:  # 1,000 feeds every 15 minutes, newest poll ending at NOW
        con.execute(f"""
            INSERT INTO fetches (fetch_id, fetch_key, source_id, started_utc, status, http_status, url,
                                 bytes, latency_ms, etag, items_total, items_new, items_seen)
            SELECT 1e9::BIGINT + r, 'hist-' || r, 1 + r % {POLLED},
                   TIMESTAMPTZ '{NOW.isoformat()}' - to_minutes(15 * ({fetch_rows} - r) // {POLLED}),
                   CASE WHEN r % 7 = 0 THEN 'ok' WHEN r % 97 = 0 THEN 'failed' ELSE 'not_modified' END,
                   CASE WHEN r % 97 = 0 THEN 503 WHEN r % 7 = 0 THEN 200 ELSE 304 END,
                   'https://feeds.example.org/' || (1 + r % {POLLED}), 40000, 120.0, '"e' || r || '"',
                   25, 0, 25
            FROM range({have_f}, {fetch_rows}) t(r)""")
        feed_state.rederive(con)  # the log was written here, not merged: derive the feeds' state
    if upto > have:
        con.execute(f"""
            INSERT INTO items (item_id, source_id, dedup_key, guid, url, url_normalized, title, author, summary,
                               published_raw, published_utc, time_precision_s, time_zone_explicit, time_flags,
                               first_seen_utc, provenance)
            SELECT {top} + n, 1 + hash(n) % {SOURCES}, 'guid:' || md5(n::VARCHAR), 'tag:example.org,2025:' || n,
                   'https://news.example.org/' || (1 + hash(n) % {SOURCES}) || '/story/' || n,
                   'https://news.example.org/' || (1 + hash(n) % {SOURCES}) || '/story/' || n,
                   'Headline number ' || n || ' about ' || (['the vote', 'the leak', 'a storm', 'markets'])[1 + n % 4],
                   'Reporter ' || (n % 900), 'A summary of the story, long enough to be realistic: ' || md5(n::VARCHAR),
                   strftime(t, '%a, %d %b %Y %H:%M:%S +0000'), t, 1, true, [],
                   t + INTERVAL 4 MINUTE, 'fetch:' || (1e9::BIGINT + n % {max(fetch_rows, 1)})
            FROM (SELECT n, TIMESTAMPTZ '{START.isoformat()}' + to_microseconds(CAST(n * {step * 1e6} AS BIGINT)) AS t
                  FROM range({have + 1}, {upto + 1}) r(n))""")
        con.execute(f"""INSERT INTO item_sightings SELECT item_id, 1e9::BIGINT + item_id % {max(fetch_rows, 1)},
                        first_seen_utc FROM items WHERE item_id > {top}""")
    con.execute("CHECKPOINT")


def stage_poll(folder: Path, poll: int, repeat_of: int | None, feeds: int = POLLED, per_feed: int = PER_FEED) -> Path:
    """A staged batch as a fetch task writes it: 1,000 feeds, 25 items each. With ``repeat_of``,
    90% of each feed's items are those of that earlier poll."""
    import duckdb

    batch = folder / f"bench-{poll}"
    batch.mkdir(parents=True)
    at = NOW + timedelta(minutes=15 * poll)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""COPY (SELECT 'bench-{poll}-' || s AS fetch_key, s::INTEGER AS source_id,
                          TIMESTAMPTZ '{at.isoformat()}' AS started_utc, 'ok' AS status, 200 AS http_status,
                          'https://feeds.example.org/' || s AS url, NULL::VARCHAR AS final_url, 40000::BIGINT AS bytes,
                          120.0::DOUBLE AS latency_ms, '"p{poll}"' AS etag, NULL::VARCHAR AS last_modified,
                          md5('{poll}-' || s) AS body_sha256, 'lxml' AS parser, false AS bozo,
                          NULL::VARCHAR AS bozo_reason, {per_feed}::INTEGER AS items_total,
                          NULL::TIMESTAMPTZ AS retry_after_utc, NULL::VARCHAR AS error
                   FROM range(1, {feeds + 1}) t(s)) TO '{batch / "fetches.parquet"}' (FORMAT parquet)""")
    key_poll = f"CASE WHEN k < {int(per_feed * 0.9)} THEN {repeat_of} ELSE {poll} END" if repeat_of is not None \
        else str(poll)
    con.execute(f"""COPY (SELECT 'bench-{poll}-' || s AS fetch_key, s::INTEGER AS source_id,
                          'guid:bench-' || ({key_poll}) || '-' || s || '-' || k AS dedup_key,
                          'bench-' || ({key_poll}) || '-' || s || '-' || k AS guid,
                          'https://news.example.org/bench/' || s || '/' || k AS url,
                          'https://news.example.org/bench/' || s || '/' || k AS url_normalized,
                          'Bench headline ' || k AS title, 'Reporter' AS author, 'Summary' AS summary,
                          strftime(TIMESTAMPTZ '{at.isoformat()}', '%a, %d %b %Y %H:%M:%S +0000') AS published_raw,
                          NULL::VARCHAR AS updated_raw, TIMESTAMPTZ '{at.isoformat()}' - to_minutes(k) AS published_utc,
                          NULL::TIMESTAMPTZ AS updated_utc, 1 AS time_precision_s, true AS time_zone_explicit,
                          []::VARCHAR[] AS time_flags, TIMESTAMPTZ '{at.isoformat()}' AS first_seen_utc,
                          'staged' AS provenance
                   FROM range(1, {feeds + 1}) t(s), range({per_feed}) u(k))
                   TO '{batch / "items-0.parquet"}' (FORMAT parquet)""")
    con.close()
    (batch / SUCCESS_MARK).write_text(batch.name)
    return batch


def timed(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Poller:
    def __init__(self, folder: Path):
        self.folder, self.poll = folder, 0

    def first(self, con) -> None:
        self.poll += 1
        load_staged_dir(con, stage_poll(self.folder, self.poll, None), max_failures=10)

    def again(self, con) -> None:
        self.poll += 1
        load_staged_dir(con, stage_poll(self.folder, self.poll, self.poll - 1), max_failures=10)


def measure(db: Path, poller: Poller, runs: int) -> dict[str, float]:
    week = (NOW - timedelta(days=30), NOW - timedelta(days=23))
    day = (NOW - timedelta(days=2), NOW - timedelta(days=1))
    views = {
        "v_items_hourly (a week)": f"SELECT count(*), sum(items) FROM v_items_hourly "
                                   f"WHERE hour_utc >= '{week[0].isoformat()}' AND hour_utc < '{week[1].isoformat()}'",
        "feed_coverage (a day)": f"SELECT count(*), sum(polls_ok) FROM feed_coverage('{day[0].isoformat()}', "
                                 f"'{day[1].isoformat()}')",
        "v_item_sightings (newest 20)": "SELECT * FROM v_item_sightings ORDER BY first_seen_utc DESC LIMIT 20",
        "release_neighbours": "SELECT count(*) FROM release_neighbours()",
    }
    out: dict[str, float] = {}
    with open_db(db) as con:
        # the merge is staged in the prior poll's image: one first poll, then re-polls of it
        out["merge, first poll"] = timed(lambda: poller.first(con), runs)
        out["merge, re-poll (90% seen)"] = timed(lambda: poller.again(con), runs)
        out["poll plan (feed states)"] = timed(lambda: read_states(con), runs)
        # the rare path: one feed's state derived from the whole log (re-enabled, or a late batch)
        out["one feed's state from the log"] = timed(lambda: feed_state.rederive(con, [1]), runs)
        for name, sql in views.items():
            out[name] = timed(lambda sql=sql: con.execute(sql).fetchall(), runs)

    def opening():
        with open_db(db, read_only=True) as con:
            con.execute("SELECT 1").fetchall()
    out["open"] = timed(opening, runs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000000,10000000", help="item counts, comma-separated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="build the store here and keep it")
    args = ap.parse_args()
    sizes = [0] + [int(s) for s in args.sizes.split(",")]
    work = args.keep or Path(tempfile.mkdtemp(prefix="mt-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "scale.duckdb"
    poller = Poller(work / "staging")
    with open_db(db) as con:
        con.execute(f"INSERT INTO sources (name, role, kind, url) SELECT 'feed-' || s, 'news', 'feed', "
                    f"'https://feeds.example.org/' || s FROM range(1, {SOURCES + 1}) t(s)")
    results: dict[int, dict[str, float]] = {}
    last = (0, 0.0)
    try:
        for n in sizes:
            fetch_rows = 0 if n == 0 else YEAR_OF_POLLS
            t0 = time.perf_counter()
            with open_db(db) as con:
                fill(con, n, fetch_rows)
                (items,) = con.execute("SELECT count(*) FROM items").fetchone()
                (fetches,) = con.execute("SELECT count(*) FROM fetches").fetchone()
            filled = time.perf_counter() - t0
            mb = db.stat().st_size / 1e6
            # growth since the last size: the first non-empty one also holds the year of fetch rows
            per_m = f", +{(mb - last[1]) / ((items - last[0]) / 1e6):.0f} MB per million items added" \
                if n > sizes[1] else ""
            last = (items, mb)
            print(f"\n{items:,} items, {fetches:,} fetch rows (filled in {filled:.0f} s): file {mb:,.0f} MB{per_m}")
            results[n] = measure(db, poller, args.runs)
            for name, secs in results[n].items():
                ratio = f"  {secs / results[0][name]:5.2f}x empty" if n else ""
                print(f"  {name:<30} {secs:8.3f} s{ratio}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
