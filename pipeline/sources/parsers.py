"""Parser processes for a poll: forked at the first body, dealt bodies a chunk at a time, each
writing its items into the batch; they die with their parent, so a killed poll leaves none."""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
from pathlib import Path

import pandas as pd

from pipeline.sources.batches import make_batch, parse_outcome, write_parquet
from pipeline.sources.fetch import FetchOutcome

CHUNK_BYTES = 1024 * 1024  # bodies handed to a parser process at a time


class ParserPool:
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
            self.procs = [self.ctx.Process(target=parse_worker, daemon=True, name=f"media-timing-parse-{i}",
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


def can_fork() -> bool:
    # fork is cheap and inherits the imports; elsewhere (macOS, Windows) stay in one process.
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def die_with_parent(parent: int) -> None:
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


def parse_worker(tasks, results, items_path: Path, i: int, parent: int) -> None:
    """A parser process: parse every chunk it is dealt, write the items, report the fetches."""
    die_with_parent(parent)
    try:
        # One items frame at the end (frames cost per call, and nothing here waits on the network).
        batch, polled = make_batch((parse_outcome(o) for chunk in iter(tasks.get, None) for o in chunk),
                                   chunk_items=sys.maxsize)
        if len(batch.items):
            write_parquet(batch.items, items_path)
        results.put((i, len(batch.items) > 0, batch.fetches, [p.outcome for p in polled]))
    except Exception as exc:  # the parent parses this worker's share itself
        results.put((i, f"{type(exc).__name__}: {exc}"))

