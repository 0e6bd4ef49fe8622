"""Benchmark of feed ingestion: a first poll, a re-poll, against the loop most people write.

N feeds (default 1,000) cycled from the sample feed files, served by a local threaded HTTP/1.1
server in its own process with a per-request delay (default 50 ms), spread over 100 loopback
addresses (127.0.0.1-100: a real registry spans many hosts; per-host politeness applies).
Prints feeds/s and items/s for:
  (a) the baseline: feedparser.parse(url) in a loop, one INSERT per item (measured on a subset,
      scaled linearly to N: it is a sequential loop);
  (b) the pipeline's first poll into DuckDB (media-timing ingest feeds);
  (c) its re-poll of the unchanged feeds (conditional GET: 304s);
  (d) the parse-only floor of the parser used: its CPU time for the same N bodies / cores.

Run: .venv/bin/python bench/ingest.py [--feeds 1000] [--delay-ms 50] [--baseline-feeds 100]
Sample feeds: ../shared/feeds-sample if present (60 files), else tests/fixtures/feeds (7).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import Settings  # noqa: E402
from pipeline.database import open_db  # noqa: E402
from pipeline.feeds import import_feeds  # noqa: E402
from pipeline.ingest import run_ingest  # noqa: E402
from pipeline.parse_feed import items_frame, parse_feed  # noqa: E402

HOSTS = 100

SERVER = textwrap.dedent("""
    import hashlib, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    files = [open(p, 'rb').read() for p in sys.argv[3:]]
    tags = ['"' + hashlib.md5(b).hexdigest() + '"' for b in files]
    delay = float(sys.argv[2]) / 1000

    class H(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        def log_message(self, *a): pass
        def do_GET(self):
            time.sleep(delay)
            i = int(self.path.rsplit('/', 1)[1].split('.')[0]) % len(files)
            if self.headers.get('If-None-Match') == tags[i]:
                self.send_response(304); self.send_header('ETag', tags[i])
                self.send_header('Content-Length', '0'); self.end_headers(); return
            body = files[i]
            self.send_response(200)
            self.send_header('Content-Type', 'application/xml')
            self.send_header('ETag', tags[i])
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class S(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

    srv = S(('0.0.0.0', int(sys.argv[1])), H)
    print('ready', flush=True)
    srv.serve_forever()
""")


def sample_files() -> list[Path]:
    shared = ROOT.parent / "shared" / "feeds-sample"
    files = sorted(shared.glob("*.xml")) if shared.exists() else []
    return files or sorted((ROOT / "tests" / "fixtures" / "feeds").glob("*.xml"))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def urls(n: int, port: int) -> list[str]:
    return [f"http://127.0.0.{1 + i % HOSTS}:{port}/feed/{i}.xml" for i in range(n)]


def baseline(feed_urls: list[str], db: Path) -> tuple[float, int]:
    """feedparser.parse(url) per feed, one INSERT per item: what most people write first."""
    import duckdb
    import feedparser

    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE items (feed VARCHAR, guid VARCHAR, title VARCHAR, link VARCHAR, published VARCHAR)")
    started = time.perf_counter()
    cpu = time.process_time()
    n = 0
    for url in feed_urls:
        parsed = feedparser.parse(url)
        for e in parsed.entries:
            con.execute("INSERT INTO items VALUES (?, ?, ?, ?, ?)",
                        [url, e.get("id"), e.get("title"), e.get("link"), e.get("published")])
            n += 1
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    con.close()
    return elapsed, n, cpu


def parse_floor(files: list[Path], n: int) -> tuple[float, float, int]:
    """CPU seconds our parser needs for the same n bodies, and that divided by cores."""
    bodies = [files[i % len(files)].read_bytes() for i in range(n)]
    t = time.process_time()
    entries, bases = [], []
    for i, b in enumerate(bodies):
        feed = parse_feed(b)
        entries += feed.entries
        bases += [f"http://x/{i}"] * len(feed.entries)
    items_frame(entries, bases, pd.Series([datetime.now(UTC)] * len(entries)))
    cpu = time.process_time() - t
    return cpu, cpu / (os.cpu_count() or 1), len(entries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--delay-ms", type=float, default=50)
    ap.add_argument("--baseline-feeds", type=int, default=100, help="feeds the baseline really polls")
    ap.add_argument("--workers", type=int, default=128)
    ap.add_argument("--per-host", type=int, default=2)
    args = ap.parse_args()

    files = sample_files()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(args.delay_ms), *map(str, files)],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    feed_urls = urls(args.feeds, port)
    print(f"{args.feeds} feeds cycled from {len(files)} sample files ({sum(f.stat().st_size for f in files) / 1e6:.1f} MB), "
          f"{HOSTS} hosts, {args.delay_ms:g} ms server delay, {os.cpu_count()} cores, "
          f"{args.workers} workers, {args.per_host} per host\n")
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            nb = min(args.baseline_feeds, args.feeds)
            t_base, items_base, cpu_base = baseline(feed_urls[:nb], tmp / "baseline.duckdb")
            scale = args.feeds / nb
            t_base_n = t_base * scale
            rows.append((f"(a) baseline: feedparser.parse(url) loop + row inserts ({nb} feeds, x{scale:g})",
                         t_base_n, args.feeds / t_base_n, items_base * scale / t_base_n, cpu_base * scale))

            settings = Settings(db_path=tmp / "bench.duckdb", data_dir=tmp / "data", lock_wait_s=60,
                                fetch_workers=args.workers, fetch_per_host=args.per_host)
            registry = tmp / "feeds.yaml"
            registry.write_text("feeds:\n" + "".join(f"  - {{url: '{u}', name: 'f{i}'}}\n" for i, u in enumerate(feed_urls)))
            with open_db(settings.db_path) as con:
                import_feeds(con, registry)
            t, c = time.perf_counter(), time.process_time()
            first = run_ingest(settings, force=True, show_progress=False)
            t_first, cpu_first = time.perf_counter() - t, time.process_time() - c
            with open_db(settings.db_path) as con:
                items_total = con.execute("SELECT sum(items_total) FROM fetches").fetchall()[0][0]
            rows.append(("(b) pipeline, first poll into DuckDB", t_first, args.feeds / t_first,
                         items_total / t_first, cpu_first))
            t, c = time.perf_counter(), time.process_time()
            again = run_ingest(settings, force=True, show_progress=False)
            t_again, cpu_again = time.perf_counter() - t, time.process_time() - c
            rows.append(("(c) pipeline, re-poll of unchanged feeds", t_again, args.feeds / t_again, 0.0, cpu_again))
            cpu, floor, n_items = parse_floor(files, args.feeds)
            rows.append((f"(d) parse-only floor: {cpu:.2f} s CPU / {os.cpu_count()} cores", floor,
                         args.feeds / floor, n_items / floor, cpu))
    finally:
        server.terminate()
        server.wait()

    width = max(len(r[0]) for r in rows)
    print(f"{'':<{width}}  {'seconds':>8}  {'feeds/s':>9}  {'items/s':>10}  {'CPU s (ours)':>12}")
    for what, sec, fps, ips, cpu_s in rows:
        print(f"{what:<{width}}  {sec:>8.2f}  {fps:>9.0f}  {ips:>10.0f}  {cpu_s:>12.2f}")
    print(f"\nfirst poll: {first.line()}")
    print(f"re-poll:    {again.line()}")
    vs_base = t_base_n / t_first
    vs_floor = t_first / floor
    repoll = t_first / t_again
    print(f"\ntarget: first poll at least 20x the baseline ... {'met' if vs_base >= 20 else 'NOT met'} ({vs_base:.0f}x)")
    print(f"target: first poll within 2x of the floor ..... {'met' if vs_floor <= 2 else 'NOT met'} ({vs_floor:.1f}x)")
    print(f"target: re-poll at least 10x cheaper .......... {'met' if repoll >= 10 else 'NOT met'} "
          f"({repoll:.1f}x in time, {cpu_first / cpu_again:.1f}x in CPU)")
    print("(the server process shares the same cores; CPU columns count this process only)")


if __name__ == "__main__":
    main()
