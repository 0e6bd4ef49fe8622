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
import multiprocessing
import os
import queue
import shutil
import signal
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from . import parse_feed, poll_plan, store
from .database import query_one, transaction
from .fetch import FeedRequest, FetchOutcome, Limits, fetch_all, host_of
from .store import ITEM_COLUMNS

FETCH_COLUMNS = ["fetch_key", "source_id", "started_utc", "status", "http_status", "url", "final_url",
                 "bytes", "latency_ms", "etag", "last_modified", "body_sha256", "parser", "bozo",
                 "bozo_reason", "items_total", "retry_after_utc", "error"]
SUCCESS_MARK = "_SUCCESS"
ABANDONED_AFTER = timedelta(days=1)  # an unfinished batch directory this old was abandoned


# --- plan ------------------------------------------------------------------------------------

PLAN_WAIT_S = 5.0  # how long planning waits for a writer before polling from the saved plan


def due_feeds(con: duckdb.DuckDBPyConnection, *, now: datetime, poll_minutes: int,
              names: Iterable[str] | None = None, force: bool = False,
              roles: Iterable[str] | None = None) -> list[FeedRequest]:
    """The feeds due now, as the database says (see ``poll_plan.due``)."""
    return poll_plan.due(poll_plan.read_states(con), now=now, poll_minutes=poll_minutes, names=names,
                         force=force, roles=roles)


def staged_fetches(staging_root: Path) -> list[dict]:
    """The fetch rows of every batch staged (in any lane) and not merged yet."""
    files = [d / "fetches.parquet" for lane in (staging_root.iterdir() if staging_root.exists() else [])
             if lane.is_dir() for d in staged_dirs(lane) if (d / "fetches.parquet").exists()]
    if not files:
        return []
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        paths = ", ".join(f"'{f}'" for f in files)
        rel = con.execute(f"""SELECT source_id, started_utc, status, etag, last_modified, body_sha256,
                                     retry_after_utc FROM read_parquet([{paths}], union_by_name = true)""")
        cols = [d[0] for d in rel.description]
        return [dict(zip(cols, row)) for row in rel.fetchall()]
    finally:
        con.close()


def plan_poll(settings, *, names: Iterable[str] | None = None, force: bool = False,
              roles: Iterable[str] | None = None) -> tuple[list[FeedRequest], str | None]:
    """The feeds to poll now, and a note when they come from the saved plan (the database was
    held by a writer): polling never waits on the write lock."""
    from .database import DatabaseLocked
    from .feeds import RegistryError
    from .workspace import Workspace

    root, now = settings.data_dir / "staging", datetime.now(UTC)
    ws = Workspace(replace(settings, lock_wait_s=min(settings.lock_wait_s, PLAN_WAIT_S)))
    note = None
    try:
        with ws.ensure() as con:
            states = poll_plan.read_states(con)
        poll_plan.save_states(root, states, read_utc=now)
    except DatabaseLocked:
        saved = poll_plan.load_states(root)
        if saved is None:
            raise DatabaseLocked(f"{settings.db_path} is held by another process and there is no saved "
                                 f"plan in {root} to poll from yet; try again when it is free") from None
        states, read_utc = saved
        states = poll_plan.apply_fetches(states, staged_fetches(root))
        note = (f"the database is held by another process: polled from the plan saved at "
                f"{read_utc:%Y-%m-%d %H:%M} UTC and the batches staged since")
    if names:
        unknown = sorted(set(names) - {s.name for s in states})
        if unknown:
            raise RegistryError(f"no feed named {', '.join(map(repr, unknown))}; see `media-timing feeds list`")
    return poll_plan.due(states, now=now, poll_minutes=settings.poll_minutes, names=names, force=force,
                         roles=roles), note


def fetch_limits(settings) -> Limits:
    from .fetch import parse_networks

    return Limits(settings.fetch_connect_timeout_s, settings.fetch_read_timeout_s, settings.fetch_deadline_s,
                  settings.fetch_max_bytes, parse_networks(settings.fetch_allow_networks))


