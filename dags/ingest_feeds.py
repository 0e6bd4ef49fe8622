"""
### Poll the news and announcement feeds

Every 15 minutes: plan which feeds are due (conditional GET state, backoff after failures,
Retry-After), fetch them in parallel shards grouped by host (**no database access**: each shard
stages a Parquet batch under `data/staging/news/`), then merge everything staged there into DuckDB
in one transaction from the one-slot `duckdb_writer` pool.

**Writes**: `fetches`, `items`, `item_sightings`, `staged_batches`; disables feeds after
repeated failures (`sources.enabled`). **Emits** the `duckdb://media_timing/items` asset when
new items arrived, which schedules `analyze_timing`.

A run that finds the database locked retries; its batches stay staged and the next load merges
them, so nothing is lost and nothing is loaded twice. Feeds: `media-timing feeds add|import`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task
from media_timing_common import (
    DEFAULT_ARGS,
    FETCH_QUEUE,
    NEW_ITEMS,
    START,
    WRITER_POOL,
    WRITER_RETRY,
)

SHARDS = 8


@dag(
    schedule="*/15 * * * *",
    start_date=START,
    catchup=False,  # after downtime, one run catches up: due feeds are due, whatever was missed
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["media-timing", "ingest"],
    doc_md=__doc__,
)
def ingest_feeds():
    @task
    def plan() -> list[list[dict]]:
        """Due news and announcement feeds, sharded by host."""
        from pipeline import jobs

        shards = jobs.plan_feed_shards(roles=jobs.NEWS_ROLES, shards=SHARDS)
        print(f"{sum(map(len, shards))} feeds due, in {len(shards)} shards")
        return shards

    @task(execution_timeout=timedelta(minutes=10), retries=1, queue=FETCH_QUEUE)
    def fetch(shard: list[dict], ti=None) -> dict:
        """Fetch and parse one shard; stage it on disk."""
        from pipeline import jobs

        result = jobs.fetch_shard(shard, lane="news", poll_id=f"{ti.dag_id}/{ti.run_id}/{ti.map_index}")
        for failure in result["failures"]:
            print(f"feed failed: {failure}")
        return result

    @task(pool=WRITER_POOL, retry_policy=WRITER_RETRY, trigger_rule="none_failed")
    def load(fetched: list[dict]) -> dict:
        """Merge every staged batch into DuckDB (one writer)."""
        from pipeline import jobs

        result = jobs.load_staged(lane="news")
        print(f"merged {result['batches']} batches: {result['items_new']} new items, "
              f"{result['items_seen']} seen before; disabled: {result['disabled'] or 'none'}")
        return result

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def anything_new(loaded: dict) -> bool:
        return loaded["items_new"] > 0

    @task(outlets=[NEW_ITEMS])
    def announce(loaded: dict, *, outlet_events=None) -> None:
        """Tell analyze_timing that there are new items."""
        outlet_events[NEW_ITEMS].extra = {"items_new": loaded["items_new"]}

    loaded = load(fetch.expand(shard=plan()))
    anything_new(loaded) >> announce(loaded)


ingest_feeds()
