"""The verdicts as web pages: the app the Airflow plugin (plugins/media_timing_plugin.py) mounts
under /media-timing/ in the Airflow UI. Every page has a JSON twin (``?format=json``).

  /                       every claim with its latest run: release, smallest p, reading, when
  /runs/{run_id}          the full report of a stored run (the HTML report's template)
  /feeds                  feed health and gaps in collection
  /dag-runs/{dag}/{run}   the analysis runs an Airflow DAG run stored or checked

Gather, then render: each request opens the database read-only for as long as it takes to read
its facts (never while rendering), so the writer pool is kept waiting at most that long; if a
writer holds the file, the page says "updating, retry in a moment" (503, Retry-After) instead of
an error. Authentication is the caller's: ``create_app(auth=...)`` takes a FastAPI dependency
(the plugin passes Airflow's own, which reads the UI's JWT), applied to every route.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from pipeline.analysis.results import AnalysisResult
from pipeline.analysis.runs import json_safe, latest_runs, load_run
from pipeline.errors import Unavailable
from pipeline.outputs.report import render_report, report_images, template_env
from pipeline.outputs.verdict import fmt_p, verdict
from pipeline.store.workspace import Workspace

READ_WAIT_S = 2.0  # how long a page waits for a writer before saying "updating"
RETRY_AFTER_S = 5


def smallest_p(result: AnalysisResult) -> float:
    """The smallest p-value among the streams that are evidence (curated ones are not)."""
    honest = [s for s in result.streams if not s.stream.spec.curated]
    if len(result.releases) == 1:
        ps = [t.pvalue for s in honest for t in s.releases if t.testable]
    else:
        ps = [s.pooled_pvalue for s in honest]
    ps = [p for p in ps if p == p]
    return min(ps) if ps else float("nan")


def _claim_row(result: AnalysisResult) -> dict:
    rel = result.releases
    p = smallest_p(result)
    return {"claim": result.claim.id, "title": result.claim.title, "run_id": result.run_id,
            "release": rel[0].title if len(rel) == 1 else f"{len(rel)} releases",
            "smallest_p": None if p != p else p, "smallest_p_text": fmt_p(p),
            "reading": verdict(result).headline, "created_utc": result.created_utc.isoformat(),
            "href": f"runs/{result.run_id}"}


def _feeds(con) -> dict:
    since = datetime.now(UTC) - timedelta(days=7)
    cols = ["name", "url", "role", "enabled", "last_status", "last_success_utc", "consecutive_failures",
            "last_error", "disabled_reason"]
    feeds = con.execute(f"SELECT {', '.join(cols)} FROM v_feed_health ORDER BY name").fetchall()
    gaps = con.execute(
        """SELECT feed, count(*) FILTER (WHERE gap) AS gap_hours, count(*) AS hours
           FROM feed_coverage(?, ?) WHERE hour_utc < now() GROUP BY feed ORDER BY gap_hours DESC, feed""",
        [since, datetime.now(UTC)]).fetchall()
    return {"feeds": [dict(zip(cols, [v.isoformat() if isinstance(v, datetime) else v for v in r])) for r in feeds],
            "gaps_last_7_days": [{"feed": f, "gap_hours": g, "hours": h} for f, g, h in gaps]}


def _dag_run(con, dag_id: str, dag_run_id: str) -> list[dict]:
    rows = con.execute(
        """SELECT d.claim_id, d.run_id, d.status, d.recorded_utc FROM dag_run_analyses d
           WHERE d.dag_id = ? AND d.dag_run_id = ? ORDER BY d.claim_id""", [dag_id, dag_run_id]).fetchall()
    return [{"claim": c, "run_id": r, "status": s, "recorded_utc": t.isoformat(), "href": f"../../runs/{r}"}
            for c, r, s, t in rows]


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def create_app(workspace: Callable[[], Workspace] = Workspace.from_environment,
               auth: Callable[..., Any] | None = None) -> FastAPI:
    """The app; ``workspace`` says where the database is, ``auth`` guards every route."""
    app = FastAPI(title="media-timing", dependencies=[Depends(auth)] if auth else [],
                  docs_url=None, redoc_url=None, openapi_url=None)
    env = template_env()

    def read(fn: Callable[..., Any], *args: Any) -> Any:
        ws = workspace()
        ws = Workspace(replace(ws.settings, lock_wait_s=READ_WAIT_S))
        with ws.read() as con:
            return fn(con, *args)

    def page(request: Request, template: str, doc: dict, status: int = 200) -> Response:
        if request.query_params.get("format") == "json":
            return JSONResponse(json_safe(doc), status_code=status)
        return HTMLResponse(env.get_template(template).render(**doc), status_code=status)

    @app.exception_handler(Unavailable)
    async def updating(request: Request, exc: Unavailable) -> Response:
        doc = {"status": "updating", "message": "The database is being updated; retry in a moment.",
               "detail": str(exc)}
        resp = page(request, "web_updating.html.j2", doc, 503)
        resp.headers["Retry-After"] = str(RETRY_AFTER_S)
        return resp

    @app.exception_handler(FileNotFoundError)
    async def no_database(request: Request, exc: FileNotFoundError) -> Response:
        doc = {"status": "empty", "message": "No database yet: run `make demo` or let the DAGs run.",
               "detail": str(exc)}
        return page(request, "web_updating.html.j2", doc, 503)

    @app.get("/")
    def index(request: Request) -> Response:
        def gather(con) -> list[AnalysisResult]:
            return [r for _, run_id, _ in latest_runs(con) if (r := load_run(con, run_id)) is not None]
        runs = read(gather)
        return page(request, "web_index.html.j2", {"claims": [_claim_row(r) for r in runs]})

    @app.get("/runs/{run_id}")
    def run(request: Request, run_id: str) -> Response:
        result = read(load_run, run_id)
        if result is None:
            return page(request, "web_updating.html.j2",
                        {"status": "not found", "message": f"No stored run {run_id}.", "detail": ""}, 404)
        if request.query_params.get("format") == "json":
            return JSONResponse(json_safe(result.to_facts()))
        images = {name: _png_uri(png) for name, png in report_images(result).items()}
        return HTMLResponse(render_report(result, images))

    @app.get("/feeds")
    def feeds(request: Request) -> Response:
        return page(request, "web_feeds.html.j2", read(_feeds))

    @app.get("/dag-runs/{dag_id}/{dag_run_id}")
    def dag_run(request: Request, dag_id: str, dag_run_id: str) -> Response:
        doc = {"dag_id": dag_id, "dag_run_id": dag_run_id, "analyses": read(_dag_run, dag_id, dag_run_id)}
        return page(request, "web_dag_run.html.j2", doc)

    return app
