"""The README's cluster, run as written: scripts/cluster.sh starts PostgreSQL, Redis, the Airflow
components and two Celery workers on loopback; `check` polls loopback feeds through it; then the
default worker is SIGKILLed in the middle of a fetch and the retry must succeed on a new worker
with nothing lost and nothing recorded twice.

Never skipped: if PostgreSQL or Redis cannot be found or installed, `up` fails with the reason and
so does this test."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.processes import alive, descendants, free_port, wait_for

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "scripts" / "cluster.sh"
sys.path.insert(0, str(ROOT / "scripts"))
import cluster_check as cc  # noqa: E402  (scripts/ is not a package)

HEARTBEAT_TIMEOUT_S = 30


def run(*args: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


def cluster_env(base: Path) -> dict:
    """The environment every process of the cluster has (env.sh, written by `up`)."""
    out = subprocess.run(["bash", "-c", f"source {base}/env.sh && env -0"], capture_output=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.decode().split("\0") if "=" in line)


def tree(pid: int) -> set[int]:
    return descendants(pid) | {pid}


@pytest.fixture(scope="module")
def cluster():
    # Not pytest's tmp_path: its parents are private to root, and PostgreSQL runs as `postgres`.
    base = Path(tempfile.mkdtemp(prefix="media-timing-cluster-", dir="/tmp"))
    env = {**os.environ, "MEDIA_TIMING_CLUSTER_DIR": str(base), "CLUSTER_PG_PORT": str(free_port()),
           "CLUSTER_REDIS_PORT": str(free_port()), "CLUSTER_API_PORT": str(free_port()),
           "CLUSTER_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S)}
    for key in ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "MEDIA_TIMING_DB", "MEDIA_TIMING_DATA_DIR"):
        env.pop(key, None)
    try:
        up = run("up", env=env, timeout=600)
        assert up.returncode == 0, f"scripts/cluster.sh up failed:\n{up.stdout}\n{up.stderr}"
        yield base, env
    finally:
        started = {p.stem: int(p.read_text()) for p in base.glob("*.pid") if p.read_text().strip()}
        groups = {name: tree(pid) for name, pid in started.items() if name != "redis"}
        down = run("down", env=env, timeout=300)
        left = {name: sorted(alive(pids)) for name, pids in groups.items()}
        shutil.rmtree(base, ignore_errors=True)
        assert down.returncode == 0, down.stderr
        assert not any(left.values()), f"still running after down: {left}"
        assert not alive(started.values()), started


def test_check_polls_through_the_cluster(cluster):
    base, env = cluster
    out = run("check", env=env, timeout=900)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    assert "cluster check: OK" in out.stdout
    # Who ran what is in the output: three fetch shards on the default worker.
    assert out.stdout.count("queue default  on ") == 3, out.stdout


def test_a_worker_killed_mid_fetch_is_retried_on_another_with_nothing_twice(cluster, monkeypatch):
    base, env = cluster
    for key, value in cluster_env(base).items():
        monkeypatch.setenv(key, value)
    server = cc.FeedServer(hosts=("127.0.0.4",))
    try:
        feed = sorted(p.name for p in cc.FEEDS.glob("*.xml"))[0]
        name = f"slow-{int(time.time())}"
        api = cc.Api()
        cc.clear_of_schedule()
        cc.wait_idle()
        since = datetime.now(UTC)
        cc.register([(name, server.url("127.0.0.4", f"slow/40/{feed}"))])
        dag_run = api.trigger("ingest_feeds", "worker kill test")
        run_id = cc.polling_run(dag_run, since)

        def fetching():
            rows = [r for r in cc.task_rows("ingest_feeds", run_id) if r["task_id"] == "fetch"]
            return rows and rows[0]["state"] == "running" and rows[0]
        first = wait_for("the fetch task to run", fetching, timeout=180)
        assert first["hostname"].endswith("-default")
        time.sleep(8)  # the transfer is under way (it trickles for 40 s)

        worker = int((base / "worker-default.pid").read_text())
        victims = tree(worker)
        for pid in victims:  # the whole worker: Celery, its pool, the task's supervisor and process
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for("the killed worker to be gone", lambda: not alive(victims), timeout=30)
        started = run("worker", "default", "default2", env=env, timeout=60)
        assert started.returncode == 0, started.stderr

        state = api.wait_run("ingest_feeds", run_id, timeout=600)
        rows = cc.task_rows("ingest_feeds", run_id)
        assert state == "success", rows
        fetch = [r for r in rows if r["task_id"] == "fetch"]
        assert len(fetch) == 1, fetch
        assert fetch[0]["try_number"] == 2 and fetch[0]["state"] == "success", fetch
        assert fetch[0]["hostname"].endswith("-default2"), fetch
        history = cc.meta("SELECT try_number, state, hostname FROM task_instance_history "
                          "WHERE dag_id = 'ingest_feeds' AND run_id = %s AND task_id = 'fetch'", run_id)
        assert [(t, h.endswith("-default")) for t, _, h in history] == [(1, True)], history
        assert cc.landing_problems([name]) == []
        others = [r for r in rows if r["task_id"] != "fetch" and r["state"] == "success"]
        assert others and all(r["queue"] == "duckdb" and r["hostname"].endswith("-duckdb") for r in others), rows
    finally:
        server.close()
