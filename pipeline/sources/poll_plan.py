"""Which feeds to poll now: every polling decision in one pure function, over feed states that
come from the database or, while another process holds it, from the last saved plan.

A poll must not need the database: fetching and staging never touch it, and planning reads it
read-only (alongside analysts) when it can. The states it read are saved beside the staging
folder; when a writer holds the file, the saved states are brought up to date with the fetches
of batches staged but not yet merged, and polling goes on. The merge waits for the lock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.sources.fetch import FeedRequest

BACKOFF_CAP = timedelta(hours=24)
PLAN_FILE = "feed_states.json"
OK_STATUSES = ("ok", "not_modified", "unchanged")


@dataclass(frozen=True)
class FeedState:
    source_id: int
    name: str
    url: str
    role: str
    enabled: bool
    etag: str | None = None
    last_modified: str | None = None
    body_sha256: str | None = None
    last_attempt_utc: datetime | None = None
    consecutive_failures: int = 0
    retry_after_utc: datetime | None = None
    poll_minutes: int | None = None


def read_states(con) -> list[FeedState]:
    rows = con.execute(
        """SELECT source_id, name, url, role, enabled, etag, last_modified, body_sha256, last_attempt_utc,
                  consecutive_failures, retry_after_utc, poll_minutes
           FROM v_feed_health ORDER BY name""").fetchall()
    return [FeedState(*r) for r in rows]


def due(states: Iterable[FeedState], *, now: datetime, poll_minutes: int,
        names: Iterable[str] | None = None, force: bool = False,
        roles: Iterable[str] | None = None) -> list[FeedRequest]:
    """Enabled feeds whose next poll is due, with the validators for a conditional GET.

    Next poll = last attempt + interval × 2^consecutive failures (capped at a day), and never
    before a server's Retry-After. ``force`` polls every enabled (or named) feed now.
    """
    wanted = set(names) if names else None
    roles = set(roles) if roles is not None else None
    out = []
    for s in states:
        if not s.enabled or (roles is not None and s.role not in roles):
            continue
        if wanted is not None and s.name not in wanted:
            continue
        if not force and s.last_attempt_utc is not None:
            every = timedelta(minutes=s.poll_minutes or poll_minutes)
            when = s.last_attempt_utc + min(every * (2 ** min(s.consecutive_failures, 10)), BACKOFF_CAP)
            if s.retry_after_utc is not None and s.retry_after_utc > when:
                when = s.retry_after_utc
            if when > now:
                continue
        out.append(FeedRequest(s.source_id, s.name, s.url, s.etag, s.last_modified, s.body_sha256))
    return out


# --- the saved plan --------------------------------------------------------------------------

def _encode(state: FeedState) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(state).items()}


def _decode(doc: dict) -> FeedState:
    times = ("last_attempt_utc", "retry_after_utc")
    return FeedState(**{k: (datetime.fromisoformat(v) if k in times and v else v) for k, v in doc.items()})


def save_states(staging_root: Path, states: list[FeedState], *, read_utc: datetime) -> None:
    """Atomically: a half-written plan never replaces a whole one."""
    staging_root.mkdir(parents=True, exist_ok=True)
    tmp = staging_root / (PLAN_FILE + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"read_utc": read_utc.isoformat(), "feeds": [_encode(s) for s in states]}))
    os.replace(tmp, staging_root / PLAN_FILE)


def load_states(staging_root: Path) -> tuple[list[FeedState], datetime] | None:
    try:
        doc = json.loads((staging_root / PLAN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return [_decode(d) for d in doc["feeds"]], datetime.fromisoformat(doc["read_utc"])


def apply_fetches(states: list[FeedState], fetches: list[dict]) -> list[FeedState]:
    """The states as they will be once these fetches (staged, not yet merged) are: attempts,
    validators, failures in a row, Retry-After."""
    by_id = {s.source_id: s for s in states}
    for f in sorted(fetches, key=lambda f: f["started_utc"]):
        s = by_id.get(f["source_id"])
        if s is None or (s.last_attempt_utc is not None and f["started_utc"] <= s.last_attempt_utc):
            continue
        if f["status"] in OK_STATUSES:
            s = replace(s, last_attempt_utc=f["started_utc"], consecutive_failures=0,
                        etag=f.get("etag") or s.etag, last_modified=f.get("last_modified") or s.last_modified,
                        body_sha256=f.get("body_sha256") or s.body_sha256, retry_after_utc=f.get("retry_after_utc"))
        else:
            s = replace(s, last_attempt_utc=f["started_utc"], consecutive_failures=s.consecutive_failures + 1,
                        retry_after_utc=f.get("retry_after_utc"))
        by_id[s.source_id] = s
    return [by_id[s.source_id] for s in states]
