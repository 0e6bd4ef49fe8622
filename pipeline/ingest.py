"""Polling feeds: plan what is due, fetch and parse it, stage it to files, merge it into DuckDB.

The steps are separate so that they can run in separate processes (Airflow's mapped fetch tasks
and one loader). Fetching never touches the database; a fetched batch is first written to a
staging directory, then merged in one transaction recorded in `staged_batches`. If the database
is busy (an analyst, another writer) the batch waits on disk and the next load merges it: data
is never lost, and merging a batch twice adds nothing.

Staged batches live in lanes, `staging/<lane>/<batch>/`: each loader merges only its own lane, so
the loader that tells the rest of the pipeline "there are new items" is the one that loaded
them (Airflow's news and release DAGs run side by side). `media-timing ingest load` merges all.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from pathlib import Path

import duckdb
import pandas as pd

from . import parse_feed
from .database import query_one, transaction
from .fetch import FeedRequest, FetchOutcome, Limits, fetch_feed, host_of, make_session
from .store import ITEM_COLUMNS

BACKOFF_CAP = timedelta(hours=24)
FETCH_COLUMNS = ["fetch_key", "source_id", "started_utc", "status", "http_status", "url", "final_url",
                 "bytes", "latency_ms", "etag", "last_modified", "body_sha256", "parser", "bozo",
                 "bozo_reason", "items_total", "retry_after_utc", "error"]
SUCCESS_MARK = "_SUCCESS"


# --- plan ------------------------------------------------------------------------------------

def due_feeds(con: duckdb.DuckDBPyConnection, *, now: datetime, poll_minutes: int,
              names: Iterable[str] | None = None, force: bool = False,
              roles: Iterable[str] | None = None) -> list[FeedRequest]:
    """Enabled feeds whose next poll is due, with the validators for a conditional GET.

    Next poll = last attempt + interval × 2^consecutive failures (capped at a day), and never
    before a server's Retry-After. ``force`` polls every enabled (or named) feed now.
    """
    rows = con.execute(
        """SELECT source_id, name, url, etag, last_modified, body_sha256, last_attempt_utc,
                  consecutive_failures, retry_after_utc, coalesce(poll_minutes, ?) AS every
           FROM v_feed_health WHERE enabled AND (? IS NULL OR list_contains(?, role)) ORDER BY name""",
        [poll_minutes, None if roles is None else list(roles), None if roles is None else list(roles)],
    ).fetchall()
    wanted = set(names) if names else None
    out = []
    for sid, name, url, etag, lm, sha, last, failures, retry_after, every in rows:
        if wanted is not None and name not in wanted:
            continue
        if not force and last is not None:
            wait = min(timedelta(minutes=every) * (2 ** min(failures, 10)), BACKOFF_CAP)
            due = last + wait
            if retry_after is not None and retry_after > due:
                due = retry_after
            if due > now:
                continue
        out.append(FeedRequest(sid, name, url, etag, lm, sha))
    return out


def _by_host(requests: list[FeedRequest]) -> dict[str, list[FeedRequest]]:
    by_host: dict[str, list[FeedRequest]] = defaultdict(list)
    for r in requests:
        by_host[host_of(r.url)].append(r)
    return by_host


def shard_by_host(requests: list[FeedRequest], shards: int) -> list[list[FeedRequest]]:
    """Split feeds into at most ``shards`` groups, keeping each host's feeds together (so a
    host's politeness limit holds across parallel fetch tasks)."""
    by_host = _by_host(requests)
    groups: list[list[FeedRequest]] = [[] for _ in range(max(1, min(shards, len(by_host))))]
    for host_feeds in sorted(by_host.values(), key=len, reverse=True):
        min(groups, key=len).extend(host_feeds)
    return [g for g in groups if g]


# --- fetch and parse -------------------------------------------------------------------------

@dataclass
class Polled:
    outcome: FetchOutcome
    feed: parse_feed.ParsedFeed | None = None


def _round_robin_by_host(requests: list[FeedRequest]) -> list[FeedRequest]:
    return [r for group in zip_longest(*_by_host(requests).values()) for r in group if r is not None]