def save_plan(con, data_dir: Path) -> None:
    """After a merge: the plan polls start from while a writer holds the database."""
    poll_plan.save_states(data_dir / "staging", poll_plan.read_states(con), read_utc=datetime.now(UTC))


def shard_by_host(requests: list[FeedRequest], shards: int) -> list[list[FeedRequest]]:
    """Split feeds into at most ``shards`` groups, keeping each host's feeds together (so a
    host's politeness limit holds across parallel fetch tasks)."""
    by_host: dict[str, list[FeedRequest]] = defaultdict(list)
    for r in requests:
        by_host[host_of(r.url)].append(r)
    groups: list[list[FeedRequest]] = [[] for _ in range(max(1, min(shards, len(by_host))))]
    for host_feeds in sorted(by_host.values(), key=len, reverse=True):
        min(groups, key=len).extend(host_feeds)
    return [g for g in groups if g]


# --- fetch and parse -------------------------------------------------------------------------

@dataclass
class Polled:
    outcome: FetchOutcome
    feed: parse_feed.ParsedFeed | None = None


def _parse(out: FetchOutcome) -> Polled:
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


def poll(requests: list[FeedRequest], *, limits: Limits, workers: int, per_host: int,
         progress: Callable[[int], None] | None = None) -> Iterator[Polled]:
    """Fetch every feed and parse each body as it arrives, yielding them as they complete: at
    most ``workers`` transfers in flight, ``per_host`` per host. The transfers run on in the
    background while this thread parses, and while the caller works on what was yielded."""
    for out in fetch_all(requests, limits, workers=workers, per_host=per_host):
        if progress:
            progress(1)
        yield _parse(out)


PARALLEL_MIN_FEEDS = 16  # below this, forking parser processes costs more than it saves
CHUNK_BYTES = 1024 * 1024  # bodies handed to a parser process at a time


def fetch_and_stage(requests: list[FeedRequest], staging: Path, *, limits: Limits, workers: int,
                    per_host: int, processes: int = 1,
                    progress: Callable[[int], None] | None = None) -> tuple[Path, list[FetchOutcome]]:
    """Poll, parse and stage every feed as one batch: its directory, and the outcomes.

    Parsing is CPU-bound Python, so one process would use one core. With ``processes`` > 1
    this process only fetches, and deals the bodies out, about a megabyte at a time, to that
    many parser processes, forked when the first body arrives; each writes its items to the
    batch directory as one file (items-<n>.parquet) and sends back its fetch rows. Unchanged
    feeds (304s, same hash) have nothing to parse and never leave this process. If a parser
    process dies (the OOM killer, say), the others are stopped, their files dropped, and every
    body not reported back is parsed here: nothing is lost.
    """
    if processes < 2 or len(requests) < PARALLEL_MIN_FEEDS or not _can_fork():
        batch, polled = make_batch(poll(requests, limits=limits, workers=workers, per_host=per_host,
                                        progress=progress))
        return stage(batch, staging), [p.outcome for p in polled]

    batch_id = uuid.uuid4().hex
    target = staging / batch_id
    target.mkdir(parents=True, exist_ok=True)
    parsers = _Parsers(processes, target)
    kept: list[FetchOutcome] = []
    try:
        # The transfers advance in this thread (background=False), so when the first body
        # arrives and the parsers are forked, this process has one thread (the queue's feeder
        # thread starts with the first put, after the fork). A poll of unchanged feeds forks none.
        for out in fetch_all(requests, limits, workers=workers, per_host=per_host, background=False):
            if progress:
                progress(1)
            if out.status == "fetched":
                parsers.deal(out)
            else:
                kept.append(out)
        reports = parsers.finish()
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # nothing of this poll was recorded: poll again
        raise
    finally:
        parsers.stop()
    parsers.drop_unreported(reports)
    returned = [o for _, _, outcomes in reports.values() for o in outcomes]
    done = {o.fetch_key for o in returned}
    kept += [o for k, o in parsers.sent.items() if k not in done]  # a parser died: parse here
    here, polled = make_batch(_parse(o) for o in kept)
    fetches = pd.concat([here.fetches, *(f for _, f, _ in reports.values())], ignore_index=True)
    with_items = any(has for has, _, _ in reports.values())
    stage(Batch(batch_id, fetches, here.items), staging, items=len(here.items) > 0 or not with_items)
    return target, [p.outcome for p in polled] + returned


