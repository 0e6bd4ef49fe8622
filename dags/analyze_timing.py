"""
### Test every claim against the new data

Runs when `ingest_feeds` or `ingest_events` emit new items or events (data-aware scheduling).
For each claim in `claims/*.yaml` it loads the claim's releases and streams, derives the run id
(a hash of the parameters, the data snapshot and the code) and runs the Monte Carlo tests only
if that exact run is not stored yet: new data that touches no claim costs a lookup.

**Writes**: `analysis_runs`, `results`, `story_onsets`, `dag_run_analyses` (one task per claim,
in the one-slot writer pool). Its verdicts open from the run's **Verdict** tab in this UI.
**Emits** `duckdb://media_timing/results` when a new run was stored.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task
from media_timing_common import (
    DEFAULT_ARGS,
    NEW_EVENTS,
    NEW_ITEMS,
    NEW_RESULTS,
    START,
    WRITER_POOL,
    WRITER_RETRY,
)


@dag(
    schedule=(NEW_ITEMS | NEW_EVENTS),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["media-timing", "analysis"],
    doc_md=__doc__,
)
def analyze_timing():
    @task
    def claims() -> list[str]:
        from pipeline import jobs

        return jobs.list_claims()

    @task(pool=WRITER_POOL, retry_policy=WRITER_RETRY, execution_timeout=timedelta(minutes=30))
    def analyze(claim_id: str, dag_run=None) -> dict:
        from pipeline import jobs

        result = jobs.analyze_claim(claim_id, dag_id=dag_run.dag_id, dag_run_id=dag_run.run_id)
        print(result)
        return result

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def anything_stored(results: list[dict]) -> bool:
        return any(r["status"] == "stored" for r in results)

    @task(outlets=[NEW_RESULTS])
    def announce(results: list[dict], *, outlet_events=None) -> None:
        outlet_events[NEW_RESULTS].extra = {"runs": [r["run_id"] for r in results if r["status"] == "stored"]}

    results = analyze.expand(claim_id=claims())
    anything_stored(results) >> announce(results)


analyze_timing()