def poll(requests: list[FeedRequest], *, limits: Limits, workers: int, per_host: int,
         progress: Callable[[int], None] | None = None) -> Iterator[Polled]:
    """Fetch (and parse) every feed, yielding each as it completes: a worker pool for I/O, at
    most ``per_host`` requests in flight per host. Parsing happens in the worker too (lxml
    releases the GIL while it parses); the caller's work on yielded results overlaps the rest."""
    session = make_session(workers, per_host)
    gates: dict[str, threading.Semaphore] = defaultdict(lambda: threading.Semaphore(per_host))
    lock = threading.Lock()

    def one(req: FeedRequest) -> Polled:
        with lock:
            gate = gates[host_of(req.url)]
        with gate:
            out = fetch_feed(session, req, limits)
        polled = Polled(out)
        if out.status == "fetched":
            try:
                polled.feed = parse_feed.parse_feed(out.body, out.headers)
            except parse_feed.NotAFeed as exc:
                out.status, out.error = "not_a_feed", str(exc)
            else:
                if polled.feed.truncated and not out.complete_length:
                    out.status = "failed"
                    out.error = "body ended early: the connection closed before the document was complete"
                    polled.feed = None
                else:
                    out.status = "ok"
        out.body = None  # parsed; don't carry megabytes around
        return polled

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(one, r) for r in _round_robin_by_host(requests)]
            for f in as_completed(futures):
                if progress:
                    progress(1)
                yield f.result()
    finally:
        session.close()


# --- batch -----------------------------------------------------------------------------------

@dataclass
class Batch:
    batch_id: str
    fetches: pd.DataFrame
    items: pd.DataFrame


def _dedup_keys(items: pd.DataFrame) -> pd.Series:
    """guid, else normalised URL, else a hash of title, raw date and summary."""
    fallback = (items["title"].fillna("") + "\x1f" + items["published_raw"].fillna("").astype(str)
                + "\x1f" + items["summary"].fillna(""))
    hashed = "title:" + fallback.map(lambda s: hashlib.sha1(s.encode()).hexdigest())
    return ("guid:" + items["guid"]).fillna("url:" + items["url_normalized"]).fillna(hashed)


def make_batch(polled: Iterable[Polled], chunk_items: int = 5000) -> tuple[Batch, list[Polled]]:
    """One frame of fetch rows and one of items for everything polled (and the polled list).

    Item frames are built every ``chunk_items`` entries while ``polled`` is still producing,
    so with a live poll the frame work overlaps the network wait.
    """
    rows, done, frames = [], [], []
    entries, bases, seen, keys, sources = [], [], [], [], []

    def flush():
        if entries:
            f = parse_feed.items_frame(entries, bases, pd.Series(seen))
            f.insert(0, "fetch_key", keys)
            f.insert(1, "source_id", sources)
            frames.append(f)
            for lst in (entries, bases, seen, keys, sources):
                lst.clear()

    for p in polled:
        done.append(p)
        o, feed = p.outcome, p.feed
        n = len(feed.entries) if feed else None
        rows.append({
            "fetch_key": o.fetch_key, "source_id": o.request.source_id, "started_utc": o.started_utc,
            "status": o.status, "http_status": o.http_status, "url": o.request.url,
            "final_url": o.final_url, "bytes": o.bytes, "latency_ms": o.latency_ms, "etag": o.etag,
            "last_modified": o.last_modified,
            # A failed fetch must not move the conditional state forward.
            "body_sha256": o.body_sha256 if o.status in ("ok", "unchanged", "not_modified") else None,
            "parser": feed.parser if feed else None, "bozo": feed.bozo if feed else None,
            "bozo_reason": feed.bozo_reason if feed else None, "items_total": n,
            "retry_after_utc": o.retry_after_utc, "error": o.error,
        })
        if feed and feed.entries:
            entries.extend(feed.entries)
            bases.extend([o.final_url or o.request.url] * n)
            seen.extend([o.started_utc] * n)
            keys.extend([o.fetch_key] * n)
            sources.extend([o.request.source_id] * n)
            if len(entries) >= chunk_items:
                flush()
    flush()
    fetches = pd.DataFrame(rows, columns=FETCH_COLUMNS)
    fetches["started_utc"] = pd.to_datetime(fetches["started_utc"], utc=True)
    fetches["retry_after_utc"] = pd.to_datetime(fetches["retry_after_utc"], utc=True)
    if frames:
        items = pd.concat(frames, ignore_index=True)
        items.insert(2, "dedup_key", _dedup_keys(items))
        items["provenance"] = None
    else:
        items = pd.DataFrame(columns=["fetch_key", *ITEM_COLUMNS])
    return Batch(uuid.uuid4().hex, fetches, items), done


