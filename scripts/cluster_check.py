"""`scripts/cluster.sh check`: one poll of served feeds through the running cluster, checked.

Serves the bundled fixture feeds on three addresses of this machine (loopback ones, or with `up
--machines` ones on the cluster's network; three hosts give the poll three fetch shards),
registers them as new feeds, triggers `ingest_feeds` through the REST API and then asserts, from
the metadata database, the REST API and the DuckDB file: the run succeeded; every fetch task ran
on the `default` queue and worker, every other task on the `duckdb` queue and worker; each fetch's
log reads through the API server (with --machines: served by its worker's machine); each feed was
fetched once and each of its items landed and was sighted once; `analyze_timing` followed on the
asset event. Prints who ran what, and exits 1 with every problem found.

Run through cluster.sh (it sources the cluster's env.sh). tests/test_cluster.py imports these
pieces for the worker-kill scenario."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import psycopg2
import requests

from pipeline.store.database import connect

ROOT = Path(__file__).resolve().parent.parent
FEEDS = ROOT / "tests" / "fixtures" / "feeds"


def feed_hosts() -> tuple[str, ...]:
    """Addresses of this machine the check's feeds are served on: loopback ones, or with
    `up --machines` ones on the cluster's network (a worker host cannot reach this loopback)."""
    return tuple(os.environ.get("CLUSTER_FEED_HOSTS", "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4").split(","))


def control() -> str:
    """The control machine's address: where PostgreSQL and the API server listen."""
    return os.environ.get("CLUSTER_HOST", "127.0.0.1")


def machines() -> dict[str, str]:
    """With `up --machines`: worker tag by address (the address is the worker's Airflow hostname)."""
    folder = Path(os.environ.get("CLUSTER_DIR", "/nonexistent")) / "machines"
    return {(m / "address").read_text().strip(): m.name for m in folder.glob("*") if (m / "address").exists()}


def worker_tag(hostname: str | None) -> str:
    """The tag of the worker that ran a task: scripts/cluster_hosts.py names it by its address on
    its own machine, by this machine's name and the tag on one machine."""
    return machines().get(hostname or "") or (hostname or "").rsplit("-", 1)[-1]


class FeedHandler(http.server.SimpleHTTPRequestHandler):
    """Files of one folder; /slow/SECONDS/FILE trickles the file over that many seconds (a fetch
    that is still running when its worker is killed)."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        if not self.path.startswith("/slow/"):
            return super().do_GET()
        _, _, secs, name = self.path.split("/", 3)
        body = (Path(self.directory) / name.split("?")[0]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        steps = max(1, int(float(secs)))
        chunk = -(-len(body) // steps)
        try:
            for i in range(0, len(body), chunk):
                self.wfile.write(body[i:i + chunk])
                self.wfile.flush()
                time.sleep(float(secs) / steps)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the fetching worker was killed: expected in the fault test

    def log_message(self, *args):
        pass


class FeedServer:
    """The fixture feeds on every address given, one port, in this process's threads."""

    def __init__(self, hosts: tuple[str, ...], port: int = 0, folder: Path = FEEDS):
        handler = functools.partial(FeedHandler, directory=str(folder))
        self.servers = [http.server.ThreadingHTTPServer((hosts[0], port), handler)]
        self.port = self.servers[0].server_address[1]
        self.servers += [http.server.ThreadingHTTPServer((h, self.port), handler) for h in hosts[1:]]
        for s in self.servers:
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever, daemon=True).start()

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}/{path}"

    def close(self) -> None:
        for s in self.servers:
            s.shutdown()
            s.server_close()


