"""The `media-timing` command's arguments: every subcommand, its help, and the argument types
that turn a mistake into one line naming the accepted form."""

from __future__ import annotations

import argparse

from pipeline.config import ROLES
from pipeline.timing.registry import MODELS


def iso_week(text: str):
    from pipeline.outputs.week_facts import WeekError, parse_week

    try:
        return parse_week(text)
    except WeekError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole_minutes(text: str) -> float:
    from pipeline.analysis.claims import ClaimError, parse_window

    try:
        return parse_window(text)
    except ClaimError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def build_parser(h) -> argparse.ArgumentParser:
    """The parser; ``h`` holds the handlers (the cli module's cmd_* functions)."""
    p = argparse.ArgumentParser(
        prog="media-timing",
        description="Timestamps with sources, and statistics that say how unusual a news-timing "
                    "coincidence really is.",
    )
    p.add_argument("--db", help="DuckDB file (default: $MEDIA_TIMING_DB or data/media_timing.duckdb)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _demo(sub, h)
    _migrate(sub, h)
    _import(sub, h)
    _analyze(sub, h)
    _sql(sub, h)
    _feeds(sub, h)
    _ingest(sub, h)
    _digest(sub, h)
    _stories(sub, h)
    _backfill(sub, h)
    return p


def utc_instant(text: str, end: bool = False):
    """2016-10-07, 2016-10-07T18:00Z or any ISO 8601 instant; a bare date or a time without a
    zone is UTC."""
    from pipeline.timestamps import parse_instant

    try:
        return parse_instant(text, end=end)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def utc_window_end(text: str):
    """As ``utc_instant``, but a bare date is the whole of that day (the window's last day)."""
    return utc_instant(text, end=True)


def _backfill(sub, h) -> None:
    b = sub.add_parser("backfill", help="load the past from archives (the Internet Archive's captures)",
                       description="Backfill a source from an archive: items with the interval in which "
                                   "they were first seen, beside the publisher's claimed time.")
    bsub = b.add_subparsers(dest="what", required=True, metavar="ARCHIVE")
    w = bsub.add_parser("wayback", help="an outlet's feed or front page as the Wayback Machine captured it",
                        description="List every capture of each URL in the range (CDX API), fetch each distinct "
                                    "payload once, parse it as a feed or a front page, and load its items with "
                                    "first-seen interval (previous good capture, capture where first present]. "
                                    "Resumable; a second run adds nothing. At most --per-minute CDX requests "
                                    "a minute; 429 answers are honoured and a run stops rather than push on.")
    w.add_argument("urls", nargs="+", metavar="URL")
    w.add_argument("--from", dest="start", required=True, type=utc_instant, help="first day or instant (UTC)")
    w.add_argument("--to", dest="end", required=True, type=utc_window_end,
                   help="last day (inclusive) or instant (UTC)")
    w.add_argument("--source", help="source name (default: wayback:<host>)")
    w.add_argument("--role", default="news", choices=ROLES, help="the source's role (default: news)")
    w.add_argument("--cdx-endpoint", default="https://web.archive.org/cdx/search/cdx")
    w.add_argument("--playback-endpoint", default="https://web.archive.org/web")
    w.add_argument("--per-minute", type=float, default=24.0, help="CDX requests a minute at most (default 24)")
    w.set_defaults(func=h.cmd_backfill_wayback)
    g = bsub.add_parser("gdelt", help="which articles GDELT 2.0 saw, from its raw 15-minute files",
                        description="Download the GDELT 2.0 mentions and GKG files of every 15-minute batch in "
                                    "the window ({base-url}/{YYYYMMDDHHMMSS}.mentions.CSV.zip, .gkg.csv.zip), keep "
                                    "the rows of the given domains and keywords, and load them with first-seen "
                                    "interval (label - 15 min, label]. Missing slots are recorded as gaps; a "
                                    "rerun skips the files done.")
    g.add_argument("--from", dest="start", required=True, type=utc_instant, help="e.g. 2016-10-07T18:00Z")
    g.add_argument("--to", dest="end", required=True, type=utc_window_end,
                   help="e.g. 2016-10-08T03:00Z, or a last day (inclusive)")
    g.add_argument("--tables", default="gkg,mentions", help="comma-separated: gkg, mentions (default both)")
    g.add_argument("--domain", action="append", default=[], help="keep only this outlet domain (repeatable)")
    g.add_argument("--keyword", action="append", default=[], help="keep only URLs/titles with this (repeatable)")
    g.add_argument("--source", default="gdelt", help="source name (default gdelt)")
    g.add_argument("--base-url", default="http://data.gdeltproject.org/gdeltv2")
    g.add_argument("--manifest", help="master-list lines (<bytes> <md5> <url>) to check sizes and MD5 against")
    g.set_defaults(func=h.cmd_backfill_gdelt)


def _claim_streams(p, claim_help: str, json_help: str) -> None:
    """--claim, --source (repeatable) and --json, as the story commands take them."""
    p.add_argument("--claim", required=True, help=claim_help)
    p.add_argument("--source", action="append", help="only this stream (repeatable; default: the claim's)")
    p.add_argument("--json", action="store_true", help=json_help)


def _stories(sub, h) -> None:
    on = sub.add_parser("onsets", help="when each story of a claim broke, per stream, and which came first",
                        description="For every story of the claim's onsets (claims/*.yaml, onsets:) and every "
                                    "stream, and all streams together: the earliest matching item with its time "
                                    "interval, the 2nd and 3rd outlet, the Kleinberg burst start, items and "
                                    "outlets (copies once per outlet); then the order of each pair of stories.")
    _claim_streams(on, "claim id or path (it must name onsets:)", "print JSON: one record per story and stream")
    on.set_defaults(func=h.cmd_onsets)
    st = sub.add_parser("stories", help="audit story rules", description="Audit a claim's story rules.")
    ssub = st.add_subparsers(dest="what", required=True, metavar="ACTION")
    sc = ssub.add_parser("check", help="first matches, a sample, near misses and overlaps of every story",
                         description="Show, per story of the claim's rules file, the first matches with their "
                                     "text, a sample, matches outside the anchor's window, near misses (an "
                                     "'all' group one term short, or excluded by 'none'), and items matching "
                                     "two stories.")
    _claim_streams(sc, "claim id or path", "print JSON")
    sc.set_defaults(func=h.cmd_stories_check)


def _demo(sub, h) -> None:
    d = sub.add_parser("demo", help="build the database from the bundled 2016 case study and print the 7 Oct 2016 verdict",
                       description="Import the bundled 2016 timeline and streams (offline, idempotent), "
                                   "run the oct7_2016 claim, print the verdict and write an HTML report to data/reports/.")
    d.add_argument("--surrogates", type=positive_int, help="override the claims' surrogate counts")
    d.set_defaults(func=h.cmd_demo)


def _migrate(sub, h) -> None:
    m = sub.add_parser("migrate", help="create or update the database schema",
                       description="Apply numbered migrations from sql/ and re-create the views.")
    m.set_defaults(func=h.cmd_migrate)


def _import(sub, h) -> None:
    imp = sub.add_parser("import", help="import a timeline of events or a stream of items",
                         description="Import files. Both forms are idempotent; bad rows are reported by file and line.")
    isub = imp.add_subparsers(dest="what", required=True, metavar="WHAT")
    ie = isub.add_parser("events", help="a sourced timeline CSV (the format of data/case_2016/timeline_2016.csv)",
                         description="Columns: event_id, kind, title, ts_utc, earliest_utc, latest_utc; optional "
                                     "actor, ts_local, precision_minutes, source_url, source_quote, confidence, notes.")
    ie.add_argument("file")
    ie.set_defaults(func=h.cmd_import_events)
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
    ii.add_argument("--snowflake", action="store_true",
                    help="the --id-column holds Twitter/X snowflake ids: decode each to its millisecond time "
                         "where it agrees with the time column")
    ii.set_defaults(func=h.cmd_import_items)


def _analyze(sub, h) -> None:
    a = sub.add_parser("analyze", help="test a claim (claims/*.yaml) or two CSV files",
                       description="Run a claim's tests and store the run, or (with --releases and "
                                   "--announcements) test two CSV files with a ts_utc column "
                                   "(optional earliest_utc, latest_utc) and print JSON.")
    a.add_argument("--claim", help="claim id (a file in claims/, e.g. oct7_2016) or path to a claim file")
    a.add_argument("--releases", help="CSV of release times")
    a.add_argument("--announcements", help="CSV of announcement times")
    a.add_argument("--window", type=whole_minutes, help="window in whole minutes (default 120, or the claim's)")
    a.add_argument("--null", choices=list(MODELS),
                   help="null model (default shuffle-weekday-hour, or the claim's)")
    a.add_argument("--surrogates", type=positive_int, help="Monte Carlo surrogates (default 9999, or the claim's)")
    a.add_argument("--seed", type=int, help="random seed (default 0, or the claim's)")
    a.add_argument("--draws", type=positive_int, help="draws of uncertain times (default 100, or the claim's)")
    a.add_argument("--json", action="store_true", help="print JSON instead of the verdict table")
    a.add_argument("--report", metavar="DIR", help="also write the HTML report into DIR")
    a.set_defaults(func=h.cmd_analyze)


def _sql(sub, h) -> None:
    q = sub.add_parser("sql", help="read-only SQL over the database (a prompt, or one query)",
                       description="Run one query and print it as a table, or open a prompt. Read-only; "
                                   "waits politely while a writer holds the file.")
    q.add_argument("query", nargs="?", help="a query; omit for a prompt")
    q.set_defaults(func=h.cmd_sql)


def _feeds(sub, h) -> None:
    f = sub.add_parser("feeds", help="the feed registry: add, import, list, enable",
                       description="Register RSS/Atom feeds (http and https only) and see their health.")
    fsub = f.add_subparsers(dest="what", required=True, metavar="ACTION")
    fa = fsub.add_parser("add", help="register one feed", description="Register one feed by URL.")
    fa.add_argument("url")
    fa.add_argument("--name", required=True, help="a unique name for the feed")
    fa.add_argument("--role", required=True, choices=ROLES,
                    help="news: outlets; release: leak/release channels; announcement: officials, campaigns")
    fa.add_argument("--tag", action="append", help="a tag (repeatable)")
    fa.set_defaults(func=h.cmd_feeds_add)
    fi = fsub.add_parser("import", help="register feeds from an OPML or YAML file",
                         description="OPML (<outline xmlUrl=...>, folders become tags) or YAML "
                                     "(a list of {url, name, role, tags}).")
    fi.add_argument("file")
    fi.add_argument("--role", default="news", choices=ROLES, help="role for entries that name none")
    fi.set_defaults(func=h.cmd_feeds_import)
    fl = fsub.add_parser("list", help="feeds with health: last success, consecutive failures, disabled",
                         description="Every feed with its last status, last success, consecutive failures and problem.")
    fl.set_defaults(func=h.cmd_feeds_list)
    fe = fsub.add_parser("enable", help="re-enable a feed disabled after failures",
                         description="Re-enable a feed; its earlier failures stop counting.")
    fe.add_argument("name")
    fe.set_defaults(func=h.cmd_feeds_enable)


def _ingest(sub, h) -> None:
    ing = sub.add_parser("ingest", help="poll feeds into the database",
                         description="Poll due feeds (fetch, parse, stage, merge), or merge staged batches.")
    isub2 = ing.add_subparsers(dest="what", required=True, metavar="WHAT")
    inf = isub2.add_parser("feeds", help="poll every due feed once, with a progress bar and a summary",
                           description="Poll every enabled feed that is due (conditional GET, backoff after "
                                       "failures, Retry-After honoured), then merge into the database.")
    inf.add_argument("--feed", action="append", help="only this feed (repeatable)")
    inf.add_argument("--force", action="store_true", help="poll even feeds that are not due yet")
    inf.add_argument("--no-progress", action="store_true", help="no progress bar")
    inf.set_defaults(func=h.cmd_ingest_feeds)
    inl = isub2.add_parser("load", help="merge staged batches left by a run that found the database locked",
                           description="Merge every staged batch under data/staging/ (all lanes) into the database.")
    inl.set_defaults(func=h.cmd_ingest_load)


def _digest(sub, h) -> None:
    dg = sub.add_parser("digest", help="the weekly digest: preview it as HTML, or send it by SMTP",
                        description="Compose the digest of one ISO week (UTC): releases, the announcements "
                                    "around them, p-values and verdicts, charts, collection health. Writes an "
                                    "HTML preview; --send mails it (SMTP settings from MEDIA_TIMING_SMTP_HOST, "
                                    "_PORT, _USER, _PASSWORD, _STARTTLS and MEDIA_TIMING_DIGEST_FROM). A week is "
                                    "sent once per recipient list unless --force.")
    dg.add_argument("--week", type=iso_week, help="ISO week such as 2016-W40 (default: the last complete week)")
    dg.add_argument("--out", help="preview file (default data/reports/digest_<week>.html)")
    dg.add_argument("--send", action="store_true", help="send it by SMTP")
    dg.add_argument("--to", action="append", help="recipient (repeatable)")
    dg.add_argument("--force", action="store_true", help="send even if this week was already sent")
    dg.set_defaults(func=h.cmd_digest)