class _Parsers:
    """Parser processes, forked at the first body, dealt bodies a chunk at a time through a
    queue; each writes items-<n>.parquet into the batch and reports its fetch rows."""

    def __init__(self, processes: int, target: Path):
        self.n, self.target = processes, target
        ctx = multiprocessing.get_context("fork")
        self.ctx, self.tasks, self.results = ctx, ctx.Queue(), ctx.Queue()
        self.procs: list = []
        self.sent: dict[str, FetchOutcome] = {}  # kept, bodies and all, until the reports are in
        self.chunk: list[FetchOutcome] = []
        self.size = 0

    def deal(self, out: FetchOutcome) -> None:
        if not self.procs:
            self.procs = [self.ctx.Process(target=_parse_worker, daemon=True, name=f"media-timing-parse-{i}",
                                           args=(self.tasks, self.results, self.target / f"items-{i}.parquet", i,
                                                 os.getpid()))
                          for i in range(self.n)]
            for p in self.procs:
                p.start()
        self.sent[out.fetch_key] = out
        self.chunk.append(out)
        self.size += out.bytes
        if self.size >= CHUNK_BYTES:
            self.tasks.put(self.chunk)
            self.chunk, self.size = [], 0

    def finish(self) -> dict[int, tuple[bool, pd.DataFrame, list[FetchOutcome]]]:
        """Every parser's report; stops early (with what arrived) if one died or failed."""
        if not self.procs:
            return {}
        if self.chunk:
            self.tasks.put(self.chunk)
        for _ in self.procs:
            self.tasks.put(None)
        reports: dict[int, tuple[bool, pd.DataFrame, list[FetchOutcome]]] = {}
        while len(reports) < len(self.procs):
            try:
                got = self.results.get(timeout=0.5)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in self.procs):
                    break
                continue
            if len(got) == 2:  # (i, error)
                break
            reports[got[0]] = got[1:]
        return reports

    def drop_unreported(self, reports: dict) -> None:
        """Remove the files of parsers that did not report (once all are stopped)."""
        for i in range(len(self.procs)):
            if i not in reports:
                (self.target / f"items-{i}.parquet").unlink(missing_ok=True)

    def stop(self) -> None:
        self.tasks.cancel_join_thread()  # chunks a dead parser never took must not block our exit
        for p in self.procs:
            if p.is_alive():
                p.terminate()
            p.join()


