"""Importing a large stream CSV: `media-timing import items` against DuckDB's own read_csv.

The floor is DuckDB reading the same file into a table of a fresh database file (no parsing of
times, no keys, no flags). Each side runs in its own process, so peak RSS is that process's
own; both are measured in the same run. Targets: within 3x of the floor in time, peak RSS under
1 GB (at any size: run with --rows 20000000 to see it stay flat).

    .venv/bin/python bench/import_csv.py [--rows 5500000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORDS = np.array("the a news trump clinton leak emails tape debate poll russia hack vote state said new report "
                 "after before watch live update breaking".split())


def write_csv(path: Path, n: int, seed: int = 1) -> None:
    """Tweet-like rows: id, ISO time with Z, author, quoted text with commas (and a few newlines)."""
    rng = np.random.default_rng(seed)
    t0 = 1472688000 + np.sort(rng.integers(0, 90 * 86400, n))
    with open(path, "w") as f:
        f.write("tweet_id,created_at_utc,author,text\n")
        for s in range(0, n, 200_000):
            e = min(n, s + 200_000)
            ts = np.datetime_as_string(t0[s:e].astype("datetime64[s]"), unit="s")
            auth = rng.integers(0, 500, e - s)
            k = rng.integers(6, 14, e - s)
            picks = rng.integers(0, len(WORDS), (e - s, 14))
            nl = rng.random(e - s) < 0.01
            rows = []
            for i in range(e - s):
                text = " ".join(WORDS[picks[i, :k[i]]]) + (",\nmore" if nl[i] else ", more text here to pad")
                rows.append(f'{780000000000000000 + s + i},{ts[i]}Z,user{auth[i]},"{text}"\n')
            f.write("".join(rows))


def run(code: str, env: dict) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MB) of a fresh Python process running ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"failed: {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024, proc.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_500_000)
    ap.add_argument("--keep", help="folder for the CSV (kept and reused between runs)")
    args = ap.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-import-"))
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / f"stream_{args.rows}.csv"
    if not csv_path.exists():
        t = time.perf_counter()
        write_csv(csv_path, args.rows)
        print(f"wrote {csv_path} ({csv_path.stat().st_size / 1e6:.0f} MB, {args.rows:,} rows) "
              f"in {time.perf_counter() - t:.0f} s")
    env = {**os.environ, "MEDIA_TIMING_DATA_DIR": str(folder / "data")}
    floor_db, ours_db = folder / "floor.duckdb", folder / "ours.duckdb"
    for db in (floor_db, ours_db):
        for f in (db, Path(str(db) + ".wal")):
            f.unlink(missing_ok=True)
    floor = run(textwrap.dedent(f"""
        import duckdb
        con = duckdb.connect({str(floor_db)!r})
        con.execute("CREATE TABLE t AS SELECT * FROM read_csv({str(csv_path)!r})")
        print(con.execute("SELECT count(*) FROM t").fetchall()[0][0])
    """), env)
    importer = textwrap.dedent(f"""
        from pipeline.cli import main
        main(["--db", {str(ours_db)!r}, "import", "items", {str(csv_path)!r}, "--source", "bench",
              "--time-column", "created_at_utc", "--text-column", "text", "--id-column", "tweet_id",
              "--author-column", "author"])
    """)
    ours = run(importer, env)
    again = run(importer, env)
    print(f"\n{args.rows:,} rows, {csv_path.stat().st_size / 1e6:.0f} MB, 2 cores\n")
    print(f"{'what':58} {'seconds':>8} {'rows/s':>11} {'CPU s':>7} {'peak RSS':>9}")
    for name, (wall, cpu, rss, out) in (
            ("(a) floor: DuckDB read_csv into a table", floor),
            ("(b) media-timing import items (times, keys, flags, ledger)", ours),
            ("(c) the same import again (0 new)", again)):
        print(f"{name:58} {wall:8.2f} {args.rows / wall:11,.0f} {cpu:7.2f} {rss:7.0f} MB")
        if name.startswith("(b)") or name.startswith("(c)"):
            print(f"    {out.splitlines()[-1][:150]}")
    print(f"\nimport / floor: {ours[0] / floor[0]:.2f}x (target 3x); peak RSS {ours[2]:.0f} MB (target < 1024 MB)")


if __name__ == "__main__":
    main()
