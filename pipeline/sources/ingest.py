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

import shutil
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.sources import poll_plan
from pipeline.sources.addresses import host_of
from pipeline.sources.batches import (
    Batch,
    Polled,
    make_batch,
    parse_outcome,
    stage,
    staged_dirs,
    staging_lane,
)
from pipeline.sources.fetch import FeedRequest, FetchOutcome, Limits, fetch_all
from pipeline.sources.merge import LoadResult, load_all_staged
from pipeline.sources.parsers import ParserPool, can_fork

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
    from pipeline.sources.feeds import RegistryError
    from pipeline.store.database import DatabaseLocked
    from pipeline.store.workspace import Workspace

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
    from pipeline.sources.addresses import parse_networks

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


def poll(requests: list[FeedRequest], *, limits: Limits, workers: int, per_host: int,
         progress: Callable[[int], None] | None = None) -> Iterator[Polled]:
    """Fetch every feed and parse each body as it arrives, yielding them as they complete: at
    most ``workers`` transfers in flight, ``per_host`` per host. The transfers run on in the
    background while this thread parses, and while the caller works on what was yielded."""
    for out in fetch_all(requests, limits, workers=workers, per_host=per_host):
        if progress:
            progress(1)
        yield parse_outcome(out)


PARALLEL_MIN_FEEDS = 16  # below this, forking parser processes costs more than it saves


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
    if processes < 2 or len(requests) < PARALLEL_MIN_FEEDS or not can_fork():
        batch, polled = make_batch(poll(requests, limits=limits, workers=workers, per_host=per_host,
                                        progress=progress))
        return stage(batch, staging), [p.outcome for p in polled]

    batch_id = uuid.uuid4().hex
    target = staging / batch_id
    target.mkdir(parents=True, exist_ok=True)
    parsers = ParserPool(processes, target)
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
    here, polled = make_batch(parse_outcome(o) for o in kept)
    fetches = pd.concat([here.fetches, *(f for _, f, _ in reports.values())], ignore_index=True)
    with_items = any(has for has, _, _ in reports.values())
    stage(Batch(batch_id, fetches, here.items), staging, items=len(here.items) > 0 or not with_items)
    return target, [p.outcome for p in polled] + returned


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


def run_ingest(settings, *, names: Iterable[str] | None = None, force: bool = False,
               show_progress: bool = True, roles: Iterable[str] | None = None) -> Summary:
    """Plan, poll, stage, merge. Planning never waits on the write lock (``plan_poll``); if the
    database stays locked past the wait at merge time, the batch is left staged
    (``Summary.staged_only``) and the next run or `media-timing ingest load` merges it."""
    from tqdm import tqdm

    from pipeline.errors import writable_folder
    from pipeline.store.database import DatabaseLocked
    from pipeline.store.workspace import Workspace

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
        with Workspace(settings).write() as con:
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