# --- stage -----------------------------------------------------------------------------------

def stage(batch: Batch, root: Path) -> Path:
    """Write the batch as Parquet under root/<batch_id>/; the _SUCCESS mark is written last."""
    target = root / batch.batch_id
    target.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()  # in memory: staging never touches the database file
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, frame in (("fetches", batch.fetches), ("items", batch.items)):
            con.register("frame", frame)
            con.execute(f"COPY (SELECT * FROM frame) TO '{target / (name + '.parquet')}' (FORMAT parquet)")
            con.unregister("frame")
    finally:
        con.close()
    (target / SUCCESS_MARK).write_text(batch.batch_id)
    return target


def staged_dirs(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted((d for d in root.iterdir() if (d / SUCCESS_MARK).exists()), key=lambda d: d.stat().st_mtime)


# --- load ------------------------------------------------------------------------------------

@dataclass
class LoadResult:
    batch_id: str
    fetches: int = 0
    items_new: int = 0
    items_seen: int = 0
    disabled: list[str] = field(default_factory=list)
    already_loaded: bool = False


def load_staged_dir(con: duckdb.DuckDBPyConnection, directory: Path, *, max_failures: int) -> LoadResult:
    """Merge one staged batch in one transaction, then remove its files."""
    batch_id = directory.name
    res = LoadResult(batch_id)
    if query_one(con, "SELECT 1 FROM staged_batches WHERE batch_id = ?", [batch_id]):
        res.already_loaded = True
    else:
        fetches = f"read_parquet('{directory / 'fetches.parquet'}')"
        items = f"read_parquet('{directory / 'items.parquet'}')"
        with transaction(con):
            _load(con, fetches, items, res)
            res.disabled = _disable_failing(con, max_failures)
            con.execute("INSERT INTO staged_batches VALUES (?, ?, ?, ?)",
                        [batch_id, datetime.now(UTC), res.fetches, res.items_new])
    shutil.rmtree(directory, ignore_errors=True)
    return res


def _load(con, fetches_src: str, items_src: str, res: LoadResult) -> None:
    con.execute(f"CREATE OR REPLACE TEMP TABLE staged_fetches AS SELECT * FROM {fetches_src}")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE staged_items AS
                    SELECT * FROM {items_src}
                    QUALIFY row_number() OVER (PARTITION BY fetch_key, dedup_key) = 1""")
    # New = not stored yet (first sighting across the batch wins); seen = stored before.
    con.execute("""CREATE OR REPLACE TEMP TABLE staged_new AS
                   SELECT s.* FROM staged_items s
                   WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.source_id = s.source_id
                                     AND i.dedup_key = s.dedup_key)
                   QUALIFY row_number() OVER (PARTITION BY s.source_id, s.dedup_key
                                              ORDER BY s.first_seen_utc, s.fetch_key) = 1""")
    cols = ", ".join(FETCH_COLUMNS)
    (res.fetches,) = query_one(con, f"""
        INSERT INTO fetches ({cols}, items_new, items_seen)
        SELECT {", ".join("f." + c for c in FETCH_COLUMNS)},
               CASE WHEN f.items_total IS NULL THEN NULL ELSE coalesce(n.k, 0) END,
               CASE WHEN f.items_total IS NULL THEN NULL ELSE coalesce(a.k, 0) - coalesce(n.k, 0) END
        FROM staged_fetches f
        LEFT JOIN (SELECT fetch_key, count(*) AS k FROM staged_new GROUP BY ALL) n USING (fetch_key)
        LEFT JOIN (SELECT fetch_key, count(*) AS k FROM staged_items GROUP BY ALL) a USING (fetch_key)
        WHERE f.fetch_key NOT IN (SELECT fetch_key FROM fetches WHERE fetch_key IS NOT NULL)""")
    item_cols = [c for c in ITEM_COLUMNS if c != "provenance"]
    (res.items_new,) = query_one(con, f"""
        INSERT INTO items ({", ".join(item_cols)}, provenance)
        SELECT {", ".join("s." + c for c in item_cols)}, 'fetch:' || f.fetch_id
        FROM staged_new s JOIN fetches f USING (fetch_key)""")
    (sightings,) = query_one(con, """
        INSERT OR IGNORE INTO item_sightings (item_id, fetch_id, seen_utc)
        SELECT i.item_id, f.fetch_id, f.started_utc
        FROM staged_items s
        JOIN fetches f USING (fetch_key)
        JOIN items i ON i.source_id = s.source_id AND i.dedup_key = s.dedup_key""")
    res.items_seen = sightings - res.items_new
    for t in ("staged_new", "staged_items", "staged_fetches"):
        con.execute(f"DROP TABLE {t}")


def _disable_failing(con, max_failures: int) -> list[str]:
    rows = con.execute(
        """SELECT name, consecutive_failures, last_error FROM v_feed_health
           WHERE enabled AND consecutive_failures >= ?""", [max_failures]).fetchall()
    for name, n, err in rows:
        con.execute("UPDATE sources SET enabled = FALSE, disabled_reason = ? WHERE name = ?",
                    [f"disabled after {n} consecutive failures; last: {err}", name])
    return [r[0] for r in rows]


def staging_lane(data_dir: Path, lane: str) -> Path:
    if not lane.isidentifier():
        raise ValueError(f"staging lane must be a plain name, not {lane!r}")
    return data_dir / "staging" / lane


def load_all_staged(con: duckdb.DuckDBPyConnection, root: Path, *, max_failures: int) -> list[LoadResult]:
    """Merge the staged batches in root, oldest first."""
    return [load_staged_dir(con, d, max_failures=max_failures) for d in staged_dirs(root)]


def load_every_lane(con: duckdb.DuckDBPyConnection, data_dir: Path, *, max_failures: int) -> list[LoadResult]:
    """Merge the staged batches of every lane: the operator's repair after a long lock."""
    root = data_dir / "staging"
    lanes = sorted(d for d in root.iterdir() if d.is_dir()) if root.exists() else []
    return [r for lane in lanes for r in load_all_staged(con, lane, max_failures=max_failures)]


