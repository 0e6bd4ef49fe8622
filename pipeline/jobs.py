"""The steps the DAGs schedule, as plain functions: plain values in, JSON-able dicts out.

Each job reads settings from the environment (pipeline.config) and opens the database only for
as long as it needs it. Jobs that fetch never open it; jobs that write do so in one short
transaction and raise ``DatabaseLocked`` when another process holds the file past the wait,
which the DAGs' retry policy turns into a later retry.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import load_settings
from pipeline.errors import writable_folder
from pipeline.sources import batches, ingest, merge
from pipeline.sources.fetch import FeedRequest
from pipeline.store.workspace import Workspace

NEWS_ROLES = ("news", "announcement")
RELEASE_ROLES = ("release",)


def plan_feed_shards(roles=NEWS_ROLES, shards: int = 8, force: bool = False) -> list[list[dict]]:
    """Due feeds of the given roles, in at most ``shards`` groups that keep each host together.
    Never waits on the write lock: see ``ingest.plan_poll``."""
    due, note = ingest.plan_poll(load_settings(), roles=roles, force=force)
    if note:
        print(note)
    return [[asdict(r) for r in group] for group in ingest.shard_by_host(due, shards)]


def fetch_shard(shard: list[dict], lane: str = "news", poll_id: str | None = None) -> dict:
    """Fetch and parse one shard and stage it in its lane on disk. Never touches the database.

    ``poll_id`` names the poll across attempts (the DAG run and map index): every attempt stages
    under the same batch id with the same fetch keys, so a retry that finds its predecessor's
    batch staged and not yet merged reuses it instead of polling again, and an orphaned attempt
    that stages after the retry's batch was merged adds nothing (merge skips a loaded batch).
    A retry never settles for its predecessor's failures, though (that attempt may have failed
    for being cut off from the network, which is why there is a retry): the feeds that failed in
    the kept batch are polled again, or taken from this attempt's own poll if it has them, and
    staged once as the poll's repair batch."""
    s = load_settings()
    lane_dir = writable_folder(batches.staging_lane(s.data_dir, lane), "staging folder", "MEDIA_TIMING_DATA_DIR")
    requests = [FeedRequest(**r) for r in shard]
    batch_id = batches.poll_batch_id(poll_id) if poll_id else None
    repair_id = batches.repair_batch_id(poll_id) if poll_id else None
    if batch_id and batches.is_staged(lane_dir / batch_id):
        kept = batches.staged_fetches(lane_dir / batch_id)
        todo = batches.failed_feeds(kept, askable_at=datetime.now(UTC))
        if not todo or batches.is_staged(lane_dir / repair_id):
            return {"batch": batch_id, "reused": True, **_staged_summary(kept)}
        requests, batch_id = [r for r in requests if r.source_id in todo], repair_id
    batch, polled = _poll(s, requests, batch_id)
    where = batches.stage(batch, lane_dir)
    repaired: set[int] = set()
    if batch_id and batch_id != repair_id:  # another attempt may have staged this poll first
        theirs = batches.staged_fetches(where)
        repaired = batches.failed_feeds(theirs, askable_at=datetime.now(UTC)) - batches.failed_feeds(batch.fetches)
        if repaired:
            batches.stage(batches.subset(batch, repaired, repair_id), lane_dir)
    summary = ingest.summarize([p.outcome for p in polled], [])
    return {"batch": where.name, "feeds": summary.feeds, "ok": summary.ok,
            "not_modified": summary.not_modified, "failed": summary.failed,
            "failures": summary.failures[:50], **({"repaired": len(repaired)} if repaired else {})}


def _poll(s, requests: list[FeedRequest], batch_id: str | None):
    limits = ingest.fetch_limits(s)
    return batches.make_batch(ingest.poll(requests, limits=limits, workers=s.fetch_workers,
                                          per_host=s.fetch_per_host), batch_id=batch_id)


