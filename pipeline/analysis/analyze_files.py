"""The scriptable analysis: two CSV files in, one JSON document out, no database involved."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.config import SQL_DIR
from pipeline.errors import UserError
from pipeline.sources.csv_scan import drop as drop_scan
from pipeline.sources.csv_scan import scan_csv
from pipeline.sources.csvfile import CsvFileError, read_header
from pipeline.timestamps import iso_z, resolve
from pipeline.timing.coincidence import DEFAULT_STEP, coincidence_test, counted_stretches
from pipeline.timing.nulls import Coverage
from pipeline.timing.registry import make_null
from pipeline.timing.uncertainty import over_intervals


class InputError(UserError):
    pass


TIME_COLUMNS = ("ts_utc", "earliest_utc", "latest_utc")
# DuckDB's share of one analysis: the scan of the file and one parsed row per record. Beyond it,
# DuckDB spills to its temporary folder rather than grow (10M announcements, a third with intervals, peak at 0.8 GB).
READ_MEMORY = "256MB"


def read_times(path: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(earliest, latest, best) epoch seconds from a CSV with ts_utc and optional
    earliest_utc/latest_utc columns (a blank one means ts_utc). Any bad row, or any record that
    is not valid CSV, is an error naming its line.

    Read by DuckDB (pipeline.sources.csv_scan) and parsed in SQL (mt_parse_time, as every
    source's times are), in parallel and never as Python objects per row: only the strings the
    SQL flags come back to Python, to be tried row by row or named as errors.
    """
    path = Path(path)
    if not path.is_file():
        raise CsvFileError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    header = read_header(path, ["ts_utc"])
    cols = [c for c in TIME_COLUMNS if c in header]
    con = duckdb.connect(config={"memory_limit": READ_MEMORY})
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.execute((SQL_DIR / "views" / "030_time_macros.sql").read_text())
        scan = scan_csv(con, path, header, "mt_times", keep=cols)  # not the titles and the rest
        return _parsed(con, path, cols, scan.rejected)
    finally:
        con.close()


