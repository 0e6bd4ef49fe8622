"""Backfill from the Internet Archive: an outlet's own feed (or front page) as it was captured.

For each URL: every capture in the range from the CDX server (all statuses, revisits included),
each distinct payload fetched once (`id_` playback, keyed by digest), parsed as a feed (RSS,
Atom, JSON Feed) or, for an HTML page, as its headline links. An item first present in capture
k was added some time in (t_{k-1}, t_k], t_{k-1} being the last good capture before it: that
interval is stored as ``first_seen_lo_utc`` / ``first_seen_utc``, beside the publisher's claimed
time (``published_utc``). A claimed time later than the capture that already held the item is
flagged ``after_first_seen`` and not trusted. Where capture k shares no item with capture k-1
the feed's window may have slid past items no capture saw: its new items are flagged
``window_overflow`` (their lower bound is then not a bound on publication).

Resumable: each capture is written with its ledger row (``wayback_captures``) in one
transaction, in time order, so a killed run resumes at the next capture and a second run adds
nothing. The network is never used while the database is held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from pipeline.errors import UserError
from pipeline.sources import parse_feed
from pipeline.sources.front_page import headline_links
from pipeline.sources.parse_types import NotAFeed, RawEntry
from pipeline.sources.sightings import add_flag, sighted_items, store_sighted
from pipeline.sources.wayback_client import BlockedURL, Capture, WaybackClient, ts14
from pipeline.store import items as store

ATTRIBUTION = "Internet Archive Wayback Machine captures (web.archive.org)"


class BadArchiveURL(UserError):
    pass


@dataclass
class UrlReport:
    url: str
    source: str
    captures: int = 0
    already_done: int = 0
    ok: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    items_new: int = 0
    payloads_fetched: int = 0
    blocked: str | None = None

    def fail(self, reason: str) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + 1


def _ledger(con, url: str, source_id: int) -> dict[str, tuple[str, datetime | None]]:
    return {ts: (outcome, utc) for ts, outcome, utc in con.execute(
        "SELECT capture_ts, outcome, capture_utc FROM wayback_captures WHERE url = ? AND source_id = ?",
        [url, source_id]).fetchall()}


def _record(con, url: str, cap: Capture, outcome: str, source_id: int, reason: str | None = None,
            n_items: int = 0, n_new: int = 0) -> None:
    con.execute("INSERT OR IGNORE INTO wayback_captures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [url, cap.timestamp, cap.original, cap.utc, cap.status, cap.mimetype, cap.digest, outcome,
                 n_items, n_new, reason, source_id, datetime.now(UTC)])


def parse_capture(body: bytes, base_url: str) -> list[RawEntry]:
    """The entries of a captured feed, or the headline links of a captured front page."""
    try:
        return parse_feed.parse_feed(body).entries
    except NotAFeed:
        links = headline_links(body, base_url)
        if not links:
            raise
        return links


def _source_name(url: str, source: str | None) -> str:
    return source or "wayback:" + (urlsplit(url).hostname or url).removeprefix("www.")


def backfill_url(ws, client: WaybackClient, url: str, start: datetime, end: datetime, *,
                 source: str | None = None, role: str = "news") -> UrlReport:
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise BadArchiveURL(f"{url!r} is not an http(s) URL; give the feed's or page's address as it was")
    name = _source_name(url, source)
    rep = UrlReport(url, name)
    with ws.write() as con:
        src = store.ensure_source(con, name, role=role, kind="archive", url=url, attribution=ATTRIBUTION)
    try:
        caps = sorted(client.captures(url, ts14(start), ts14(end)), key=lambda c: c.timestamp)
    except BlockedURL as exc:
        rep.blocked = str(exc)
        return rep
    caps = sorted({c.timestamp: c for c in reversed(caps)}.values(), key=lambda c: c.timestamp)  # repeated rows
    rep.captures = len(caps)
    with ws.read() as con:
        done = _ledger(con, url, src.source_id)
    payloads: dict[str, list[RawEntry] | str] = {}  # digest -> entries, or why it failed
    prev_good: datetime | None = None
    prev_keys: set[str] | None = None
    for cap in caps:
        if cap.timestamp in done:
            rep.already_done += 1
            if done[cap.timestamp][0] == "ok":
                prev_good, prev_keys = done[cap.timestamp][1], None
            continue
        outcome, reason, entries = _classify(client, cap, payloads, rep)
        with ws.write() as con:
            if outcome != "ok" or entries is None:
                _record(con, url, cap, outcome, src.source_id, reason)
                rep.fail(reason or outcome)
                continue
            if not entries:  # an empty feed: a good capture that holds nothing
                _record(con, url, cap, "ok", src.source_id)
                rep.ok += 1
                prev_good, prev_keys = cap.utc, set()
                continue
            frame = sighted_items(entries, [cap.original] * len(entries), source_id=src.source_id,
                                  seen_lo=prev_good, seen_hi=cap.utc,
                                  provenance=f"wayback:{cap.timestamp}:{cap.original}")
            keys = set(frame["dedup_key"])
            if prev_keys and keys and not keys & prev_keys:
                add_flag(frame, "window_overflow")
            new = store_sighted(con, frame) if len(frame) else 0
            _record(con, url, cap, "ok", src.source_id, None, len(frame), new)
        rep.ok += 1
        rep.items_new += new
        prev_good, prev_keys = cap.utc, keys
    return rep


def _classify(client: WaybackClient, cap: Capture, payloads: dict, rep: UrlReport
              ) -> tuple[str, str | None, list[RawEntry] | None]:
    if cap.utc is None:
        return "quarantined", f"impossible capture timestamp {cap.timestamp!r}", None
    if cap.status.startswith("3"):
        return "redirect", f"historical redirect ({cap.status}): query the target URL itself", None
    if cap.status not in ("200", "-"):
        return "failed", f"captured with HTTP status {cap.status}", None
    key = cap.digest or cap.timestamp
    if key not in payloads:
        status, body, served, final = client.payload(cap)
        rep.payloads_fetched += 1
        if status != 200:
            payloads[key] = (f"playback answered {status}" + (f" (to {final})" if status in range(300, 400) else ""))
        elif served and served != cap.timestamp and abs(_ts(served) - cap.utc) > timedelta(hours=1):
            payloads[key] = f"playback served capture {served}, not {cap.timestamp}"
        else:
            try:
                payloads[key] = parse_capture(body, cap.original)
            except NotAFeed as exc:
                payloads[key] = f"not a feed: {exc}"
    got = payloads[key]
    return ("failed", got, None) if isinstance(got, str) else ("ok", None, got)


def _ts(s: str) -> datetime:
    return datetime.strptime(s, "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def backfill_wayback(ws, urls: list[str], start: datetime, end: datetime, *, source: str | None = None,
                     role: str = "news", client: WaybackClient | None = None) -> list[UrlReport]:
    client = client or WaybackClient()
    return [backfill_url(ws, client, u, start, end, source=source, role=role) for u in urls]
