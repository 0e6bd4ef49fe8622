"""
### Backfill from an archive (manual)

Load the past: an outlet's own feed or front page as the Internet Archive captured it
(**wayback**: one mapped task per URL), or the articles GDELT 2.0 saw, batch by batch
(**gdelt**: one mapped task per 15-minute slot). Trigger it with the form: the kind, the URLs
(wayback) or the domains and keywords to keep (gdelt), the window and the source name.

Items carry their first-seen interval (previous capture or batch, the one that held them) beside
the publisher's claimed time; a claim later than the first sighting is flagged and not trusted.
Resumable: each capture and each file is recorded in its ledger (`wayback_captures`,
`gdelt_files`) as it is written, so a failed or cleared task resumes where it stopped and a
second run adds nothing. One unit at a time: the archive's rate limits are per network.

**Writes**: `sources`, `items`, `wayback_captures`, `gdelt_files`. **Emits**
`duckdb://media_timing/items` (so `analyze_timing` reruns).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from media_timing_common import DEFAULT_ARGS, NEW_ITEMS, START, WRITER_POOL, WRITER_RETRY

from pipeline.config import ROLES  # cheap: no DuckDB, no pandas at parse time

# A list, or text with one entry per line or comma (what a form field sends); empty: none.
LIST = ["null", "array", "string"]


@dag(
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 2},
    tags=["media-timing", "backfill"],
    doc_md=__doc__,
    params={
        "kind": Param("wayback", type=["null", "string"], enum=[None, "wayback", "gdelt"], title="Archive",
                      description="wayback: the Internet Archive's captures of URLs; gdelt: GDELT 2.0 files. "
                                  "Empty: wayback"),
        "start": Param("", type="string", minLength=10, title="From (UTC)",
                       description="A date or ISO 8601 time, e.g. 2016-10-06 or 2016-10-07T18:00Z"),
        "end": Param("", type="string", minLength=10, title="To (UTC)",
                     description="A date (inclusive) or ISO 8601 time"),
        "urls": Param(None, type=LIST, items={"type": "string"}, title="URLs (wayback)",
                      description="Feed or front-page addresses as they were. Empty: none (needed for wayback)"),
        "source": Param(None, type=["null", "string"], title="Source name (optional)",
                        description="Empty: wayback:<host> for captures, gdelt for GDELT"),
        "role": Param("news", type=["null", "string"], enum=[None, *ROLES], title="Role",
                      description="news, release or announcement. Empty: news"),
        "domains": Param(None, type=LIST, items={"type": "string"}, title="Domains to keep (gdelt)",
                         description="e.g. washingtonpost.com. Empty: every outlet GDELT saw"),
        "keywords": Param(None, type=LIST, items={"type": "string"}, title="Keywords to keep (gdelt)",
                          description="Kept if the URL or title contains one. Empty: no keyword filter"),
        "tables": Param(None, type=LIST, items={"type": "string"}, title="GDELT tables (gkg, mentions)",
                        description="Empty: gkg and mentions"),
        "cdx_endpoint": Param(None, type=["null", "string"], title="CDX endpoint (optional)",
                              description="Empty: https://web.archive.org/cdx/search/cdx"),
        "playback_endpoint": Param(None, type=["null", "string"], title="Playback endpoint (optional)",
                                   description="Empty: https://web.archive.org/web"),
        "base_url": Param(None, type=["null", "string"], title="GDELT base URL (optional)",
                          description="Empty: http://data.gdeltproject.org/gdeltv2"),
    },
)
def backfill_archive():
    @task
    def plan(params=None) -> list[dict]:
        from pipeline import jobs

        units = jobs.backfill_plan(params["kind"] or "wayback", params["urls"], params["start"], params["end"])
        print(f"{len(units)} units to backfill")
        return units

    # One unit at a time (max_active_tis_per_dag=1): the archives' rate limits are per network.
    @task(pool=WRITER_POOL, retry_policy=WRITER_RETRY, max_active_tis_per_dag=1,
          execution_timeout=timedelta(hours=2))
    def backfill(unit: dict, params=None) -> dict:
        from pipeline import jobs

        keys = ("source", "role", "domains", "keywords", "tables", "cdx_endpoint", "playback_endpoint", "base_url")
        result = jobs.backfill_unit(unit, **{k: params.get(k) for k in keys})
        print(result)
        return result

    @task(outlets=[NEW_ITEMS])
    def announce(results: list[dict], *, outlet_events=None) -> dict:
        new = sum(r["items_new"] for r in results)
        outlet_events[NEW_ITEMS].extra = {"backfill_items_new": new}
        return {"units": len(results), "items_new": new}

    announce(backfill.expand(unit=plan()))


backfill_archive()
