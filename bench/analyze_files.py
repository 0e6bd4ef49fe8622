"""`media-timing analyze --releases R --announcements A` on a large announcements file.

Measured in the same run, each in its own process (wall time and that process's peak RSS):
  (a) floor: DuckDB reading the file and casting ts_utc to a timestamp, nothing else;
  (b) the whole command: the files read (pipeline.sources.csv_scan), every time parsed as every
      source's are (mt_parse_time), the coincidence test with 9,999 surrogates and 100 draws;
  (c) the row-by-row reference path (Python's csv reader, then parse_times), reading only, on
      --reference-rows rows (it holds every row as Python objects: 10M rows would take minutes).
Targets: (b) under 10 s and 1 GB with 10M announcements.

    .venv/bin/python bench/analyze_files.py [--rows 10000000] [--intervals] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_files(folder: Path, rows: int, intervals: bool) -> tuple[Path, Path]:
    import duckdb

    ann = folder / f"announcements_{rows}{'_iv' if intervals else ''}.csv"
    rel = folder / "releases.csv"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    t = "TIMESTAMPTZ '2016-01-01 00:00:00+00' + to_seconds((hash(n) % 31536000)::BIGINT)"
    extra = (f", CASE WHEN n % 3 = 0 THEN strftime({t} - INTERVAL 1 HOUR, '%Y-%m-%dT%H:%M:%SZ') ELSE '' END "
             f"AS earliest_utc, CASE WHEN n % 3 = 0 THEN strftime({t} + INTERVAL 1 HOUR, '%a, %d %b %Y %H:%M:%S GMT') "
             "ELSE '' END AS latest_utc") if intervals else ""
    if not ann.exists():
        con.execute(f"""COPY (SELECT 'Headline ' || n || ', said the agency' AS title,
                                     strftime({t}, '%Y-%m-%dT%H:%M:%SZ') AS ts_utc {extra}
                              FROM range({rows}) r(n)) TO '{ann}' (HEADER)""")
    con.execute(f"""COPY (SELECT strftime(TIMESTAMPTZ '2016-02-01 20:32:00+00' + to_days(n * 30), '%Y-%m-%dT%H:%M:%SZ')
                          AS ts_utc FROM range(10) r(n)) TO '{rel}' (HEADER)""")
    con.close()
    return rel, ann


def run(code: str) -> tuple[float, float, str]:
    """(wall s, peak RSS MB) of a fresh Python process running ``code``, and what it printed."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, out.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--reference-rows", type=int, default=1_000_000)
    ap.add_argument("--intervals", action="store_true", help="add earliest_utc/latest_utc to a third of the rows")
    ap.add_argument("--keep", help="folder for the files (kept and reused between runs)")
    args = ap.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-analyze-"))
    folder.mkdir(parents=True, exist_ok=True)
    rel, ann = write_files(folder, args.rows, args.intervals)
    _, small = write_files(folder, args.reference_rows, args.intervals)
    floor = run(textwrap.dedent(f"""
        import duckdb
        con = duckdb.connect()
        print(con.execute("SELECT count(*), min(CAST(ts_utc AS TIMESTAMPTZ)) FROM read_csv({str(ann)!r}, all_varchar=true)").fetchall())
    """))
    ours = run(textwrap.dedent(f"""
        from pipeline.cli import main
        main(["analyze", "--releases", {str(rel)!r}, "--announcements", {str(ann)!r}])
    """))
    fast_small = run(textwrap.dedent(f"""
        from pipeline.analysis.analyze_files import read_times
        print(len(read_times({str(small)!r})[2]))
    """))
    reference = run(textwrap.dedent(f"""
        from pipeline.sources.csvfile import read_records
        from pipeline.timestamps import parse_times
        f = read_records({str(small)!r}, ["ts_utc"]).frame
        p = [parse_times(f["ts_utc"])] + [parse_times(f[c].where(f[c].str.strip() != "", f["ts_utc"]))
                                          for c in ("earliest_utc", "latest_utc") if c in f]
        print(len(p[0].utc))
    """))
    print(f"\n{args.rows:,} announcements ({ann.stat().st_size / 1e6:.0f} MB"
          f"{', a third with earliest/latest' if args.intervals else ''}), 2 cores\n")
    print(f"{'what':62} {'seconds':>8} {'peak RSS':>9}")
    for name, (wall, rss, _) in (
            ("(a) floor: DuckDB read_csv + cast of ts_utc", floor),
            ("(b) media-timing analyze --releases --announcements", ours),
            (f"(c) reference reader, {args.reference_rows:,} rows (read only)", reference),
            (f"(d) read_times, {args.reference_rows:,} rows (read only)", fast_small)):
        print(f"{name:62} {wall:8.2f} {rss:7.0f} MB")
    print(f"    {ours[2].splitlines()[-1][:150]}")
    print(f"\nanalyze / floor: {ours[0] / floor[0]:.2f}x; reference / read_times at {args.reference_rows:,} rows: "
          f"{reference[0] / fast_small[0]:.1f}x; analyze {ours[0]:.1f} s, {ours[1]:.0f} MB (target < 10 s, < 1024 MB)")


if __name__ == "__main__":
    main()
