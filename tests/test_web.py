"""The verdict pages the Airflow plugin serves, through FastAPI's test client: every page and its
JSON twin, authentication refused (with Airflow's own dependency, as the plugin wires it),
feed text escaped, a locked database answered with "updating", the Verdict tab of a DAG run."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import time
from pathlib import Path

import pytest
from fastapi import Header, HTTPException
from fastapi.testclient import TestClient
from markupsafe import escape

from pipeline.analysis.runs import latest_runs
from pipeline.outputs.web import create_app, smallest_p

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "let-me-in"


def _token(authorization: str | None = Header(default=None)) -> None:
    if authorization != f"Bearer {TOKEN}":
        raise HTTPException(401, "Not authenticated")


@pytest.fixture
def client(case_runs):
    return TestClient(create_app(lambda: case_runs, auth=_token), headers={"Authorization": f"Bearer {TOKEN}"})


def test_index_lists_every_claim_with_its_latest_run(client, case_runs):
    with case_runs.read() as con:
        latest = {c: r for c, r, _ in latest_runs(con)}
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    doc = client.get("/?format=json").json()
    assert {c["claim"]: c["run_id"] for c in doc["claims"]} == latest
    oct7 = next(c for c in doc["claims"] if c["claim"] == "oct7_2016")
    assert oct7["release"].startswith("WikiLeaks tweets 'RELEASE: The Podesta Emails'")
    assert oct7["smallest_p"] == pytest.approx(0.2, abs=0.02)  # the IRA stream; the curated 0.03 is not evidence
    assert oct7["reading"].startswith("WikiLeaks tweets") and "no evidence of clustering" in oct7["reading"]
    for c in doc["claims"]:
        assert f'href="{c["href"]}"' in page.text and str(escape(c["reading"].split(":")[0])) in page.text


def test_a_run_page_is_the_full_report_with_its_images_inline(client, case_runs):
    with case_runs.read() as con:
        run_id = {c: r for c, r, _ in latest_runs(con)}["oct7_2016"]
    page = client.get(f"/runs/{run_id}").text
    for part in ("Verdict.", "<h2>Timeline</h2>", "<h2>Tests</h2>", "<h2>Story onsets</h2>",
                 "What this cannot show", f"run_id = '{run_id}'"):
        assert part in page
    assert page.count('src="data:image/png;base64,') >= 2  # timeline and a correlogram
    facts = client.get(f"/runs/{run_id}?format=json").json()
    assert facts["run_id"] == run_id and facts["onsets"]["records"]
    missing = client.get("/runs/0000000000000000")
    assert missing.status_code == 404 and "No stored run" in missing.text


def test_feed_health_page_and_json(client):
    doc = client.get("/feeds?format=json").json()
    assert doc == {"feeds": [], "gaps_last_7_days": []}  # the case study is archives only
    assert "No feeds registered" in client.get("/feeds").text


def test_anonymous_and_forged_requests_get_no_data(case_runs):
    """With Airflow's own dependency, as plugins/media_timing_plugin.py wires it."""
    from airflow.api_fastapi.core_api.security import get_user

    anon = TestClient(create_app(lambda: case_runs, auth=get_user))
    for path in ("/", "/?format=json", "/feeds", "/runs/x", "/dag-runs/a/b"):
        r = anon.get(path)
        assert r.status_code in (401, 403), path
        assert "claims" not in r.text and "WikiLeaks" not in r.text
    mine = TestClient(create_app(lambda: case_runs, auth=_token))
    assert mine.get("/", headers={"Authorization": "Bearer guess"}).status_code == 401