def _can_fork() -> bool:
    # fork is cheap and inherits the imports; elsewhere (macOS, Windows) stay in one process.
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _die_with_parent(parent: int) -> None:
    """A parser must not outlive the poll that forked it (a killed `ingest feeds` would leave
    processes of 100-200 MB waiting on a queue nobody writes to): ask Linux to kill it when its
    parent dies, and leave at once if that has happened already."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _parse_worker(tasks, results, items_path: Path, i: int, parent: int) -> None:
    """A parser process: parse every chunk it is dealt, write the items, report the fetches."""
    _die_with_parent(parent)
    try:
        # One items frame at the end (frames cost per call, and nothing here waits on the network).
        batch, polled = make_batch((_parse(o) for chunk in iter(tasks.get, None) for o in chunk),
                                   chunk_items=sys.maxsize)
        if len(batch.items):
            _write_parquet(batch.items, items_path)
        results.put((i, len(batch.items) > 0, batch.fetches, [p.outcome for p in polled]))
    except Exception as exc:  # the parent parses this worker's share itself
        results.put((i, f"{type(exc).__name__}: {exc}"))


# --- batch -----------------------------------------------------------------------------------

@dataclass
class Batch:
    batch_id: str
    fetches: pd.DataFrame
    items: pd.DataFrame


def _dedup_keys(items: pd.DataFrame) -> pd.Series:
    """guid, else normalised URL, else a hash of title, raw date and summary."""
    keys = ("guid:" + items["guid"]).fillna("url:" + items["url_normalized"])
    need = keys.isna()
    if need.any():  # hash only where neither guid nor URL identifies the item
        rest = items.loc[need]
        fallback = (rest["title"].fillna("") + "\x1f" + rest["published_raw"].fillna("").astype(str)
                    + "\x1f" + rest["summary"].fillna(""))
        keys = keys.fillna("title:" + fallback.map(lambda s: hashlib.sha1(s.encode()).hexdigest()))
    return keys


def _fetch_row(p: Polled) -> dict:
    o, feed = p.outcome, p.feed
    return {
        "fetch_key": o.fetch_key, "source_id": o.request.source_id, "started_utc": o.started_utc,
        "status": o.status, "http_status": o.http_status, "url": o.request.url,
        "final_url": o.final_url, "bytes": o.bytes, "latency_ms": o.latency_ms, "etag": o.etag,
        "last_modified": o.last_modified,
        # A failed fetch must not move the conditional state forward.
        "body_sha256": o.body_sha256 if o.status in ("ok", "unchanged", "not_modified") else None,
        "parser": feed.parser if feed else None, "bozo": feed.bozo if feed else None,
        "bozo_reason": feed.bozo_reason if feed else None,
        "items_total": len(feed.entries) if feed else None,
        "retry_after_utc": o.retry_after_utc, "error": o.error,
    }


def _items(polled: list[Polled]) -> pd.DataFrame | None:
    """The items of several parsed feeds as one frame (dates parsed vectorised over all)."""
    entries, bases, seen, keys, sources = [], [], [], [], []
    for p in polled:
        o, feed = p.outcome, p.feed
        if feed and feed.entries:
            n = len(feed.entries)
            entries.extend(feed.entries)
            bases.extend([o.final_url or o.request.url] * n)
            seen.extend([o.started_utc] * n)
            keys.extend([o.fetch_key] * n)
            sources.extend([o.request.source_id] * n)
    if not entries:
        return None
    f = parse_feed.items_frame(entries, bases, pd.Series(seen))
    f.insert(0, "fetch_key", keys)
    f.insert(1, "source_id", sources)
    f.insert(2, "dedup_key", _dedup_keys(f))
    f["provenance"] = None
    return f


def make_batch(polled: Iterable[Polled], chunk_items: int = 5000) -> tuple[Batch, list[Polled]]:
    """One frame of fetch rows and one of items for everything polled (and the polled list).

    Item frames are built every ``chunk_items`` entries while ``polled`` is still producing,
    so with a live poll the frame work overlaps the network wait.
    """
    done, rows, frames, pending, n = [], [], [], [], 0
    for p in polled:
        done.append(p)
        rows.append(_fetch_row(p))
        pending.append(p)
        n += len(p.feed.entries) if p.feed else 0
        if n >= chunk_items:
            frames.append(_items(pending))
            pending, n = [], 0
    frames.append(_items(pending))
    frames = [f for f in frames if f is not None]
    fetches = pd.DataFrame(rows, columns=FETCH_COLUMNS)
    fetches["started_utc"] = pd.to_datetime(fetches["started_utc"], utc=True)
    fetches["retry_after_utc"] = pd.to_datetime(fetches["retry_after_utc"], utc=True)
    items = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["fetch_key", *ITEM_COLUMNS])
    return Batch(uuid.uuid4().hex, fetches, items), done


# --- stage -----------------------------------------------------------------------------------

def stage(batch: Batch, root: Path, *, items: bool = True) -> Path:
    """Write the batch as Parquet under root/<batch_id>/; the _SUCCESS mark is written last.
    ``items=False`` when its items are already there, written by parser processes."""
    target = root / batch.batch_id
    target.mkdir(parents=True, exist_ok=True)
    _write_parquet(batch.fetches, target / "fetches.parquet")
    if items:
        _write_parquet(batch.items, target / "items.parquet")
    (target / SUCCESS_MARK).write_text(batch.batch_id)
    return target


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    con = duckdb.connect()  # in memory: staging never touches the database file
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("frame", frame)
        con.execute(f"COPY (SELECT * FROM frame) TO '{path}' (FORMAT parquet)")
    finally:
        con.close()


def staged_dirs(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted((d for d in root.iterdir() if (d / SUCCESS_MARK).exists()), key=lambda d: d.stat().st_mtime)


def drop_abandoned(root: Path, older_than: timedelta = ABANDONED_AFTER) -> list[Path]:
    """Remove batch directories never completed (no _SUCCESS) and untouched for a day: what a
    killed poll leaves. Nothing in them was recorded, so the feeds are simply polled again."""
    if not root.exists():
        return []
    cutoff = datetime.now(UTC).timestamp() - older_than.total_seconds()
    dropped = [d for d in root.iterdir()
               if d.is_dir() and not (d / SUCCESS_MARK).exists() and d.stat().st_mtime < cutoff]
    for d in dropped:
        shutil.rmtree(d, ignore_errors=True)
    return dropped


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
    """Merge one staged batch in one transaction, recorded in staged_batches so that merging it
    twice adds nothing, then remove its files."""
    res = LoadResult(directory.name)
    if query_one(con, "SELECT 1 FROM staged_batches WHERE batch_id = ?", [res.batch_id]):
        res.already_loaded = True
    else:
        # Checkpoint at commit rather than at close: cheaper for a large batch (about 0.03 s of
        # 0.43 s for 26,000 items), and the file is complete when the transaction ends.
        con.execute("SET checkpoint_threshold = '1KB'")
        try:
            with transaction(con):
                _load(con, f"read_parquet('{directory / 'fetches.parquet'}')",
                      sorted(directory.glob("items*.parquet")), res)
                res.disabled = _disable_failing(con, max_failures)
                con.execute("INSERT INTO staged_batches VALUES (?, ?, ?, ?)",
                            [res.batch_id, datetime.now(UTC), res.fetches, res.items_new])
        finally:
            con.execute("RESET checkpoint_threshold")
    shutil.rmtree(directory, ignore_errors=True)
    return res


def _load(con, fetches_src: str, item_files: list[Path], res: LoadResult) -> None:
    """One batch: its fetch rows, its items through the one item writer, every sighting."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE staged_fetches AS SELECT * FROM {fetches_src}")
    if item_files:
        # A feed that lists an item twice keeps its first listing; across the batch the first
        # sighting (earliest fetch) wins, which is what _order says.
        paths = ", ".join(f"'{f}'" for f in item_files)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE staged_items AS
            SELECT * EXCLUDE (filename, file_row_number),
                   row_number() OVER (ORDER BY first_seen_utc, fetch_key, filename, file_row_number) AS _order
            FROM read_parquet([{paths}], union_by_name = true, filename = true, file_row_number = true)
            QUALIFY row_number() OVER (PARTITION BY fetch_key, dedup_key ORDER BY filename, file_row_number) = 1""")
        store.plan_items(con, "(SELECT * EXCLUDE (fetch_key) FROM staged_items)")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE staged_items (fetch_key VARCHAR, source_id INTEGER, "
                    "dedup_key VARCHAR, _order BIGINT)")
        con.execute("CREATE OR REPLACE TEMP TABLE mt_new (_order BIGINT)")
    cols = ", ".join(FETCH_COLUMNS)
    (res.fetches,) = query_one(con, f"""
        INSERT INTO fetches ({cols}, items_new, items_seen)
        SELECT {", ".join("f." + c for c in FETCH_COLUMNS)},
               CASE WHEN f.items_total IS NULL THEN NULL ELSE coalesce(n.k, 0) END,
               CASE WHEN f.items_total IS NULL THEN NULL ELSE coalesce(a.k, 0) - coalesce(n.k, 0) END
        FROM staged_fetches f
        LEFT JOIN (SELECT s.fetch_key, count(*) AS k FROM staged_items s JOIN mt_new USING (_order) GROUP BY ALL) n
               USING (fetch_key)
        LEFT JOIN (SELECT fetch_key, count(*) AS k FROM staged_items GROUP BY ALL) a USING (fetch_key)
        WHERE f.fetch_key NOT IN (SELECT fetch_key FROM fetches WHERE fetch_key IS NOT NULL)""")
    if item_files:  # provenance names the fetch row, which exists now
        res.items_new = store.store_planned(con, """(SELECT s.* EXCLUDE (provenance, fetch_key),
                                                            'fetch:' || f.fetch_id AS provenance
                                                     FROM staged_items s JOIN fetches f ON f.fetch_key = s.fetch_key)""")
    else:
        con.execute("DROP TABLE mt_new")
    (sightings,) = query_one(con, """
        INSERT OR IGNORE INTO item_sightings (item_id, fetch_id, seen_utc)
        SELECT i.item_id, f.fetch_id, f.started_utc
        FROM staged_items s
        JOIN fetches f USING (fetch_key)
        JOIN items i ON i.source_id = s.source_id AND i.dedup_key = s.dedup_key""")
    res.items_seen = sightings - res.items_new
    for t in ("staged_items", "staged_fetches"):
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
    """Merge the staged batches in root, oldest first (and clear away abandoned ones)."""
    drop_abandoned(root)
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
    note: str | None = None  # e.g. planned from the saved plan while the database was held

    def line(self) -> str:
        text = (f"{self.feeds} feeds polled: {self.ok} ok, {self.not_modified} not modified, "
                f"{self.failed} failed; items: {self.items_new} new, {self.items_seen} seen before")
        if self.disabled:
            text += f"; disabled: {', '.join(self.disabled)}"
        return text


def summarize(outcomes: list[FetchOutcome], loads: list[LoadResult]) -> Summary:
    s = Summary(feeds=len(outcomes))
    for o in outcomes:
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
    """Plan, poll, stage, merge. Planning never waits on the write lock (``plan_poll``); if the
    database stays locked past the wait at merge time, the batch is left staged
    (``Summary.staged_only``) and the next run or `media-timing ingest load` merges it."""
    from tqdm import tqdm

    from .database import DatabaseLocked, open_db
    from .errors import writable_folder

    staging = writable_folder(staging_lane(settings.data_dir, "cli"), "staging folder", "MEDIA_TIMING_DATA_DIR")
    requests, note = plan_poll(settings, names=names, force=force, roles=roles)
    limits = fetch_limits(settings)
    tqdm.monitor_interval = 0  # no monitor thread: fetch_and_stage forks parser processes
    with tqdm(total=len(requests), unit="feed", disable=not show_progress or not requests,
              desc="polling", leave=False) as bar:
        _, outcomes = fetch_and_stage(requests, staging, limits=limits, workers=settings.fetch_workers,
                                      per_host=settings.fetch_per_host,
                                      processes=settings.fetch_processes, progress=bar.update)
    try:
        with open_db(settings.db_path, wait_s=settings.lock_wait_s) as con:
            loads = load_all_staged(con, staging, max_failures=settings.max_failures)
            save_plan(con, settings.data_dir)
    except DatabaseLocked:
        summary = summarize(outcomes, [])
        summary.staged_only = staging
        summary.note = note
        return summary
    summary = summarize(outcomes, loads)
    summary.note = note
    return summary