def _staged_summary(fetches) -> dict:
    rows = list(fetches[["status", "url", "error"]].itertuples(index=False, name=None))
    failed = [f"{u}: {e}" for st, u, e in rows if st in ("failed", "not_a_feed")]
    return {"feeds": len(rows), "ok": sum(st == "ok" for st, _, _ in rows),
            "not_modified": sum(st in ("not_modified", "unchanged") for st, _, _ in rows),
            "failed": len(failed), "failures": failed[:50]}


def load_staged(lane: str = "news") -> dict:
    """Merge every batch staged in the lane (this run's and any an earlier run left) into the
    database. Only this lane's: its caller announces what it loaded."""
    s = load_settings()
    with Workspace(s).write() as con:
        loads = merge.load_all_staged(con, batches.staging_lane(s.data_dir, lane), max_failures=s.max_failures)
        ingest.save_plan(con, s.data_dir)
    return {"batches": len(loads), "fetches": sum(r.fetches for r in loads),
            "items_new": sum(r.items_new for r in loads), "items_seen": sum(r.items_seen for r in loads),
            "disabled": [d for r in loads for d in r.disabled]}


def import_event_catalogs(directory: str | None = None) -> dict:
    """Import every *.csv timeline in data/events/ (idempotent: unchanged files add nothing)."""
    from pipeline.sources.importers import import_events

    s = load_settings()
    folder = Path(directory) if directory else s.data_dir / "events"
    files = sorted(folder.glob("*.csv")) if folder.exists() else []
    out = {"files": len(files), "new": 0, "updated": 0, "rejected": []}
    with Workspace(s).write() as con:
        for f in files:
            r = import_events(con, f)
            out["new"] += r.new
            out["updated"] += r.updated
            out["rejected"] += r.rejected[:20]
    return out


def promote_release_items() -> dict:
    from pipeline.store.release_events import events_from_release_items

    s = load_settings()
    with Workspace(s).write() as con:
        return events_from_release_items(con)


def list_claims() -> list[str]:
    from pipeline.analysis.claims import claim_names

    return claim_names()


def analyze_claim(claim_id: str, *, dag_id: str | None = None, dag_run_id: str | None = None) -> dict:
    """Run a claim unless this exact run (same parameters, same data) is already stored. Given
    the Airflow DAG run, records which analysis run it stored or found (the UI's Verdict tab)."""
    from pipeline.analysis.analyze import AnalysisError
    from pipeline.analysis.claims import load_claim
    from pipeline.analysis.runs import analyze
    from pipeline.outputs.verdict import verdict

    claim = load_claim(claim_id)
    ws = Workspace(load_settings())
    try:
        done = analyze(ws, claim)
    except AnalysisError as exc:
        return {"claim": claim_id, "status": "skipped", "reason": str(exc)}
    if dag_id and dag_run_id:
        with ws.write() as con:
            con.execute("INSERT OR IGNORE INTO dag_run_analyses VALUES (?, ?, ?, ?, ?, now())",
                        [dag_id, dag_run_id, done.result.run_id, claim_id, "stored" if done.fresh else "unchanged"])
    return {"claim": claim_id, "status": "stored" if done.fresh else "unchanged",
            "run_id": done.result.run_id, "headline": verdict(done.result).headline}


def import_archive(file: str, source: str, time_column: str, text_column: str, role: str | None = "news",
                   url_column: str | None = None, id_column: str | None = None,
                   author_column: str | None = None, timezone: str | None = None) -> dict:
    from pipeline.sources.import_items import import_items

    s = load_settings()
    with Workspace(s).write() as con:
        r = import_items(con, file, source=source, role=role or "news", time_column=time_column,
                         text_column=text_column, url_column=url_column or None,
                         id_column=id_column or None, author_column=author_column or None,
                         timezone=timezone or None)
    return {"file": r.file, "rows": r.rows_read, "new": r.new, "duplicates": r.duplicates,
            "rejected": r.n_rejected, "first_rejections": r.rejected[:20]}


def as_list(value) -> list[str]:
    """A form's list field: a list, or text with one entry per line or comma; empty: []."""
    if not value:
        return []
    if isinstance(value, str):
        value = value.replace(",", "\n").splitlines()
    return [str(v).strip() for v in value if str(v).strip()]


