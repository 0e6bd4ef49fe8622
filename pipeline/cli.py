"""The `media-timing` command: the same steps the DAGs schedule, run by hand."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import load_settings

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def cmd_demo(args, settings) -> int:
    from pipeline.demo import run_demo

    return run_demo(settings, surrogates=args.surrogates)


def cmd_migrate(args, settings) -> int:
    from pipeline.store.database import connect, migrate

    con = connect(settings.db_path, wait_s=settings.lock_wait_s)
    try:
        applied = migrate(con)
    finally:
        con.close()
    print(f"{settings.db_path}: " + (f"applied {', '.join(applied)}" if applied else "schema up to date"))
    return EXIT_OK


def cmd_import_events(args, settings) -> int:
    from pipeline.sources.importers import import_events
    from pipeline.store.workspace import Workspace

    with Workspace(settings).write() as con:
        report = import_events(con, args.file)
    return _print_import(report)


def cmd_import_items(args, settings) -> int:
    from pipeline.sources.import_items import import_items
    from pipeline.store.workspace import Workspace

    with Workspace(settings).write() as con:
        report = import_items(
            con, args.file, source=args.source, role=args.role, time_column=args.time_column,
            text_column=args.text_column, url_column=args.url_column, id_column=args.id_column,
            author_column=args.author_column, timezone=args.timezone, dst=args.dst,
            attribution=args.attribution, label=args.label, snowflake=args.snowflake,
        )
    return _print_import(report)


def _print_import(report) -> int:
    for line in report.rejected[:50]:
        print(line, file=sys.stderr)
    if report.n_rejected > 50:
        print(f"... and {report.n_rejected - 50} more rejected rows (the first 1,000 are in v_imports)",
              file=sys.stderr)
    print(report.summary())
    return EXIT_PARTIAL if report.n_rejected else EXIT_OK


def cmd_analyze(args, settings) -> int:
    if args.claim and (args.releases or args.announcements):
        return _fail("give either --claim or --releases/--announcements, not both")
    if args.releases or args.announcements:
        if not (args.releases and args.announcements):
            return _fail("--releases and --announcements go together")
        from pipeline.analysis.analyze_files import analyze_files

        doc = analyze_files(args.releases, args.announcements, window_minutes=args.window or 120,
                            null=args.null or "shuffle-weekday-hour",
                            surrogates=args.surrogates or 9999, seed=args.seed or 0,
                            draws=args.draws if args.draws is not None else 100)
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            for r in doc["releases"]:
                print(f"{r['release_ts_utc']}  count {r['count']:g}  p {r['pvalue']}")
            print(f"pooled: {doc['pooled']}")
        return EXIT_OK
    if not args.claim:
        return _fail("name a claim (--claim oct7_2016) or give --releases and --announcements")
    from dataclasses import replace

    from pipeline.analysis.claims import load_claim
    from pipeline.analysis.runs import analyze
    from pipeline.outputs.report import write_report
    from pipeline.outputs.verdict import render_text
    from pipeline.store.workspace import Workspace

    claim = load_claim(args.claim)
    if args.window or args.null:
        claim = replace(claim, window_minutes=args.window or claim.window_minutes, null=args.null or claim.null)
    done = analyze(Workspace(settings), claim, surrogates=args.surrogates, seed=args.seed, draws=args.draws)
    result = done.result
    if args.json:
        print(json.dumps(_result_json(result), indent=2))
    else:
        print(render_text(result))
        print(f"\nRun {result.run_id} {'stored' if done.fresh else 'already stored'} in {settings.db_path}.")
    if args.report:
        path = write_report(result, Path(args.report))
        print(f"Report: {path}", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def _result_json(result) -> dict:
    from pipeline.analysis.runs import clean_json
    from pipeline.timestamps import iso_z

    return json.loads(clean_json({
        "claim": result.claim.id, "run_id": result.run_id, "parameters": result.parameters,
        "releases": [{"event_id": e.event_id, "title": e.title, "earliest_utc": iso_z(e.lo),
                      "latest_utc": iso_z(e.hi)} for e in result.releases],
        "competitors": [{"event_id": c.event.event_id, "release_id": c.release_id,
                         "gap_minutes": c.gap_best_min, "gap_min_minutes": c.gap_lo_min,
                         "gap_max_minutes": c.gap_hi_min, "order": c.order}
                        for c in result.competitors],
        "streams": [{
            "label": s.stream.spec.label, "curated": s.stream.spec.curated, "n": s.stream.n,
            "pooled": {"statistic": s.pooled_statistic, "pvalue": s.pooled_pvalue,
                       "pvalue_min": s.pooled_pvalue_min, "pvalue_max": s.pooled_pvalue_max},
            "releases": [{k: (None if isinstance(v, float) and v != v else v)
                          for k, v in t.__dict__.items()} for t in s.releases],
        } for s in result.streams],
    }))


def cmd_sql(args, settings) -> int:
    from pipeline.sql_prompt import prompt, run_one

    if args.query:
        return run_one(settings.db_path, args.query, settings.lock_wait_s)
    return prompt(settings.db_path, settings.lock_wait_s)


def cmd_feeds_add(args, settings) -> int:
    from pipeline.sources.feeds import FeedSpec, add_feed
    from pipeline.store.workspace import Workspace

    with Workspace(settings).write() as con:
        src, created = add_feed(con, FeedSpec(args.url, args.name, args.role, tuple(args.tag or ())))
    print(f"{'added' if created else 'already registered'}: {src.name} ({src.role}) {src.url}")
    return EXIT_OK


def cmd_feeds_import(args, settings) -> int:
    from pipeline.sources.feeds import import_feeds
    from pipeline.store.workspace import Workspace

    with Workspace(settings).write() as con:
        added, existing, problems = import_feeds(con, args.file, role=args.role)
    for p in problems:
        print(f"skipped {p}", file=sys.stderr)
    print(f"{args.file}: {added} feeds added, {existing} already registered, {len(problems)} skipped")
    return EXIT_PARTIAL if problems else EXIT_OK


def cmd_feeds_list(args, settings) -> int:
    from pipeline.sources.feeds import feed_health
    from pipeline.store.database import connect

    con = connect(settings.db_path, read_only=True, wait_s=settings.lock_wait_s)
    try:
        rel = feed_health(con)
        if not rel.fetchall():
            print("no feeds registered; add one with `media-timing feeds add URL --name NAME`")
        else:
            feed_health(con).show(max_rows=10_000, max_width=200)
    finally:
        con.close()
    return EXIT_OK


def cmd_feeds_enable(args, settings) -> int:
    from pipeline.sources.feeds import enable_feed
    from pipeline.store.workspace import Workspace

    with Workspace(settings).write() as con:
        enable_feed(con, args.name)
    print(f"enabled {args.name}; it will be polled on the next run")
    return EXIT_OK


def cmd_ingest_feeds(args, settings) -> int:
    from pipeline.sources.ingest import run_ingest

    summary = run_ingest(settings, names=args.feed, force=args.force, show_progress=not args.no_progress)
    if summary.note:
        print(summary.note, file=sys.stderr)
    for f in summary.failures:
        print(f"failed: {f}", file=sys.stderr)
    print(summary.line())
    if summary.staged_only:
        print(f"the database stayed locked: the batch is staged in {summary.staged_only} and will be "
              "merged by the next run or `media-timing ingest load`", file=sys.stderr)
    return EXIT_PARTIAL if summary.failed or summary.staged_only else EXIT_OK


def cmd_ingest_load(args, settings) -> int:
    from pipeline.sources.merge import load_every_lane
    from pipeline.store.workspace import Workspace

    with Workspace(settings).write() as con:
        loads = load_every_lane(con, settings.data_dir, max_failures=settings.max_failures)
    new = sum(r.items_new for r in loads)
    print(f"merged {sum(not r.already_loaded for r in loads)} staged batches ({new} new items); "
          f"{sum(r.already_loaded for r in loads)} were already merged")
    return EXIT_OK


def cmd_onsets(args, settings) -> int:
    from pipeline.analysis.claims import load_claim
    from pipeline.analysis.onsets import OnsetError, measure_onsets, onset_inputs
    from pipeline.outputs.onsets_text import onset_lines
    from pipeline.store.workspace import Workspace

    claim = load_claim(args.claim)
    if not claim.onsets:
        raise OnsetError(f"claim {claim.id} names no onsets; add an onsets: section with stories_file "
                         "(see claims/oct7_2016.yaml)")
    with Workspace(settings).read() as con:
        inputs = onset_inputs(con, claim, args.source)
    onsets = measure_onsets(inputs)
    if args.json:
        print(json.dumps({"claim": claim.id, "onsets": onsets["records"], "orders": onsets["orders"],
                          "streams": onsets["streams"], "rules_file": onsets["rules_file"],
                          "rules_sha256": onsets["rules_sha256"]}, indent=2))
    else:
        print("\n".join(onset_lines(onsets)))
    return EXIT_OK


def cmd_stories_check(args, settings) -> int:
    from dataclasses import asdict

    from pipeline.analysis.claims import load_claim
    from pipeline.analysis.story_audit import audit
    from pipeline.outputs.onsets_text import audit_lines
    from pipeline.store.workspace import Workspace

    with Workspace(settings).read() as con:
        found = audit(con, load_claim(args.claim), args.source)
    if args.json:
        doc = asdict(found)
        doc["rules"] = {"path": str(found.rules.path), "sha256": found.rules.sha256,
                        "stories": [r.name for r in found.rules.rules]}
        print(json.dumps(doc, indent=2))
    else:
        print("\n".join(audit_lines(found)))
    return EXIT_OK


def cmd_backfill_wayback(args, settings) -> int:
    from pipeline.sources.wayback import backfill_wayback
    from pipeline.sources.wayback_client import WaybackClient
    from pipeline.store.workspace import Workspace

    end = args.end  # a bare date already means the whole day (cli_args.utc_window_end)
    if end < args.start:
        return _fail("--to is before --from")
    client = WaybackClient(args.cdx_endpoint, args.playback_endpoint, per_minute=args.per_minute)
    reports = backfill_wayback(Workspace(settings), args.urls, args.start, end, source=args.source,
                               role=args.role, client=client)
    for r in reports:
        if r.blocked:
            print(f"{r.url}: {r.blocked}")
            continue
        failed = ", ".join(f"{n} {why}" for why, n in sorted(r.failed.items())) or "none"
        print(f"{r.url} -> source {r.source}: {r.captures} captures ({r.already_done} done before), "
              f"{r.ok} parsed, {r.payloads_fetched} payloads fetched, {r.items_new} new items; failed: {failed}")
    print(f"{client.requests} requests to the archive")
    return EXIT_PARTIAL if any(r.blocked or r.failed for r in reports) else EXIT_OK


def cmd_backfill_gdelt(args, settings) -> int:
    from pipeline.sources.gdelt import backfill_gdelt, read_manifest
    from pipeline.store.workspace import Workspace

    if args.end <= args.start:
        return _fail("--to must be after --from")
    manifest = read_manifest(Path(args.manifest).read_text()) if args.manifest else None
    reports = backfill_gdelt(Workspace(settings), args.start, args.end,
                             tables=tuple(t.strip() for t in args.tables.split(",") if t.strip()),
                             domains=tuple(args.domain), keywords=tuple(args.keyword), source=args.source,
                             base_url=args.base_url, manifest=manifest)
    by = {s: [r for r in reports if r.status == s] for s in ("ok", "missing", "failed")}
    print(f"{len(reports)} files: {len(by['ok'])} loaded, {len(by['missing'])} missing (gaps), "
          f"{len(by['failed'])} failed; {sum(r.kept for r in reports)} rows kept, "
          f"{sum(r.new for r in reports)} new items, {sum(len(r.rejected) for r in reports)} rows rejected")
    for r in by["missing"] + by["failed"]:
        print(f"  {r.label} {r.table}: {r.status}: {r.reason}")
    return EXIT_PARTIAL if by["failed"] or any(r.rejected for r in reports) else EXIT_OK


def cmd_digest(args, settings) -> int:
    from pipeline.outputs.digest import compose
    from pipeline.outputs.mailer import send_digest, smtp_deliverer
    from pipeline.outputs.week_facts import previous_week
    from pipeline.store.workspace import Workspace

    week = args.week or previous_week(datetime.now(UTC))
    recipients = args.to or list(settings.digest_to)
    if args.send and not recipients:
        return _fail("--send needs a recipient: --to ADDRESS, or MEDIA_TIMING_DIGEST_TO")
    ws = Workspace(settings)
    with ws.read() as con:
        digest = compose(con, week)
    out = Path(args.out) if args.out else ws.reports_dir / f"digest_{week.label}.html"
    digest.preview(out)
    print(f"{digest.subject}\npreview: {out}")
    if args.send:
        smtp = settings.smtp
        result = send_digest(ws, digest, recipients, sender=smtp.sender, deliver=smtp_deliverer(smtp),
                             force=args.force)
        if result.status == "already_sent":
            print(f"already sent to {', '.join(result.recipients)} (Message-ID {result.message_id}); "
                  "--force sends it again")
        else:
            print(f"sent to {', '.join(result.recipients)} after {result.attempts} attempt(s)")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from pipeline import cli_args

    return cli_args.build_parser(sys.modules[__name__])


def _terminated(signum, frame):
    # A TERM (a service manager, `kill`) unwinds like Ctrl-C, so every `finally` runs: parser
    # processes are stopped and half-written batches removed, instead of the process just ending.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    import signal

    if threading_main():
        signal.signal(signal.SIGTERM, _terminated)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ValueError as exc:  # a malformed MEDIA_TIMING_* variable
        return _fail(str(exc))
    if args.db:
        from dataclasses import replace

        settings = replace(settings, db_path=Path(args.db))
    from pipeline.errors import USER_ERRORS

    try:
        return args.func(args, settings)
    except USER_ERRORS as exc:
        return _fail(str(exc) or type(exc).__name__)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
