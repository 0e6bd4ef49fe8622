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

Run: .venv/bin/python bench/ingest.py [--feeds 1000] [--delay-ms 50] [--baseline-feeds 100] [--runs 3]
Sample feeds: ../shared/feeds-sample if present (60 files), else tests/fixtures/feeds (7).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import Settings  # noqa: E402
from pipeline.sources.feeds import import_feeds  # noqa: E402
from pipeline.sources.ingest import run_ingest  # noqa: E402
from pipeline.sources.parse_feed import items_frame, parse_feed  # noqa: E402
from pipeline.store.database import open_db  # noqa: E402

HOSTS = 100

# A lean threaded HTTP/1.1 server (a thread per connection, keep-alive, ETag): its own CPU
# competes with the pipeline for the same cores, where real feed servers cost us none, so it
# does no more per request than parse the request head, sleep the delay and send the answer.
SERVER = textwrap.dedent("""
    import hashlib, socketserver, sys, time
    files = [open(p, 'rb').read() for p in sys.argv[3:]]
    tags = [b'"' + hashlib.md5(b).hexdigest().encode() + b'"' for b in files]
    delay = float(sys.argv[2]) / 1000
    head = b'HTTP/1.1 200 OK\\r\\nContent-Type: application/xml\\r\\nETag: %s\\r\\nContent-Length: %d\\r\\n\\r\\n'
    full = [head % (t, len(b)) + b for t, b in zip(tags, files)]
    not_modified = [b'HTTP/1.1 304 Not Modified\\r\\nETag: %s\\r\\nContent-Length: 0\\r\\n\\r\\n' % t for t in tags]

    class H(socketserver.StreamRequestHandler):
        def handle(self):
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    return
                etag, close = None, False
                while (h := self.rfile.readline(65537)) not in (b'\\r\\n', b'\\n', b''):
                    name, _, value = h.partition(b':')
                    name = name.strip().lower()
                    if name == b'if-none-match':
                        etag = value.strip()
                    elif name == b'connection' and value.strip().lower() == b'close':
                        close = True
                time.sleep(delay)
                i = int(line.split()[1].rsplit(b'/', 1)[1].split(b'.')[0]) % len(files)
                self.wfile.write(not_modified[i] if etag == tags[i] else full[i])
                if close:
                    return

    class S(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
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


def cpu_time() -> float:
    """CPU of this process and of its finished children: the pipeline's forked fetch processes
    (joined before run_ingest returns), not the still-running feed server."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def server_cpu(pid: int) -> float:
    """The feed server's CPU seconds so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def pipeline_run(where: Path, feed_urls: list[str], args, server_pid: int) -> dict:
    """A fresh database with every feed registered, then `ingest feeds` twice."""
    settings = Settings(db_path=where / "bench.duckdb", data_dir=where / "data", lock_wait_s=60,
                        fetch_workers=args.workers, fetch_per_host=args.per_host,
                        fetch_processes=args.processes,
                        fetch_allow_networks="127.0.0.0/8")  # the bench's feed hosts are on loopback
    where.mkdir(parents=True)
    registry = where / "feeds.yaml"
    registry.write_text("feeds:\n" + "".join(f"  - {{url: '{u}', name: 'f{i}'}}\n" for i, u in enumerate(feed_urls)))
    with open_db(settings.db_path) as con:
        import_feeds(con, registry)
    out = {}
    for label in ("first", "again"):
        t, c, sc = time.perf_counter(), cpu_time(), server_cpu(server_pid)
        out[label] = run_ingest(settings, force=True, show_progress=False)
        out["t_" + label], out["cpu_" + label] = time.perf_counter() - t, cpu_time() - c
        out["server_" + label] = server_cpu(server_pid) - sc
    with open_db(settings.db_path) as con:
        out["items"] = con.execute("SELECT sum(items_total) FROM fetches WHERE items_total > 0").fetchall()[0][0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--delay-ms", type=float, default=50)
    ap.add_argument("--baseline-feeds", type=int, default=100, help="feeds the baseline really polls")
    ap.add_argument("--workers", type=int, default=200)
    ap.add_argument("--per-host", type=int, default=2)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="parser processes")
    ap.add_argument("--runs", type=int, default=3, help="first poll + re-poll + floor, each run; medians shown")
    args = ap.parse_args()

    files = sample_files()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(args.delay_ms), *map(str, files)],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    feed_urls = urls(args.feeds, port)
    print(f"{args.feeds} feeds cycled from {len(files)} sample files ({sum(f.stat().st_size for f in files) / 1e6:.1f} MB), "
          f"{HOSTS} hosts, {args.delay_ms:g} ms server delay, {os.cpu_count()} cores, "
          f"{args.workers} workers, {args.per_host} per host, {args.processes} fetch processes\n")
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            nb = min(args.baseline_feeds, args.feeds)
            # In its own process: another program's heap must not weigh on the pipeline's runs.
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                t_base, items_base, cpu_base = pool.submit(baseline, feed_urls[:nb], tmp / "baseline.duckdb").result()
            scale = args.feeds / nb
            t_base_n = t_base * scale
            rows.append((f"(a) baseline: feedparser.parse(url) loop + row inserts ({nb} feeds, x{scale:g})",
                         t_base_n, args.feeds / t_base_n, items_base * scale / t_base_n, cpu_base * scale))

            runs = []
            for r in range(args.runs):  # each run: a fresh database, a first poll, a re-poll
                runs.append(pipeline_run(tmp / f"run{r}", feed_urls, args, server.pid))
                runs[-1]["floor_cpu"], runs[-1]["floor"], n_items = parse_floor(files, args.feeds)
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k not in ("first", "again")}
            first, again = runs[0]["first"], runs[0]["again"]
            rows.append(("(b) pipeline, first poll into DuckDB", med["t_first"], args.feeds / med["t_first"],
                         med["items"] / med["t_first"], med["cpu_first"]))
            rows.append(("(c) pipeline, re-poll of unchanged feeds", med["t_again"], args.feeds / med["t_again"],
                         0.0, med["cpu_again"]))
            rows.append((f"(d) parse-only floor: {med['floor_cpu']:.2f} s CPU / {os.cpu_count()} cores",
                         med["floor"], args.feeds / med["floor"], n_items / med["floor"], med["floor_cpu"]))
    finally:
        server.terminate()
        server.wait()

    width = max(len(r[0]) for r in rows)
    print(f"{'':<{width}}  {'seconds':>8}  {'feeds/s':>9}  {'items/s':>10}  {'CPU s (ours)':>12}")
    for what, sec, fps, ips, cpu_s in rows:
        print(f"{what:<{width}}  {sec:>8.2f}  {fps:>9.0f}  {ips:>10.0f}  {cpu_s:>12.2f}")
    print(f"\nfirst poll: {first.line()}")
    print(f"re-poll:    {again.line()}")
    print(f"({args.runs} runs, medians shown; per run, first poll / re-poll / floor, seconds: "
          + ", ".join(f"{r['t_first']:.2f} / {r['t_again']:.2f} / {r['floor']:.2f}" for r in runs) + ")")
    vs_base = t_base_n / med["t_first"]
    vs_floor = med["t_first"] / med["floor"]
    repoll = med["t_first"] / med["t_again"]
    print(f"\ntarget: first poll at least 20x the baseline ... {'met' if vs_base >= 20 else 'NOT met'} ({vs_base:.0f}x)")
    print(f"target: first poll within 2x of the floor ..... {'met' if vs_floor <= 2 else 'NOT met'} ({vs_floor:.1f}x)")
    cheaper = med["cpu_first"] / med["cpu_again"]
    print(f"target: re-poll at least 10x cheaper (CPU) .... {'met' if cheaper >= 10 else 'NOT met'} "
          f"({cheaper:.1f}x in CPU; {repoll:.1f}x in time, where the server's delay and the per-host "
          f"limit set a floor of {args.feeds / HOSTS / args.per_host * args.delay_ms / 1000:.2f} s)")
    print(f"(the feed server shares the same cores: it used {med['server_first']:.2f} s of CPU during (b) "
          f"and {med['server_again']:.2f} s during (c); the CPU column counts the pipeline's processes only)")


if __name__ == "__main__":
    main()