def backfill_plan(kind: str, urls: list[str] | str | None, start: str, end: str) -> list[dict]:
    """The units of a backfill, one mapped task each: a URL (wayback) or a 15-minute slot (gdelt)."""
    from pipeline.sources.gdelt import GdeltError, slot_labels
    from pipeline.timestamps import parse_instant

    try:
        lo, hi = parse_instant(start), parse_instant(end, end=True)
    except ValueError as exc:
        raise GdeltError(str(exc)) from None
    if hi <= lo:
        raise GdeltError(f"the window ends ({end}) before it starts ({start})")
    urls = as_list(urls)
    if kind == "wayback":
        if not urls:
            raise GdeltError("a wayback backfill needs at least one URL")
        return [{"kind": kind, "url": u, "start": start, "end": end} for u in urls]
    if kind == "gdelt":
        return [{"kind": kind, "label": lb} for lb in slot_labels(lo, hi)]
    raise GdeltError(f"no archive {kind!r}: choose wayback or gdelt")


def backfill_unit(unit: dict, *, source: str | None = None, role: str | None = "news",
                  domains: list[str] | str | None = None, keywords: list[str] | str | None = None,
                  tables: list[str] | str | None = None, cdx_endpoint: str | None = None,
                  playback_endpoint: str | None = None, base_url: str | None = None) -> dict:
    """One URL's captures or one GDELT slot, through the one item writer; resumable (ledgers)."""
    from pipeline.sources import gdelt, wayback
    from pipeline.sources.wayback_client import CDX_ENDPOINT, PLAYBACK_ENDPOINT, WaybackClient
    from pipeline.timestamps import parse_instant

    ws = Workspace(load_settings())
    if unit["kind"] == "wayback":
        client = WaybackClient(cdx_endpoint or CDX_ENDPOINT, playback_endpoint or PLAYBACK_ENDPOINT)
        return asdict(wayback.backfill_url(ws, client, unit["url"], parse_instant(unit["start"]),
                                           parse_instant(unit["end"], end=True), source=source or None,
                                           role=role or "news"))
    t = datetime.strptime(unit["label"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    reps = gdelt.backfill_gdelt(ws, t, t, tables=tuple(as_list(tables) or ("gkg", "mentions")),
                                domains=tuple(as_list(domains)), keywords=tuple(as_list(keywords)),
                                source=source or "gdelt", role=role or "news", base_url=base_url or gdelt.BASE_URL)
    return {"label": unit["label"], "files": [(r.table, r.status, r.reason) for r in reps],
            "items_new": sum(r.new for r in reps), "rows_rejected": sum(len(r.rejected) for r in reps)}


def weekly_digest(week: str | None = None, *, now: datetime | None = None, recipients=None,
                  smtp=None, force: bool = False) -> dict:
    """Compose the digest of ``week`` (default: the last complete ISO week before ``now``) from
    the stored runs, write its preview to data/reports/, and send it to ``recipients`` (default
    MEDIA_TIMING_DIGEST_TO) through ``smtp`` (default MEDIA_TIMING_SMTP_*) unless it was
    already sent to them. The database is never held while the mail server is talked to."""
    from pipeline.outputs.digest import compose
    from pipeline.outputs.mailer import send_digest, smtp_deliverer
    from pipeline.outputs.week_facts import parse_week, previous_week

    ws = Workspace(load_settings())
    w = parse_week(week) if week else previous_week(now or datetime.now(UTC))
    to = list(recipients) if recipients else list(ws.settings.digest_to)
    with ws.ensure() as con:
        digest = compose(con, w)
    preview = digest.preview(ws.reports_dir / f"digest_{w.label}.html")
    out = {"week": w.label, "subject": digest.subject, "preview": str(preview), "run_ids": digest.run_ids}
    if not to:
        return {**out, "status": "not_sent", "reason": "no recipients configured"}
    smtp = smtp or ws.settings.smtp
    sent = send_digest(ws, digest, to, sender=smtp.sender, deliver=smtp_deliverer(smtp), force=force)
    return {**out, "status": sent.status, "recipients": sent.recipients,
            "message_id": sent.message_id, "attempts": sent.attempts}
