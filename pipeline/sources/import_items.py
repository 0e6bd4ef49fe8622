"""Importing a timestamped stream (tweets, headline archives) from CSV, plain or gzip, of any size.

The file is read by DuckDB into a temporary table (``pipeline.sources.csv_scan``, with every record's
line), its times are parsed in SQL (sql/queries/parse_times.sql, as for every source), keys and
flags are derived in SQL (sql/queries/stage_csv_items.sql), and the new items go in with one
INSERT, in one transaction with the `imports` ledger row. Memory is bounded by DuckDB's limit,
not by the file: nothing row by row passes through Python but the times SQL cannot read.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.config import SQL_DIR
from pipeline.sources.csv_scan import drop as drop_scan
from pipeline.sources.csv_scan import scan_csv
from pipeline.sources.csvfile import CsvFileError, file_sha256, read_header
from pipeline.sources.importers import MAX_MESSAGES, ImportReport, check_zone
from pipeline.store import items as store
from pipeline.store.database import query_one, transaction
from pipeline.timestamps import DST_POLICIES, PROBLEMS, now_utc, row_by_row
from pipeline.urls import normalize_url

# DuckDB's own limit while a file is imported: beyond it, it spills to disk (the process stays
# under a gigabyte whatever the file's size).
IMPORT_MEMORY_LIMIT = "600MB"
PROBLEM_WORDS = {**PROBLEMS, "empty_id": lambda s, zone: "the id is empty"}


def _q(name: str | None) -> str:
    return "NULL" if name is None else '"' + name.replace('"', '""') + '"'


def _fill_unread(con, time_column: str, timezone: str | None, dst: str) -> None:
    """The times SQL could not read, row by row (RFC 822 oddities, dateutil's forms)."""
    rows = con.execute("SELECT _line, published_raw FROM mt_items WHERE problem = 'unread'").fetchall()
    if not rows:
        return
    fixed = []
    for line, raw in rows:
        ts, error = row_by_row(raw.strip(), timezone, dst)
        fixed.append((line, None if ts is None else ts.to_pydatetime(), error))
    con.register("mt_fixed", pd.DataFrame(fixed, columns=["_line", "utc", "error"]).astype({"utc": "datetime64[us, UTC]"}))
    con.execute("""UPDATE mt_items SET published_utc = f.utc,
                          problem = CASE WHEN f.error IS NULL THEN NULL ELSE 'unread' END
                   FROM mt_fixed f WHERE mt_items._line = f._line""")
    con.execute("INSERT INTO mt_unread SELECT _line, error FROM mt_fixed WHERE error IS NOT NULL")
    con.unregister("mt_fixed")


def _register_urls(con, url_column: str | None) -> None:
    """Normalised links, computed once per distinct link."""
    urls = [] if url_column is None else [r[0] for r in con.execute(
        f"SELECT DISTINCT nullif(trim({_q(url_column)}), '') FROM mt_csv WHERE nullif(trim({_q(url_column)}), '') IS NOT NULL"
    ).fetchall()]
    con.register("mt_urls", pd.DataFrame({"url": pd.Series(urls, dtype="string"),
                                          "normalized": pd.Series([normalize_url(u) for u in urls], dtype="string")}))


def _messages(con, path: Path, time_column: str, timezone: str | None, scan_rejects) -> tuple[list[str], int]:
    """Every refused row by file and line: the first MAX_MESSAGES words, and how many in all."""
    (n_bad,) = query_one(con, "SELECT count(*) FROM mt_items WHERE problem IS NOT NULL")
    rows = con.execute(f"""SELECT m._line, m.problem, m.published_raw, u.error
                           FROM (SELECT * FROM mt_items WHERE problem IS NOT NULL ORDER BY _line LIMIT {MAX_MESSAGES}) m
                           LEFT JOIN mt_unread u USING (_line) ORDER BY m._line""").fetchall()
    words = [(line, f"{path}:{line}: {time_column}: " + (error or PROBLEM_WORDS[problem](raw.strip(), timezone))
              if problem != "empty_id" else f"{path}:{line}: the id is empty") for line, problem, raw, error in rows]
    words += [(line, f"{path}:{line}: {why}") for line, why in scan_rejects]
    words.sort()
    return [w for _, w in words[:MAX_MESSAGES]], n_bad + len(scan_rejects)


def import_items(
    con: duckdb.DuckDBPyConnection,
    path: Path | str,
    *,
    source: str,
    time_column: str,
    text_column: str,
    role: str = "news",
    url_column: str | None = None,
    id_column: str | None = None,
    author_column: str | None = None,
    timezone: str | None = None,
    dst: str = "reject",
    attribution: str | None = None,
    label: str | None = None,
    caveat: str | None = None,
    snowflake: bool = False,
) -> ImportReport:
    """Load any timestamped stream as items of the archive source ``source``.

    Items are keyed by ``id_column`` when given, else by normalised URL, else by a hash of the
    raw time, the author and the text, so the same post imported twice is one item and the same
    words posted by two accounts in the same minute are two. Times without a zone are read in
    ``timezone`` when named (usable, flagged zone_named) and refused otherwise; ``dst`` says what
    to do with local times a DST change skips or repeats (reject, earlier, later). With
    ``snowflake``, ids that are Twitter/X snowflakes give each post its millisecond time where
    that time agrees with the time column (flagged snowflake; disagreeing ones keep the column's
    time, flagged snowflake_mismatch).
    """
    if snowflake and not id_column:
        raise CsvFileError("--snowflake decodes the --id-column: name the column that holds the post ids")
    path = Path(path)
    started = now_utc()
    if timezone:
        check_zone(timezone)
    if dst not in DST_POLICIES:
        raise CsvFileError(f"--dst {dst!r} is not one of {', '.join(DST_POLICIES)}")
    if not path.is_file():
        raise CsvFileError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    required = [time_column, text_column] + [c for c in (url_column, id_column, author_column) if c]
    header = read_header(path, required)
    sha = file_sha256(path)
    con.execute(f"SET memory_limit = '{IMPORT_MEMORY_LIMIT}'")
    con.execute("SET enable_progress_bar = false")
    try:
        return _import(con, path, header, sha, started, source=source, role=role, time_column=time_column,
                       text_column=text_column, url_column=url_column, id_column=id_column,
                       author_column=author_column, timezone=timezone, dst=dst, attribution=attribution,
                       label=label, caveat=caveat, snowflake=snowflake)
    finally:
        for t in ("mt_items", "mt_unread"):
            con.execute(f"DROP TABLE IF EXISTS {t}")
        drop_scan(con, "mt_csv")
        for name in ("mt_urls",):
            try:
                con.unregister(name)
            except duckdb.Error:
                pass
        con.execute("RESET memory_limit")
        con.execute("RESET preserve_insertion_order")


def _import(con, path, header, sha, started, *, source, role, time_column, text_column, url_column,
            id_column, author_column, timezone, dst, attribution, label, caveat, snowflake) -> ImportReport:
    # Only the named columns are stored (a tweets file's counts and flags are read, not kept).
    used = [c for c in (time_column, text_column, url_column, id_column, author_column) if c]
    scan = scan_csv(con, path, header, "mt_csv", keep=used)
    con.execute("CREATE OR REPLACE TEMP TABLE mt_unread (_line BIGINT, error VARCHAR)")
    _register_urls(con, url_column)
    stage = (SQL_DIR / "queries" / "stage_csv_items.sql").read_text().format(
        time=_q(time_column), text=_q(text_column), url=_q(url_column), id=_q(id_column), author=_q(author_column))
    con.execute(stage, {"zone": timezone, "dst": dst, "started": started})
    drop_scan(con, "mt_csv")  # mt_items holds everything now: free the memory
    _fill_unread(con, time_column, timezone, dst)
    if snowflake:
        _decode_snowflakes(con)
    report = ImportReport(file=str(path), rows_read=scan.rows + len(scan.rejected))
    report.rejected, report.rejected_total = _messages(con, path, time_column, timezone, scan.rejected)
    options = {"time_column": time_column, "text_column": text_column, "url_column": url_column,
               "id_column": id_column, "author_column": author_column, "timezone": timezone, "dst": dst,
               "snowflake": snowflake,
               "reader": scan.method}
    with transaction(con):
        import_id = store.next_import_id(con)
        good = query_one(con, "SELECT count(*) FROM mt_items WHERE problem IS NULL")[0]
        src = store.find_source(con, source)
        if good:  # nothing usable: the attempt is recorded, but no empty source is made
            src = store.ensure_source(con, source, role=role, kind="archive", attribution=attribution,
                                      label=label, caveat=caveat)
            written = _write(con, src.source_id, import_id, path.name, started)
            report.new, report.duplicates = written.new, written.repeated
            report.duplicate_examples = [f"line {a} repeats line {b}" for a, b in written.repeats]
        store.record_import(
            con, import_id=import_id, kind="items", file_name=str(path), file_sha256=sha,
            source_id=src.source_id if src else None, started_utc=started, rows_read=report.rows_read,
            rows_new=report.new, rows_updated=0, errors=report.rejected, source_name=source,
            rows_rejected=report.rejected_total, options=json.dumps(options))
    return report


SNOWFLAKE_EPOCH_MS = 1288834974657  # Twitter's epoch: ids since 4 Nov 2010 carry their time in ms


def _decode_snowflakes(con) -> None:
    """Set-based: a snowflake id's time ((id >> 22) + epoch, in ms) replaces a coarser stated
    time when it lies inside the stated one's interval (give or take a second)."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE mt_snow AS
        SELECT _line, to_timestamp(((TRY_CAST(guid AS UBIGINT) >> 22) + {SNOWFLAKE_EPOCH_MS}) / 1000.0) AS t,
               published_utc, coalesce(time_precision_s, 1) AS width
        FROM mt_items WHERE problem IS NULL AND regexp_full_match(coalesce(guid, ''), '[0-9]{{15,20}}')""")
    con.execute("""UPDATE mt_items SET
            published_utc = CASE WHEN s.ok THEN s.t ELSE mt_items.published_utc END,
            time_precision_s = CASE WHEN s.ok THEN 1 ELSE mt_items.time_precision_s END,
            time_flags = list_append(mt_items.time_flags, CASE WHEN s.ok THEN 'snowflake' ELSE 'snowflake_mismatch' END)
        FROM (SELECT _line, t, t >= published_utc - INTERVAL 1 SECOND
                             AND t < published_utc + to_seconds(width) + INTERVAL 1 SECOND AS ok FROM mt_snow) s
        WHERE mt_items._line = s._line""")
    con.execute("DROP TABLE mt_snow")


def _write(con, source_id: int, import_id: int, file_name: str, seen) -> store.Written:
    """The good rows through the one item writer, as items of ``source_id``."""
    name = file_name.replace("'", "''")
    con.execute(f"""CREATE OR REPLACE TEMP VIEW mt_ready AS
        SELECT _line AS _order, {int(source_id)} AS source_id, dedup_key, guid, url, url_normalized, title,
               author, NULL::VARCHAR AS summary, published_raw, NULL::VARCHAR AS updated_raw, published_utc,
               NULL::TIMESTAMPTZ AS updated_utc, time_precision_s, time_zone_explicit, time_flags,
               TIMESTAMPTZ '{seen.isoformat()}' AS first_seen_utc,
               'import:{int(import_id)}:{name}:' || _line AS provenance
        FROM mt_items WHERE problem IS NULL""")
    try:
        return store.write_items(con, "mt_ready")
    finally:
        con.execute("DROP VIEW mt_ready")