class Api:
    """Airflow's REST API as admin, with the password Airflow generated for this cluster."""

    def __init__(self):
        self.base = f"http://{control()}:{os.environ['CLUSTER_API_PORT']}"
        home = Path(os.environ["AIRFLOW_HOME"])
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        r = requests.post(f"{self.base}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        r.raise_for_status()
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    def get(self, path: str) -> dict:
        r = requests.get(self.base + path, headers=self.headers, timeout=30)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict) -> dict:
        r = requests.post(self.base + path, headers=self.headers, json=body, timeout=30)
        r.raise_for_status()
        return r.json()

    def trigger(self, dag_id: str, note: str) -> str:
        return self.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "note": note})["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        return "timed out"


def meta(query: str, *args) -> list[tuple]:
    """Rows from the cluster's PostgreSQL metadata database."""
    con = psycopg2.connect(host=control(), port=os.environ["CLUSTER_PG_PORT"], dbname="airflow",
                           user="airflow", password=os.environ["CLUSTER_PG_PASSWORD"])
    try:
        with con.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall()
    finally:
        con.close()


def task_rows(dag_id: str, run_id: str) -> list[dict]:
    cols = ("task_id", "map_index", "try_number", "state", "queue", "hostname")
    rows = meta(f"SELECT {', '.join(cols)} FROM task_instance WHERE dag_id = %s AND run_id = %s "
                "ORDER BY start_date NULLS LAST", dag_id, run_id)
    return [dict(zip(cols, r)) for r in rows]


def duck(query: str, *args, timeout: float = 120) -> list[tuple]:
    """Rows from the cluster's DuckDB file, read-only, waiting while the duckdb worker writes."""
    con = connect(os.environ["MEDIA_TIMING_DB"], read_only=True, wait_s=timeout)
    try:
        return con.execute(query, list(args)).fetchall()
    finally:
        con.close()


def register(feeds: list[tuple[str, str]], role: str = "news") -> None:
    """`media-timing feeds add` for each (name, url); the command itself waits while a task
    holds the file (MEDIA_TIMING_LOCK_WAIT_S)."""
    cli = ROOT / ".venv" / "bin" / "media-timing"
    for name, url in feeds:
        p = subprocess.run([str(cli), "feeds", "add", url, "--name", name, "--role", role],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"feeds add {name} failed: {p.stderr.strip() or p.stdout.strip()}")


def clear_of_schedule(margin_s: int = 30) -> None:
    """ingest_feeds also runs every 15 minutes: keep the new feeds out of a scheduled run's plan
    by not registering them just before a quarter hour (``wait_idle`` and ``polling_run`` cover
    the rest)."""
    now = datetime.now(UTC)
    into = (now.minute % 15) * 60 + now.second
    if into > 900 - margin_s:
        time.sleep(900 - into + 15)


def wait_idle(timeout: float = 300) -> None:
    """Wait until no ingest_feeds run under way has still to plan (the one a fresh scheduler
    starts at once), so that none plans the new feeds while they are being registered."""
    deadline = time.monotonic() + timeout
    while meta("""SELECT count(*) FROM dag_run r WHERE r.dag_id = 'ingest_feeds' AND r.state IN ('queued', 'running')
                  AND NOT EXISTS (SELECT 1 FROM task_instance t WHERE t.dag_id = r.dag_id AND t.run_id = r.run_id
                                  AND t.task_id = 'plan' AND t.state IN ('success', 'failed', 'upstream_failed'))""")[0][0]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"an ingest_feeds run still had to plan after {timeout} s")
        time.sleep(2)


def polling_run(run_id: str, since: datetime) -> str:
    """The ingest_feeds run that polled the new feeds: the one triggered, unless a scheduled run
    planned them first (then the triggered one found nothing due)."""
    runs = [r for (r,) in meta("SELECT run_id FROM dag_run WHERE dag_id = 'ingest_feeds' "
                               "AND queued_at >= %s ORDER BY queued_at", since)]
    for run in [run_id] + [r for r in runs if r != run_id]:
        if any(r["task_id"] == "fetch" for r in task_rows("ingest_feeds", run)):
            return run
    return run_id


def placement_problems(rows: list[dict], fetch_queue: str = "default") -> list[str]:
    """Every fetch task on the fetch queue and a worker of that tag; everything else on duckdb."""
    problems = []
    for r in rows:
        want = fetch_queue if r["task_id"] == "fetch" else "duckdb"
        if r["state"] != "success":
            continue
        if r["queue"] != want:
            problems.append(f"{r['task_id']}[{r['map_index']}] ran on queue {r['queue']}, not {want}")
        if worker_tag(r["hostname"]) != want:
            problems.append(f"{r['task_id']}[{r['map_index']}] ran on {r['hostname']}, not the {want} worker")
    if not any(r["task_id"] == "fetch" for r in rows):
        problems.append("the run had no fetch task (no feed was due)")
    return problems


def landing_problems(names: list[str], failed_allowed: int = 0) -> list[str]:
    """Each feed fetched well once (besides at most ``failed_allowed`` failed fetches: an attempt
    cut off from the network records its failure, and the retry its repair), each item stored
    once and sighted once."""
    problems = []
    rows = duck("""
        SELECT s.name,
               (SELECT count(*) FROM fetches f WHERE f.source_id = s.source_id AND f.status <> 'failed'),
               (SELECT count(*) FROM fetches f WHERE f.source_id = s.source_id AND f.status = 'ok'),
               (SELECT count(*) FROM fetches f WHERE f.source_id = s.source_id AND f.status = 'failed'),
               (SELECT count(*) FROM items i WHERE i.source_id = s.source_id),
               (SELECT count(*) FROM item_sightings g JOIN items i USING (item_id) WHERE i.source_id = s.source_id),
               (SELECT count(DISTINCT g.item_id) FROM item_sightings g JOIN items i USING (item_id)
                 WHERE i.source_id = s.source_id)
        FROM sources s WHERE list_contains(?, s.name) ORDER BY s.name""", names)
    if len(rows) != len(names):
        problems.append(f"{len(rows)} of {len(names)} feeds are in the database")
    for name, fetches, ok, failed, items, sightings, sighted in rows:
        if fetches != 1 or ok != 1 or failed > failed_allowed:
            problems.append(f"{name}: {fetches + failed} fetch rows ({ok} ok, {failed} failed), "
                            f"expected 1 ok{f' and up to {failed_allowed} failed' if failed_allowed else ''}")
        if items == 0:
            problems.append(f"{name}: no items landed")
        if sightings != items or sighted != items:
            problems.append(f"{name}: {items} items but {sightings} sightings of {sighted} items")
    return problems


