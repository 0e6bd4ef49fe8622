"""A poll as a batch: each fetch parsed, the fetch rows and items as frames, staged to a
batch directory as Parquet (`staging/<lane>/<batch>/`, complete once `_SUCCESS` is written),
listed oldest first, and cleared when abandoned."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.sources import parse_feed
from pipeline.sources.fetch import FetchOutcome
from pipeline.store.items import ITEM_COLUMNS

FETCH_COLUMNS = ["fetch_key", "source_id", "started_utc", "status", "http_status", "url", "final_url",
                 "bytes", "latency_ms", "etag", "last_modified", "body_sha256", "parser", "bozo",
                 "bozo_reason", "items_total", "retry_after_utc", "error"]


SUCCESS_MARK = "_SUCCESS"


ABANDONED_AFTER = timedelta(days=1)  # an unfinished batch directory this old was abandoned


@dataclass
class Polled:
    outcome: FetchOutcome
    feed: parse_feed.ParsedFeed | None = None


def parse_outcome(out: FetchOutcome) -> Polled:
    """The fetch parsed: a new outcome (ok, not_a_feed, or failed when the document was cut
    short) without its body, beside the feed; the fetch record itself is left as fetched."""
    if out.status != "fetched":
        return Polled(replace(out, body=None))
    try:
        feed = parse_feed.parse_feed(out.body, out.headers)
    except parse_feed.NotAFeed as exc:
        return Polled(replace(out, body=None, status="not_a_feed", error=str(exc)))
    if feed.truncated and not out.complete_length:
        return Polled(replace(out, body=None, status="failed",
                              error="body ended early: the connection closed before the document was complete"))
    return Polled(replace(out, body=None, status="ok"), feed)


@dataclass
class Batch:
    batch_id: str
    fetches: pd.DataFrame
    items: pd.DataFrame


def dedup_keys(items: pd.DataFrame) -> pd.Series:
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
    f.insert(2, "dedup_key", dedup_keys(f))
    f["provenance"] = None
    return f


def poll_batch_id(poll_id: str) -> str:
    """The batch id of one poll, the same for every attempt at it (an Airflow retry, or the
    orphaned first attempt of a worker whose process group died): its batch and its fetch rows
    then merge once, whichever attempt stages first."""
    return hashlib.sha256(poll_id.encode()).hexdigest()[:32]


def repair_batch_id(poll_id: str) -> str:
    """The batch id under which a later attempt at a poll stages the feeds an earlier attempt's
    kept batch failed on (one per poll: the first attempt to stage it wins, as for the poll)."""
    return poll_batch_id(f"{poll_id}/repair")


def is_staged(folder: Path) -> bool:
    """A batch folder is complete once its mark is written (the mark is written last)."""
    return (folder / SUCCESS_MARK).exists()


def staged_fetches(folder: Path) -> pd.DataFrame:
    """The fetch rows of a staged batch."""
    con = duckdb.connect()  # in memory, as staging is written
    try:
        return con.execute(f"SELECT * FROM read_parquet('{folder / 'fetches.parquet'}')").df()
    finally:
        con.close()


def failed_feeds(fetches: pd.DataFrame, askable_at: datetime | None = None) -> set[int]:
    """The feeds whose fetch failed; with ``askable_at``, only those that may be asked again
    then (not those whose server said when to come back: Retry-After still running)."""
    failed = fetches["status"] == "failed"
    if askable_at is not None:
        after = pd.to_datetime(fetches["retry_after_utc"], utc=True)
        failed &= after.isna() | (after <= pd.Timestamp(askable_at))
    return set(fetches.loc[failed, "source_id"].astype(int))


def subset(batch: Batch, source_ids: set[int], batch_id: str) -> Batch:
    """The fetches and items of some feeds of a batch, as a batch of their own: each fetch key
    derived from the new batch id, as make_batch derives them."""
    def rekey(frame: pd.DataFrame) -> pd.DataFrame:
        part = frame.loc[frame["source_id"].astype(int).isin(source_ids)].copy()
        part["fetch_key"] = batch_id + "-" + part["source_id"].astype(int).astype(str)
        return part.reset_index(drop=True)
    return Batch(batch_id, rekey(batch.fetches), rekey(batch.items))


def make_batch(polled: Iterable[Polled], chunk_items: int = 5000,
               batch_id: str | None = None) -> tuple[Batch, list[Polled]]:
    """One frame of fetch rows and one of items for everything polled (and the polled list).

    Item frames are built every ``chunk_items`` entries while ``polled`` is still producing,
    so with a live poll the frame work overlaps the network wait. With ``batch_id`` (see
    ``poll_batch_id``) each fetch's key is derived from it and the feed, so two attempts at one
    poll record one fetch per feed.
    """
    done, rows, frames, pending, n = [], [], [], [], 0
    for p in polled:
        if batch_id:
            p = Polled(replace(p.outcome, fetch_key=f"{batch_id}-{p.outcome.request.source_id}"), p.feed)
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
    return Batch(batch_id or uuid.uuid4().hex, fetches, items), done


def stage(batch: Batch, root: Path, *, items: bool = True) -> Path:
    """Write the batch as Parquet under root/<batch_id>/; the _SUCCESS mark is written last.
    ``items=False`` when its items are already there, written by parser processes.

    A batch whose folder does not exist yet is written in a hidden folder and renamed into place
    in one step: if another attempt at the same poll staged first, that batch stays and this one
    is dropped. A folder that exists without the mark is this poll's own, being filled by its
    parser processes: the rest is written into it."""
    target = root / batch.batch_id
    if target.exists():
        if not is_staged(target):
            _write_batch(batch, target, items)
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{batch.batch_id}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        _write_batch(batch, tmp, items)
        try:
            os.rename(tmp, target)
        except OSError:  # another attempt renamed its batch into place just now
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_batch(batch: Batch, folder: Path, items: bool) -> None:
    write_parquet(batch.fetches, folder / "fetches.parquet")
    if items:
        write_parquet(batch.items, folder / "items.parquet")
    (folder / SUCCESS_MARK).write_text(batch.batch_id)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
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
    return sorted((d for d in root.iterdir() if not d.name.startswith(".") and is_staged(d)),
                  key=lambda d: d.stat().st_mtime)


def drop_abandoned(root: Path, older_than: timedelta = ABANDONED_AFTER) -> list[Path]:
    """Remove batch directories never completed (no _SUCCESS) and untouched for a day: what a
    killed poll leaves. Nothing in them was recorded, so the feeds are simply polled again."""
    if not root.exists():
        return []
    cutoff = datetime.now(UTC).timestamp() - older_than.total_seconds()
    dropped = [d for d in root.iterdir()
               if d.is_dir() and (d.name.startswith(".") or not is_staged(d))
               and d.stat().st_mtime < cutoff]
    for d in dropped:
        shutil.rmtree(d, ignore_errors=True)
    return dropped


def staging_lane(data_dir: Path, lane: str) -> Path:
    if not lane.isidentifier():
        raise ValueError(f"staging lane must be a plain name, not {lane!r}")
    return data_dir / "staging" / lane

