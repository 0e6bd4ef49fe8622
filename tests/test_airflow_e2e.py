"""End to end with the real scheduler: Airflow from the repository's configuration (`make
airflow`'s launcher) in a temporary home, ingest_feeds triggered through the REST API, rows
checked in DuckDB, no run of a fresh install failing, and one Ctrl-C stopping everything."""

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.parse

import duckdb
import pytest
import requests

from tests import processes
from tests.conftest import FIXTURES, ROOT
from tests.processes import alive, descendants, free_port

pytestmark = pytest.mark.slow


def wait_for(*args, **kwargs):
    """Waiting, where a server not answering yet counts as not ready."""
    return processes.wait_for(*args, retry_on=(requests.RequestException,), **kwargs)


@pytest.fixture
def airflow(tmp_path, httpserver):
    """Airflow on a free port, DAGs from the repository, a temporary home and DuckDB."""
    from pipeline.store.database import open_db

    httpserver.expect_request("/feed.xml").respond_with_data(
        (FIXTURES / "feeds" / "4179e7a13df0f120.xml").read_bytes(), content_type="application/rss+xml")
    db = tmp_path / "e2e.duckdb"
    with open_db(db):  # the schema only: the feed is registered once every DAG is parsed
        pass

    port = free_port()
    home = tmp_path / "airflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__API__PORT=str(port),
               AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
               MEDIA_TIMING_DB=str(db), MEDIA_TIMING_DATA_DIR=str(tmp_path / "data"))
    log = open(tmp_path / "standalone.log", "w")
    proc = subprocess.Popen([str(ROOT / "scripts" / "airflow.sh"), "up"], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        yield base, home, db, proc
    finally:
        # Whatever the test did, nothing may outlive it: every component, and their workers.
        left = descendants(proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=40)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        for p in alive(left):
            os.kill(p, signal.SIGKILL)
        log.close()


def test_the_scheduler_runs_ingest_feeds_triggered_through_the_api(airflow, tmp_path, httpserver):
    base, home, db, proc = airflow
    def healthy():
        r = requests.get(f"{base}/api/v2/monitor/health", timeout=5)
        return r.ok and r.json()

    try:
        health = wait_for("the API server", healthy, timeout=240, proc=proc)
    except AssertionError:
        print((tmp_path / "standalone.log").read_text()[-5000:])
        raise
    assert health["metadatabase"]["status"] == "healthy"

    password_file = home / "simple_auth_manager_passwords.json.generated"
    wait_for("the generated admin password", password_file.exists, timeout=60)
    password = json.loads(password_file.read_text())["admin"]
    token = requests.post(f"{base}/auth/token", json={"username": "admin", "password": password},
                          timeout=10).json()["access_token"]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    assert requests.get(f"{base}/api/v2/dags", timeout=10).status_code == 401  # auth is on

    # An asset event reaches only consumers already parsed: wait for every DAG before any data.
    def all_parsed():
        dags = api.get(f"{base}/api/v2/dags", timeout=10).json()["dags"]
        return {d["dag_id"] for d in dags} >= {"ingest_feeds", "ingest_events", "analyze_timing",
                                               "import_archive", "weekly_digest", "backfill_archive"}

    wait_for("every DAG to be parsed", all_parsed, timeout=180, every=2, proc=proc)
    from pipeline.sources.feeds import FeedSpec, add_feed
    from pipeline.store.database import open_db

    with open_db(db, wait_s=60) as con:  # waits if a scheduled run is reading the file
        add_feed(con, FeedSpec(httpserver.url_for("/feed.xml"), "loopback", "news"))
    # Another component's long write (the scheduler's or the DAG processor's on a busy machine) holds
    # SQLite's write lock beyond the driver's default 5 s wait: the trigger waits it out, no 500.
    with write_lock_held(home / "airflow.db", seconds=8):
        created = api.post(f"{base}/api/v2/dags/ingest_feeds/dagRuns", json={"logical_date": None}, timeout=60)
    assert created.ok, created.text + api_server_error(tmp_path / "standalone.log", created.text)
    run_id = urllib.parse.quote(created.json()["dag_run_id"], safe="")

    def finished():
        state = api.get(f"{base}/api/v2/dags/ingest_feeds/dagRuns/{run_id}", timeout=10).json()["state"]
        return state if state in ("success", "failed") else None

    state = wait_for("the ingest_feeds run", finished, timeout=240, every=2)
    tasks = api.get(f"{base}/api/v2/dags/ingest_feeds/dagRuns/{run_id}/taskInstances", timeout=10).json()
    by_id = {t["task_id"]: t["state"] for t in tasks["task_instances"]}
    assert state == "success", by_id
    assert by_id["load"] == "success"
    # The scheduler may have run ingest_feeds on its own schedule first (catchup=False still runs
    # the latest interval); then ours found nothing new and rightly did not announce.
    assert by_id["announce"] in ("success", "skipped")
    runs = api.get(f"{base}/api/v2/dags/ingest_feeds/dagRuns", timeout=10).json()["dag_runs"]
    assert all(r["state"] in ("success", "running", "queued") for r in runs)

    # The rows are in DuckDB (the scheduler's workers wrote them; we only read).
    def rows():
        try:
            con = duckdb.connect(str(db), read_only=True)
        except duckdb.IOException:
            return None  # a writer (analyze_timing) holds it right now
        try:
            return con.execute("SELECT count(*), count(DISTINCT provenance) FROM items").fetchall()[0]
        finally:
            con.close()

    assert wait_for("a readable database", rows, timeout=60) == (10, 1)

    # Data-aware scheduling: the new-items asset starts analyze_timing by itself.
    def asset_triggered():
        runs = api.get(f"{base}/api/v2/dags/analyze_timing/dagRuns", timeout=10).json()["dag_runs"]
        return [r for r in runs if r["run_type"] == "asset_triggered"]

    try:
        wait_for("an asset-triggered analyze_timing run", asset_triggered, timeout=120, every=2)
    except AssertionError:
        raise AssertionError(explain_runs(api, base)) from None

    # A fresh install's first runs (scheduled ones included) must not fail: the scheduler starts
    # only once the API server answers.
    for dag_id in ("ingest_feeds", "ingest_events", "analyze_timing", "weekly_digest"):
        for r in api.get(f"{base}/api/v2/dags/{dag_id}/dagRuns", timeout=10).json()["dag_runs"]:
            assert r["state"] != "failed", (dag_id, r["dag_run_id"], explain_runs(api, base))

    analysis_run = asset_triggered()[0]["dag_run_id"]
    check_verdict_pages(base, password, db, tmp_path, analysis_run)

    # One Ctrl-C (SIGINT to the foreground process group, as a terminal sends it) stops it all.
    components = descendants(proc.pid)
    assert len(components) >= 5  # api-server, scheduler, dag-processor, triggerer and their workers
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while alive(components) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(components), [open(f"/proc/{p}/cmdline").read() for p in alive(components)]
    assert time.monotonic() - started < 20


def check_verdict_pages(base: str, password: str, db, tmp_path, analysis_run: str) -> None:
    """The plugin's pages: refused without a login, then, after `demo` has stored the 7 Oct run,
    a browser logs in through Airflow's form and reads the verdict under Timing."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser import chromium, layout, set_viewport

    assert requests.get(f"{base}/media-timing/", timeout=10).status_code == 401
    assert requests.get(f"{base}/media-timing/?format=json", timeout=10).status_code == 401
    env = {**os.environ, "MEDIA_TIMING_DB": str(db), "MEDIA_TIMING_DATA_DIR": str(tmp_path / "data")}
    demo = subprocess.run([str(ROOT / ".venv" / "bin" / "media-timing"), "demo", "--surrogates", "199"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    with chromium(tmp_path / "chromium") as driver:
        set_viewport(driver, 1400, 1000)
        wait = WebDriverWait(driver, 60)
        driver.get(f"{base}/")
        user = wait.until(lambda d: d.find_elements(By.NAME, "username"))[0]
        user.send_keys("admin")
        field = driver.find_element(By.NAME, "password")
        field.send_keys(password)
        field.send_keys(Keys.RETURN)
        wait.until(lambda d: any(c["name"] == "_token" for c in d.get_cookies()))
        driver.get(f"{base}/media-timing/")
        wait.until(lambda d: "Timing verdicts" in d.page_source)
        seen = layout(driver)
        assert "oct7_2016" in seen["text"] and "no evidence of clustering" in seen["text"], seen["text"][:2000]
        driver.save_screenshot(str(tmp_path / "timing-index.png"))
        driver.find_element(By.LINK_TEXT, "oct7_2016").click()
        wait.until(lambda d: "What this cannot show" in d.page_source)
        seen = layout(driver)
        assert seen["images"] >= 2 and not seen["broken"], seen
        assert "Story onsets" in seen["text"] and "russia_hacking" in seen["text"]
        driver.save_screenshot(str(tmp_path / "timing-run.png"))
        # The Verdict tab of the asset-triggered analyze_timing run (its claims had no releases yet).
        driver.get(f"{base}/media-timing/dag-runs/analyze_timing/{urllib.parse.quote(analysis_run, safe='')}")
        wait.until(lambda d: "Verdicts of analyze_timing run" in d.page_source)
        # The same page inside the Airflow UI: the "Timing" entry of the navigation.
        driver.get(f"{base}/plugin/timing")
        frame = wait.until(lambda d: d.find_elements(By.TAG_NAME, "iframe"))[0]
        driver.switch_to.frame(frame)
        wait.until(lambda d: "Timing verdicts" in d.page_source)
        driver.switch_to.default_content()
        driver.save_screenshot(str(tmp_path / "timing-in-airflow.png"))
    assert (tmp_path / "timing-in-airflow.png").stat().st_size > 20_000


@contextlib.contextmanager
def write_lock_held(path, seconds: float):
    """SQLite's write lock on `path`, taken before the block starts and held for `seconds` from
    then (the block's requests wait on it), as a writing component holds it."""
    held, done = threading.Event(), threading.Event()

    def hold():
        con = sqlite3.connect(path, isolation_level=None, timeout=60)
        try:
            con.execute("BEGIN IMMEDIATE")
            held.set()
            done.wait(seconds)
            con.execute("ROLLBACK")
        finally:
            con.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(60), "could not take the metadata database's write lock"
    try:
        yield
    finally:
        holder.join()


def api_server_error(log_path, body: str) -> str:
    """The API server's log lines about a 500's error ID, which the response itself hides."""
    found = re.search(r"look for ID (\w+)", body)
    if not found:
        return ""
    lines = log_path.read_text(errors="replace").splitlines()
    at = [i for i, line in enumerate(lines) if found.group(1) in line]
    if not at:
        return "\n(no log line names it)"
    after = lines[at[0] + 1:at[0] + 400]
    return "\n".join(["", lines[at[0]][:500], *(line for line in after if "locked" in line or "Error:" in line)])


def explain_runs(api, base) -> str:
    """Asset events, and every run's tasks with the loads' return values: what to read when the
    asset never fired."""
    report = {"asset_events": api.get(f"{base}/api/v2/assets/events", timeout=10).json()}
    for dag_id in ("ingest_feeds", "ingest_events", "analyze_timing"):
        for r in api.get(f"{base}/api/v2/dags/{dag_id}/dagRuns", timeout=10).json()["dag_runs"]:
            rid = urllib.parse.quote(r["dag_run_id"], safe="")
            runs = f"{base}/api/v2/dags/{dag_id}/dagRuns/{rid}/taskInstances"
            tasks = {}
            for t in api.get(runs, timeout=10).json()["task_instances"]:
                value = None
                if t["state"] == "success" and t["task_id"] in ("plan", "load", "load_and_import"):
                    value = api.get(f"{runs}/{t['task_id']}/xcomEntries/return_value", timeout=10).json().get("value")
                tasks[t["task_id"]] = [t["state"], t.get("start_date"), value]
            report[f"{dag_id} {r['dag_run_id']} {r['state']}"] = tasks
    return json.dumps(report, indent=1, default=str)[:8000]