def analysis_after(api: Api, since: datetime, timeout: float) -> tuple[str | None, str]:
    """The first asset-triggered analyze_timing run queued after ``since``, and how it ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = meta("SELECT run_id, state FROM dag_run WHERE dag_id = 'analyze_timing' "
                    "AND run_type = 'asset_triggered' AND queued_at >= %s ORDER BY queued_at", since)
        if runs and runs[0][1] in ("success", "failed"):
            return runs[0]
        time.sleep(3)
    return (runs[0][0] if runs else None), "not finished"


def task_log(api: Api, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
             ) -> tuple[list[str], list[str]]:
    """A task attempt's log as the UI shows it: (where the API server read it, its messages)."""
    path = (f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/"
            f"{try_number}?map_index={map_index}&full_content=true")
    events = [str(c.get("event", "")) if isinstance(c, dict) else str(c) for c in api.get(path)["content"]]
    # Airflow 3 lists where it read the log in a group of its own, before the log's lines.
    sources: list[str] = []
    if "::group::Log message source details" in events:
        start = events.index("::group::Log message source details") + 1
        end = events.index("::endgroup::", start)
        sources, events = events[start:end], events[end + 1:]
    return sources, [e for e in events if e and not e.startswith("::")]


def log_problems(api: Api, run_id: str, rows: list[dict]) -> list[str]:
    """Every fetch attempt's log readable through the API server. With `up --machines` the
    worker kept it on its own disk, so it must come from that worker's log server (port 8793,
    a token signed with [api] secret_key): the proof that a machine's logs reach the UI."""
    problems = []
    for r in (r for r in rows if r["task_id"] == "fetch" and r["state"] == "success"):
        sources, messages = task_log(api, "ingest_feeds", run_id, "fetch", r["try_number"], r["map_index"])
        served = [s for s in sources if s.startswith(f"http://{r['hostname']}:")]
        print(f"  log of fetch[{r['map_index']}]: {len(messages)} lines from {', '.join(sources) or 'nowhere'}")
        if not messages:
            problems.append(f"fetch[{r['map_index']}]: its log is empty in the API ({sources})")
        if os.environ.get("CLUSTER_MACHINES") == "1" and not served:
            problems.append(f"fetch[{r['map_index']}]: log not served by its worker {r['hostname']} ({sources})")
    return problems


def show(rows: list[dict]) -> None:
    for r in rows:
        print(f"  {r['task_id']:<14} map {r['map_index']:>2}  try {r['try_number']}  {r['state']:<8} "
              f"queue {r['queue']:<8} on {r['hostname']} ({worker_tag(r['hostname'])})")


def main() -> int:
    clear_of_schedule()
    tag = uuid.uuid4().hex[:6]
    files = sorted(p.name for p in FEEDS.glob("*.xml"))[:6]
    hosts = feed_hosts()[:3]
    server = FeedServer(hosts)
    try:
        feeds = [(f"check-{tag}-{i}", server.url(hosts[i // 2], f"{name}?check={tag}"))
                 for i, name in enumerate(files)]
        api = Api()
        wait_idle()
        since = datetime.now(UTC)
        register(feeds)
        triggered = api.trigger("ingest_feeds", f"cluster.sh check {tag}")
        print(f"triggered ingest_feeds {triggered} for {len(feeds)} feeds on {len(hosts)} hosts ({', '.join(hosts)})")
        state = api.wait_run("ingest_feeds", triggered, timeout=300)
        run = polling_run(triggered, since)
        if run != triggered:
            print(f"a scheduled run polled them first: {run}")
            state = api.wait_run("ingest_feeds", run, timeout=300)
        rows = task_rows("ingest_feeds", run)
        show(rows)
        problems = [] if state == "success" else [f"ingest_feeds {run} ended {state}"]
        problems += placement_problems(rows)
        problems += log_problems(api, run, rows)
        problems += landing_problems([n for n, _ in feeds])
        announced = any(r["task_id"] == "announce" and r["state"] == "success" for r in rows)
        analysis, how = analysis_after(api, since, timeout=300) if announced else (None, "not due")
        print(f"analyze_timing after it: {analysis} {how}")
        if how != "success":
            problems.append(f"analyze_timing did not follow the new items (run {analysis}: {how})")
    finally:
        server.close()
    for p in problems:
        print(f"PROBLEM: {p}")
    print("cluster check: " + ("OK" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
