"""The README's cluster, run as written, in both shapes scripts/cluster.sh starts:

- loopback (`make cluster`): PostgreSQL, Redis, the Airflow components and two Celery workers on
  one machine's loopback. `check` polls loopback feeds through it; then the default worker is
  SIGKILLed in the middle of a fetch and the retry must succeed on a new worker with nothing lost
  and nothing recorded twice.
- machines (`up --machines`): each worker a network host of its own (a network namespace on a
  bridge), reaching the control machine's servers by address, keeping its logs on its own disk.
  `check` also reads every fetch's log through the API server, served by the worker's machine;
  then the default worker's machine is cut off from the network in the middle of a fetch (its
  processes live on) and the retry must succeed on a new machine, repairing what the cut-off
  attempt staged as failed.

Never skipped: if PostgreSQL, Redis or network namespaces cannot be had, `up` fails with the
reason and so does this test."""

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


def namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


@pytest.fixture(scope="module")
def cluster(request):
    """A running cluster of the shape named by the test's parameter: (folder, environment)."""
    shape = request.param
    # Not pytest's tmp_path: its parents are private to root, and PostgreSQL runs as `postgres`.
    base = Path(tempfile.mkdtemp(prefix=f"media-timing-cluster-{shape}-", dir="/tmp"))
    subnet = f"10.213.{100 + os.getpid() % 150}"  # this run's own network (machines)
    env = {**os.environ, "MEDIA_TIMING_CLUSTER_DIR": str(base), "CLUSTER_PG_PORT": str(free_port()),
           "CLUSTER_REDIS_PORT": str(free_port()), "CLUSTER_API_PORT": str(free_port()),
           "CLUSTER_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S), "CLUSTER_SUBNET": subnet}
    for key in ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "MEDIA_TIMING_DB", "MEDIA_TIMING_DATA_DIR"):
        env.pop(key, None)
    try:
        up = run("up", *(["--machines"] if shape == "machines" else []), env=env, timeout=600)
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
        if shape == "machines":  # and its network is gone
            prefix = f"mt{subnet.rsplit('.', 1)[1]}-"
            wait_for("the cluster's network namespaces to go", lambda: not namespaces(prefix), timeout=30)
            bridge = subprocess.run(["ip", "link", "show", f"{prefix}br"], capture_output=True)
            assert bridge.returncode != 0, bridge.stdout


@pytest.mark.parametrize("cluster", ["loopback", "machines"], indirect=True)
def test_check_polls_through_the_cluster(cluster):
    base, env = cluster
    out = run("check", env=env, timeout=900)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    assert "cluster check: OK" in out.stdout
    # Who ran what is in the output: three fetch shards on the default worker, and each fetch's log.
    assert out.stdout.count("queue default  on ") == 3, out.stdout
    assert out.stdout.count("log of fetch[") == 3, out.stdout
    if (base / "machines").exists():
        default = (base / "machines" / "default" / "address").read_text().strip()
        assert out.stdout.count(f"from http://{default}:8793/log/") == 3, out.stdout


def start_slow_poll(base: Path, seconds: int, monkeypatch):
    """Register a feed that trickles for ``seconds`` and trigger a poll of it: (server, feed name,
    run id, the fetch task's first row once it runs)."""
    for key, value in cluster_env(base).items():
        monkeypatch.setenv(key, value)
    host = cc.feed_hosts()[3]  # the fourth address: the check's three are for its own feeds
    server = cc.FeedServer(hosts=(host,))
    feed = sorted(p.name for p in cc.FEEDS.glob("*.xml"))[0]
    name = f"slow-{int(time.time())}"
    api = cc.Api()
    cc.clear_of_schedule()
    cc.wait_idle()
    since = datetime.now(UTC)
    cc.register([(name, server.url(host, f"slow/{seconds}/{feed}"))])
    run_id = cc.polling_run(api.trigger("ingest_feeds", "fault test"), since)

    def fetching():
        rows = [r for r in cc.task_rows("ingest_feeds", run_id) if r["task_id"] == "fetch"]
        return rows and rows[0]["state"] == "running" and rows[0]
    first = wait_for("the fetch task to run", fetching, timeout=180)
    return server, name, run_id, first


