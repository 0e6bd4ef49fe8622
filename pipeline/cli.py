"""The `media-timing` command: the same steps the DAGs schedule, run by hand."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from .config import ROLES, load_settings

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def cmd_demo(args, settings) -> int:
    from .demo import run_demo

    return run_demo(settings, surrogates=args.surrogates)


def cmd_migrate(args, settings) -> int:
    from .database import connect, migrate

    con = connect(settings.db_path, wait_s=settings.lock_wait_s)
    try:
        applied = migrate(con)
    finally:
        con.close()
    print(f"{settings.db_path}: " + (f"applied {', '.join(applied)}" if applied else "schema up to date"))
    return EXIT_OK


def cmd_import_events(args, settings) -> int:
    from .database import open_db
    from .importers import import_events

    with open_db(settings.db_path, wait_s=settings.lock_wait_s) as con:
        report = import_events(con, args.file)
    return _print_import(report)


def cmd_import_items(args, settings) -> int:
    from .database import open_db
    from .import_items import import_items

    with open_db(settings.db_path, wait_s=settings.lock_wait_s) as con:
        report = import_items(
            con, args.file, source=args.source, role=args.role, time_column=args.time_column,
            text_column=args.text_column, url_column=args.url_column, id_column=args.id_column,
            author_column=args.author_column, timezone=args.timezone, dst=args.dst,
            attribution=args.attribution, label=args.label,
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
        from .analyze_files import analyze_files

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

    from .claims import load_claim
    from .report import write_report
    from .runs import analyze
    from .verdict import render_text
    from .workspace import Workspace

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
    from .analysis import _iso
    from .runs import clean_json

    return json.loads(clean_json({
        "claim": result.claim.id, "run_id": result.run_id, "parameters": result.parameters,
        "releases": [{"event_id": e.event_id, "title": e.title, "earliest_utc": _iso(e.lo),
                      "latest_utc": _iso(e.hi)} for e in result.releases],
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
    from .sql_prompt import prompt, run_one

    if args.query:
        return run_one(settings.db_path, args.query, settings.lock_wait_s)
    return prompt(settings.db_path, settings.lock_wait_s)


def cmd_feeds_add(args, settings) -> int:
    from .database import open_db
    from .feeds import FeedSpec, add_feed

    with open_db(settings.db_path, wait_s=settings.lock_wait_s) as con:
        src, created = add_feed(con, FeedSpec(args.url, args.name, args.role, tuple(args.tag or ())))
    print(f"{'added' if created else 'already registered'}: {src.name} ({src.role}) {src.url}")
    return EXIT_OK


def cmd_feeds_import(args, settings) -> int:
    from .database import open_db
    from .feeds import import_feeds

    with open_db(settings.db_path, wait_s=settings.lock_wait_s) as con:
        added, existing, problems = import_feeds(con, args.file, role=args.role)
    for p in problems:
        print(f"skipped {p}", file=sys.stderr)
    print(f"{args.file}: {added} feeds added, {existing} already registered, {len(problems)} skipped")
    return EXIT_PARTIAL if problems else EXIT_OK


def cmd_feeds_list(args, settings) -> int:
    from .database import connect
    from .feeds import feed_health

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
    from .database import open_db
    from .feeds import enable_feed

    with open_db(settings.db_path, wait_s=settings.lock_wait_s) as con:
        enable_feed(con, args.name)
    print(f"enabled {args.name}; it will be polled on the next run")
    return EXIT_OK


def cmd_ingest_feeds(args, settings) -> int:
    from .ingest import run_ingest

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
    from .database import open_db
    from .ingest import load_every_lane

    with open_db(settings.db_path, wait_s=settings.lock_wait_s) as con:
        loads = load_every_lane(con, settings.data_dir, max_failures=settings.max_failures)
    new = sum(r.items_new for r in loads)
    print(f"merged {sum(not r.already_loaded for r in loads)} staged batches ({new} new items); "
          f"{sum(r.already_loaded for r in loads)} were already merged")
    return EXIT_OK


def cmd_digest(args, settings) -> int:
    from .digest import compose, previous_week
    from .mailer import send_digest, smtp_deliverer
    from .workspace import Workspace

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


def _week(text: str):
    from .digest import WeekError, parse_week

    try:
        return parse_week(text)
    except WeekError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _window(text: str) -> float:
    from .claims import ClaimError, parse_window

    try:
        return parse_window(text)
    except ClaimError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="media-timing",
        description="Timestamps with sources, and statistics that say how unusual a news-timing "
                    "coincidence really is.",
    )
    p.add_argument("--db", help="DuckDB file (default: $MEDIA_TIMING_DB or data/media_timing.duckdb)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="build the database from the bundled 2016 case study and print the 7 Oct 2016 verdict",
                       description="Import the bundled 2016 timeline and streams (offline, idempotent), "
                                   "run the oct7_2016 claim, print the verdict and write an HTML report to data/reports/.")
    d.add_argument("--surrogates", type=_positive_int, help="override the claims' surrogate counts")
    d.set_defaults(func=cmd_demo)

    m = sub.add_parser("migrate", help="create or update the database schema",
                       description="Apply numbered migrations from sql/ and re-create the views.")
    m.set_defaults(func=cmd_migrate)

    imp = sub.add_parser("import", help="import a timeline of events or a stream of items",
                         description="Import files. Both forms are idempotent; bad rows are reported by file and line.")
    isub = imp.add_subparsers(dest="what", required=True, metavar="WHAT")
    ie = isub.add_parser("events", help="a sourced timeline CSV (the format of data/case_2016/timeline_2016.csv)",
                         description="Columns: event_id, kind, title, ts_utc, earliest_utc, latest_utc; optional "
                                     "actor, ts_local, precision_minutes, source_url, source_quote, confidence, notes.")
    ie.add_argument("file")
    ie.set_defaults(func=cmd_import_events)
    ii = isub.add_parser("items", help="any timestamped stream (tweets, headline archives); gzip accepted",
                         description="Load a CSV stream as items of an archive source.")
    ii.add_argument("file")
    ii.add_argument("--source", required=True, help="source name (created if new)")
    ii.add_argument("--time-column", required=True, help="column with the time (ISO 8601 or RFC 2822)")
    ii.add_argument("--text-column", required=True, help="column with the text or headline")
    ii.add_argument("--url-column", help="column with a link (normalised for dedup)")
    ii.add_argument("--id-column", help="column with a stable id (best dedup key)")
    ii.add_argument("--author-column", help="column with the author or account")
    ii.add_argument("--role", default="news", choices=ROLES,
                    help="the source's role (default: news)")
    ii.add_argument("--timezone", help="IANA zone for times that state none (otherwise such rows are rejected)")
    ii.add_argument("--dst", default="reject", choices=["reject", "earlier", "later"],
                    help="with --timezone: a local time the clocks skip or repeat at a DST change is "
                         "rejected (default), or read as the earlier or the later of its two instants")
    ii.add_argument("--attribution", help="where the data came from, for citation")
    ii.add_argument("--label", help="how the stream is shown in verdicts (default: the source name)")
    ii.set_defaults(func=cmd_import_items)

    a = sub.add_parser("analyze", help="test a claim (claims/*.yaml) or two CSV files",
                       description="Run a claim's tests and store the run, or (with --releases and "
                                   "--announcements) test two CSV files with a ts_utc column "
                                   "(optional earliest_utc, latest_utc) and print JSON.")
    a.add_argument("--claim", help="claim id (a file in claims/, e.g. oct7_2016) or path to a claim file")
    a.add_argument("--releases", help="CSV of release times")
    a.add_argument("--announcements", help="CSV of announcement times")
    a.add_argument("--window", type=_window, help="window in whole minutes (default 120, or the claim's)")
    a.add_argument("--null", choices=["shuffle-weekday-hour", "jitter", "circular", "poisson"],
                   help="null model (default shuffle-weekday-hour, or the claim's)")
    a.add_argument("--surrogates", type=_positive_int, help="Monte Carlo surrogates (default 9999, or the claim's)")
    a.add_argument("--seed", type=int, help="random seed (default 0, or the claim's)")
    a.add_argument("--draws", type=_positive_int, help="draws of uncertain times (default 100, or the claim's)")
    a.add_argument("--json", action="store_true", help="print JSON instead of the verdict table")
    a.add_argument("--report", metavar="DIR", help="also write the HTML report into DIR")
    a.set_defaults(func=cmd_analyze)

    q = sub.add_parser("sql", help="read-only SQL over the database (a prompt, or one query)",
                       description="Run one query and print it as a table, or open a prompt. Read-only; "
                                   "waits politely while a writer holds the file.")
    q.add_argument("query", nargs="?", help="a query; omit for a prompt")
    q.set_defaults(func=cmd_sql)

    f = sub.add_parser("feeds", help="the feed registry: add, import, list, enable",
                       description="Register RSS/Atom feeds (http and https only) and see their health.")
    fsub = f.add_subparsers(dest="what", required=True, metavar="ACTION")
    fa = fsub.add_parser("add", help="register one feed", description="Register one feed by URL.")
    fa.add_argument("url")
    fa.add_argument("--name", required=True, help="a unique name for the feed")
    fa.add_argument("--role", required=True, choices=ROLES,
                    help="news: outlets; release: leak/release channels; announcement: officials, campaigns")
    fa.add_argument("--tag", action="append", help="a tag (repeatable)")
    fa.set_defaults(func=cmd_feeds_add)
    fi = fsub.add_parser("import", help="register feeds from an OPML or YAML file",
                         description="OPML (<outline xmlUrl=...>, folders become tags) or YAML "
                                     "(a list of {url, name, role, tags}).")
    fi.add_argument("file")
    fi.add_argument("--role", default="news", choices=ROLES, help="role for entries that name none")
    fi.set_defaults(func=cmd_feeds_import)
    fl = fsub.add_parser("list", help="feeds with health: last success, consecutive failures, disabled",
                         description="Every feed with its last status, last success, consecutive failures and problem.")
    fl.set_defaults(func=cmd_feeds_list)
    fe = fsub.add_parser("enable", help="re-enable a feed disabled after failures",
                         description="Re-enable a feed; its earlier failures stop counting.")
    fe.add_argument("name")
    fe.set_defaults(func=cmd_feeds_enable)

    ing = sub.add_parser("ingest", help="poll feeds into the database",
                         description="Poll due feeds (fetch, parse, stage, merge), or merge staged batches.")
    isub2 = ing.add_subparsers(dest="what", required=True, metavar="WHAT")
    inf = isub2.add_parser("feeds", help="poll every due feed once, with a progress bar and a summary",
                           description="Poll every enabled feed that is due (conditional GET, backoff after "
                                       "failures, Retry-After honoured), then merge into the database.")
    inf.add_argument("--feed", action="append", help="only this feed (repeatable)")
    inf.add_argument("--force", action="store_true", help="poll even feeds that are not due yet")
    inf.add_argument("--no-progress", action="store_true", help="no progress bar")
    inf.set_defaults(func=cmd_ingest_feeds)
    inl = isub2.add_parser("load", help="merge staged batches left by a run that found the database locked",
                           description="Merge every staged batch under data/staging/ (all lanes) into the database.")
    inl.set_defaults(func=cmd_ingest_load)

    dg = sub.add_parser("digest", help="the weekly digest: preview it as HTML, or send it by SMTP",
                        description="Compose the digest of one ISO week (UTC): releases, the announcements "
                                    "around them, p-values and verdicts, charts, collection health. Writes an "
                                    "HTML preview; --send mails it (SMTP settings from MEDIA_TIMING_SMTP_HOST, "
                                    "_PORT, _USER, _PASSWORD, _STARTTLS and MEDIA_TIMING_DIGEST_FROM). A week is "
                                    "sent once per recipient list unless --force.")
    dg.add_argument("--week", type=_week, help="ISO week such as 2016-W40 (default: the last complete week)")
    dg.add_argument("--out", help="preview file (default data/reports/digest_<week>.html)")
    dg.add_argument("--send", action="store_true", help="send it by SMTP")
    dg.add_argument("--to", action="append", help="recipient (repeatable)")
    dg.add_argument("--force", action="store_true", help="send even if this week was already sent")
    dg.set_defaults(func=cmd_digest)
    return p


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
    from .errors import USER_ERRORS

    try:
        return args.func(args, settings)
    except USER_ERRORS as exc:
        return _fail(str(exc) or type(exc).__name__)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