# --- summary ---------------------------------------------------------------------------------

@dataclass
class Summary:
    feeds: int = 0
    ok: int = 0
    not_modified: int = 0
    failed: int = 0
    items_new: int = 0
    items_seen: int = 0
    disabled: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    staged_only: Path | None = None

    def line(self) -> str:
        text = (f"{self.feeds} feeds polled: {self.ok} ok, {self.not_modified} not modified, "
                f"{self.failed} failed; items: {self.items_new} new, {self.items_seen} seen before")
        if self.disabled:
            text += f"; disabled: {', '.join(self.disabled)}"
        return text


def summarize(polled: list[Polled], loads: list[LoadResult]) -> Summary:
    s = Summary(feeds=len(polled))
    for p in polled:
        o = p.outcome
        if o.status == "ok":
            s.ok += 1
        elif o.status in ("not_modified", "unchanged"):
            s.not_modified += 1
        else:
            s.failed += 1
            s.failures.append(f"{o.request.name} ({o.request.url}): {o.status}: {o.error}")
    for r in loads:
        s.items_new += r.items_new
        s.items_seen += r.items_seen
        s.disabled += r.disabled
    return s


# --- the whole poll, as `media-timing ingest feeds` runs it ----------------------------------

def run_ingest(settings, *, names: Iterable[str] | None = None, force: bool = False,
               show_progress: bool = True, roles: Iterable[str] | None = None) -> Summary:
    """Plan, poll, stage, merge. If the database stays locked past the wait, the batch is left
    staged (``Summary.staged_only``) and the next run or `media-timing ingest load` merges it."""
    from tqdm import tqdm

    from .database import DatabaseLocked, open_db

    with open_db(settings.db_path, wait_s=settings.lock_wait_s) as con:
        requests = due_feeds(con, now=datetime.now(UTC), poll_minutes=settings.poll_minutes,
                             names=names, force=force, roles=roles)
    limits = Limits(settings.fetch_connect_timeout_s, settings.fetch_read_timeout_s,
                    settings.fetch_deadline_s, settings.fetch_max_bytes)
    with tqdm(total=len(requests), unit="feed", disable=not show_progress or not requests,
              desc="polling", leave=False) as bar:
        batch, polled = make_batch(poll(requests, limits=limits, workers=settings.fetch_workers,
                                        per_host=settings.fetch_per_host, progress=bar.update))
    staging = staging_lane(settings.data_dir, "cli")
    stage(batch, staging)
    try:
        with open_db(settings.db_path, wait_s=settings.lock_wait_s) as con:
            loads = load_all_staged(con, staging, max_failures=settings.max_failures)
    except DatabaseLocked:
        summary = summarize(polled, [])
        summary.staged_only = staging
        return summary
    return summarize(polled, loads)