def _parsed(con, path: Path, cols: list[str], rejected: list[tuple[int, str]]):
    # A blank earliest/latest means ts_utc: it stays NULL here, is not parsed (in a file where
    # most rows are exact that is most of the parsing) and takes ts_utc's instant below.
    raw = {c: '"ts_utc"' if c == "ts_utc" else f"CASE WHEN trim(\"{c}\") = '' THEN NULL ELSE \"{c}\" END"
           for c in cols}
    # per column: the instant, and the string itself only where the SQL flags it
    strings = ", ".join(f"{raw[c]} AS r_{c}" for c in cols)
    parse = ", ".join(f"r_{c}, mt_parse_time(r_{c}, NULL, 'reject') AS p_{c}" for c in cols)
    # Kept per row: the instant in microseconds, and the problem and string only where flagged
    # (not the whole parsed struct: a quarter of the bytes, which 10M rows spill to disk).
    keep = ", ".join(f"epoch_us(p_{c}.utc) AS us_{c}, p_{c}.problem AS why_{c}, "
                     f"CASE WHEN p_{c}.problem IS NOT NULL THEN r_{c} END AS raw_{c}" for c in cols)
    con.execute(f"""CREATE TEMP TABLE mt_parsed AS SELECT _line, {keep} FROM (
                    SELECT _line, {parse} FROM (SELECT _line, {strings} FROM mt_times))""")
    drop_scan(con, "mt_times")
    flagged = con.execute(" UNION ALL ".join(
        f"SELECT _line, '{c}', why_{c}, raw_{c} FROM mt_parsed WHERE why_{c} IS NOT NULL"
        + ("" if c == "ts_utc" else f" AND raw_{c} IS NOT NULL")  # blank: ts_utc's, not a problem
        for c in cols)).fetchall()
    problems = [(line, f"{path}:{line}: {why}") for line, why in rejected]
    fixed = []
    for line, col, problem, s in flagged:
        ts, err = resolve(s, problem, None, "reject")
        if err:
            problems.append((line, f"{path}:{line}: {col}: {err}"))
        else:
            fixed.append((line, col, ts.value // 1000))
    if problems:
        problems.sort()
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError("\n".join(p for _, p in problems[:20]) + more)
    us = {c: f"us_{c}" for c in cols}
    joins = ""
    if fixed:  # the instants Python read, in place of the SQL's NULLs
        con.register("mt_fixed", pd.DataFrame(fixed, columns=["_line", "col", "us"]))
        con.execute("CREATE TEMP TABLE mt_fix AS SELECT _line, col, us::BIGINT AS us FROM mt_fixed")
        con.unregister("mt_fixed")
        joins = " ".join(f"LEFT JOIN (SELECT _line, us AS fix_{c} FROM mt_fix WHERE col = '{c}') USING (_line)"
                         for c in cols)
        us = {c: f"coalesce({us[c]}, fix_{c})" for c in cols}
    best = us["ts_utc"]
    us = {c: e if c == "ts_utc" else f"coalesce({e}, {best})" for c, e in us.items()}
    con.execute(f"CREATE TEMP VIEW mt_instants AS SELECT _line, {us.get('earliest_utc', best)} AS lo, "
                f"{best} AS best, {us.get('latest_utc', best)} AS hi FROM mt_parsed {joins}")
    (bad,) = con.execute("SELECT min(_line) FROM mt_instants WHERE lo > best OR best > hi").fetchall()[0]
    if bad is not None:
        raise InputError(f"{path}:{bad}: earliest_utc <= ts_utc <= latest_utc does not hold")
    wanted = ["best"] + [n for n, c in (("lo", "earliest_utc"), ("hi", "latest_utc")) if c in cols]
    t = {n: _seconds(con, n) for n in wanted}  # a column at a time: one copy in flight, not three
    return t.get("lo", t["best"]), t.get("hi", t["best"]), t["best"]


def _seconds(con, column: str) -> np.ndarray:
    out = con.execute(f"SELECT {column} FROM mt_instants").fetchnumpy()[column].astype(np.float64)
    out /= 1e6
    return out


def analyze_files(releases: Path | str, announcements: Path | str, *, window_minutes: float,
                  null: str, surrogates: int, seed: int, draws: int = 100,
                  coverage: tuple[float, float] | None = None) -> dict:
    rel = read_times(releases)
    ann = read_times(announcements)
    if not len(ann[2]):
        raise InputError(f"{announcements}: no announcements")
    if coverage is None:
        coverage = (float(np.floor(ann[0].min() / DEFAULT_STEP) * DEFAULT_STEP),
                    float(np.ceil(ann[1].max() / DEFAULT_STEP) * DEFAULT_STEP + DEFAULT_STEP))
    cov = Coverage(*coverage)
    model = make_null(null)
    window_s = window_minutes * 60

    def test(r, a, s):
        return coincidence_test(r, a, window_s=window_s, null=model, coverage=cov,
                                n_surrogates=surrogates, seed=s)

    def counted(r):
        return counted_stretches(r, window_s=window_s, null=model, coverage=cov)

    summary = over_intervals(test, rel, ann, draws=draws, seed=seed, step=DEFAULT_STEP, counted=counted)
    records = []
    for i in range(len(rel[2])):
        pmin, pmed, pmax = summary.pvalue_range(i)
        cmin, cmax = summary.count_range(i)
        records.append({
            "release_ts_utc": iso_z(rel[2][i]),
            "count": float(np.median(summary.counts[:, i])),
            "count_min": cmin, "count_max": cmax,
            "pvalue": None if np.isnan(pmed) else pmed,
            "pvalue_min": None if np.isnan(pmin) else pmin,
            "pvalue_max": None if np.isnan(pmax) else pmax,
        })
    pmin, pmed, pmax = summary.pvalue_range(None)
    return {
        "null": model.describe(), "window_minutes": window_minutes, "surrogates": surrogates,
        "seed": seed, "draws": summary.draws,
        "coverage": [iso_z(cov.start), iso_z(cov.end)],
        "releases": records,
        "pooled": {"statistic": float(np.median(summary.pooled_statistics)),
                   "pvalue": None if np.isnan(pmed) else pmed,
                   "pvalue_min": None if np.isnan(pmin) else pmin,
                   "pvalue_max": None if np.isnan(pmax) else pmax},
    }