def test_the_plugin_mounts_the_app_under_media_timing_with_airflow_auth():
    spec = importlib.util.spec_from_file_location("media_timing_plugin", ROOT / "plugins" / "media_timing_plugin.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    p = mod.MediaTimingPlugin
    (app,) = p.fastapi_apps
    assert app["url_prefix"] == "/media-timing"
    views = {v["name"]: v for v in p.external_views}
    assert views["Timing"]["destination"] == "nav" and views["Timing"]["href"] == "media-timing/"
    assert views["Verdict"]["destination"] == "dag_run" and "{RUN_ID}" in views["Verdict"]["href"]
    assert TestClient(app["app"]).get("/").status_code == 401


def test_feed_text_is_escaped(client, case_runs):
    with case_runs.write() as con:
        run_id = {c: r for c, r, _ in latest_runs(con)}["oct7_2016"]
        facts = json.loads(con.execute("SELECT facts FROM analysis_runs WHERE run_id = ?", [run_id]).fetchone()[0])
        facts["claim"]["title"] = "<script>alert('claim')</script>"
        facts["onsets"]["records"][6]["first_title"] = "<img src=x onerror=alert(1)>"
        con.execute("UPDATE analysis_runs SET facts = ? WHERE run_id = ?", [json.dumps(facts), run_id])
    for page in (client.get("/").text, client.get(f"/runs/{run_id}").text):
        assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "<img src=x" not in client.get(f"/runs/{run_id}").text


def _hold_write_lock(path: str, ready, seconds: float) -> None:
    import duckdb

    con = duckdb.connect(path)
    ready.set()
    time.sleep(seconds)
    con.close()


def test_a_locked_database_says_updating_and_never_errors(client, case_runs):
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_write_lock, args=(str(case_runs.settings.db_path), ready, 8.0))
    holder.start()
    try:
        assert ready.wait(60)
        t = time.monotonic()
        r = client.get("/")
        assert time.monotonic() - t < 6  # waits politely, briefly
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert "retry in a moment" in r.text
        assert client.get("/?format=json").json()["status"] == "updating"
    finally:
        holder.join(30)
    assert client.get("/").status_code == 200  # the writer is gone: pages are back


def test_the_verdict_tab_lists_what_a_dag_run_stored(client, case_runs):
    with case_runs.write() as con:
        run_id = {c: r for c, r, _ in latest_runs(con)}["oct7_2016"]
        con.execute("INSERT INTO dag_run_analyses VALUES ('analyze_timing', 'manual__1', ?, 'oct7_2016', 'stored', now())",
                    [run_id])
    doc = client.get("/dag-runs/analyze_timing/manual__1?format=json").json()
    assert [(a["claim"], a["run_id"], a["status"]) for a in doc["analyses"]] == [("oct7_2016", run_id, "stored")]
    page = client.get("/dag-runs/analyze_timing/manual__1").text
    assert f'href="../../runs/{run_id}"' in page
    assert "stored no analysis runs" in client.get("/dag-runs/ingest_feeds/other").text


def test_smallest_p_ignores_curated_streams(case_runs):
    from pipeline.analysis.runs import load_run

    with case_runs.read() as con:
        run = load_run(con, {c: r for c, r, _ in latest_runs(con)}["oct7_2016"])
    curated = min(t.pvalue for s in run.streams if s.stream.spec.curated for t in s.releases)
    assert curated < smallest_p(run)


def test_analyze_claim_records_what_a_dag_run_stored_or_found(case_runs, monkeypatch):
    from pipeline import jobs

    monkeypatch.setenv("MEDIA_TIMING_DB", str(case_runs.settings.db_path))
    out = jobs.analyze_claim("oct7_2016", dag_id="analyze_timing", dag_run_id="asset_triggered__x")
    again = jobs.analyze_claim("oct7_2016", dag_id="analyze_timing", dag_run_id="asset_triggered__x")
    assert out["status"] == again["status"] == "unchanged"  # the demo stored this exact run
    with case_runs.read() as con:
        rows = con.execute("SELECT dag_id, dag_run_id, run_id, claim_id, status FROM dag_run_analyses").fetchall()
    assert rows == [("analyze_timing", "asset_triggered__x", out["run_id"], "oct7_2016", "unchanged")]


def test_every_stored_run_has_a_page_and_a_json_twin(client, case_runs):
    """Not only the flagship: every claim's run (a single release, a series, the screen of all)."""
    with case_runs.read() as con:
        runs = latest_runs(con)
    assert len(runs) == 3
    for claim, run_id, n in runs:
        page = client.get(f"/runs/{run_id}")
        assert page.status_code == 200, claim
        assert "What this cannot show" in page.text and 'src="data:image/png;base64,' in page.text, claim
        facts = client.get(f"/runs/{run_id}?format=json").json()
        assert facts["claim"]["id"] == claim and len(facts["releases"]) == n