def retried_elsewhere(api, run_id: str, new_tag: str) -> None:
    """The run ended well, its fetch's try 2 on the new worker and try 1 on the lost one."""
    state = api.wait_run("ingest_feeds", run_id, timeout=600)
    rows = cc.task_rows("ingest_feeds", run_id)
    assert state == "success", rows
    fetch = [r for r in rows if r["task_id"] == "fetch"]
    assert len(fetch) == 1, fetch
    assert fetch[0]["try_number"] == 2 and fetch[0]["state"] == "success", fetch
    assert cc.worker_tag(fetch[0]["hostname"]) == new_tag, fetch
    history = cc.meta("SELECT try_number, state, hostname FROM task_instance_history "
                      "WHERE dag_id = 'ingest_feeds' AND run_id = %s AND task_id = 'fetch'", run_id)
    assert [(t, cc.worker_tag(h)) for t, _, h in history] == [(1, "default")], history
    others = [r for r in rows if r["task_id"] != "fetch" and r["state"] == "success"]
    assert others and all(r["queue"] == "duckdb" and cc.worker_tag(r["hostname"]) == "duckdb" for r in others), rows


@pytest.mark.parametrize("cluster", ["loopback"], indirect=True)
def test_a_worker_killed_mid_fetch_is_retried_on_another_with_nothing_twice(cluster, monkeypatch):
    base, env = cluster
    server, name, run_id, first = start_slow_poll(base, 20, monkeypatch)
    try:
        assert cc.worker_tag(first["hostname"]) == "default"
        time.sleep(8)  # the transfer is under way (it trickles for 20 s)
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
        retried_elsewhere(cc.Api(), run_id, "default2")
        assert cc.landing_problems([name]) == []
    finally:
        server.close()


@pytest.mark.parametrize("cluster", ["loopback"], indirect=True)
def test_a_task_queued_when_the_cluster_stops_runs_when_it_starts_again(cluster, monkeypatch):
    """`down` then `up` keeps the folder's state, the broker's queue included: a task queued at
    `down` is not lost with Redis (it would strand its run until task_queued_timeout)."""
    base, env = cluster
    for key, value in cluster_env(base).items():
        monkeypatch.setenv(key, value)
    os.killpg(int((base / "worker-duckdb.pid").read_text()), signal.SIGTERM)  # nobody takes `plan`
    wait_for("the duckdb worker to stop", lambda: not alive([int((base / "worker-duckdb.pid").read_text())]),
             timeout=60)
    cc.wait_idle()
    run_id = cc.Api().trigger("ingest_feeds", "restart test")
    wait_for("plan to be queued", lambda: any(r["task_id"] == "plan" and r["state"] == "queued"
                                             for r in cc.task_rows("ingest_feeds", run_id)), timeout=120)
    down = run("down", env=env, timeout=300)
    assert down.returncode == 0, down.stderr
    up = run("up", env=env, timeout=600)
    assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
    assert cc.Api().wait_run("ingest_feeds", run_id, timeout=300) == "success"


@pytest.mark.parametrize("cluster", ["machines"], indirect=True)
def test_a_worker_machine_cut_off_mid_fetch_is_retried_on_another_machine(cluster, monkeypatch):
    """The cut-off attempt lives on: its fetch times out, and with the shared folder still in
    reach it stages the poll with that feed failed, most likely before the retry starts. The
    retry then polls that feed again as the poll's repair: the feed has its failure and one good
    fetch, and every item is stored and sighted once."""
    base, env = cluster
    server, name, run_id, first = start_slow_poll(base, 20, monkeypatch)
    machine = base / "machines" / "default"
    netns = (machine / "netns").read_text().strip()
    try:
        assert first["hostname"] == (machine / "address").read_text().strip()
        time.sleep(8)
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)
        lost = tree(int((base / "worker-default.pid").read_text()))
        started = run("worker", "default", "default2", env=env, timeout=60)
        assert started.returncode == 0, started.stderr
        retried_elsewhere(cc.Api(), run_id, "default2")
        assert alive(lost), "the cut-off worker should live on: this is a partition, not a crash"
        assert cc.landing_problems([name], failed_allowed=1) == []
        landed = cc.duck("SELECT count(*) FROM fetches"), cc.duck("SELECT count(*) FROM item_sightings")
        # The machine comes back: the attempt it lost is over, so nothing more is recorded.
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
        time.sleep(15)
        assert (cc.duck("SELECT count(*) FROM fetches"), cc.duck("SELECT count(*) FROM item_sightings")) == landed
        assert cc.Api().wait_run("ingest_feeds", run_id, timeout=30) == "success"
        fetch = [r for r in cc.task_rows("ingest_feeds", run_id) if r["task_id"] == "fetch"]
        assert [(r["try_number"], r["state"], cc.worker_tag(r["hostname"])) for r in fetch] == [(2, "success", "default2")]
    finally:
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], capture_output=True)
        server.close()
