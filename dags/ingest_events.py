"""
### Ingest releases: release-role feeds and event catalogs

Hourly: poll the **release** feeds (leak sites, press pages: `media-timing feeds add URL
--role release`), import every sourced timeline in `data/events/*.csv` (the format of
`data/case_2016/timeline_2016.csv`), and turn release-feed items with usable times into events.

**Writes**: `fetches`, `items`, `events`, `imports`. **Emits** `duckdb://media_timing/events`
when events were added or corrected, which schedules `analyze_timing`. Re-importing an
unchanged catalog changes nothing; a bad row is reported in the log by file and line.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task
from media_timing_common import (
    DEFAULT_ARGS,
    FETCH_QUEUE,
    NEW_EVENTS,
    START,
    WRITER_POOL,
    WRITER_RETRY,
)


@dag(
    schedule="@hourly",
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["media-timing", "ingest"],
    doc_md=__doc__,
)
def ingest_events():
    @task
    def plan_release_feeds() -> list[list[dict]]:
        from pipeline import jobs

        return jobs.plan_feed_shards(roles=jobs.RELEASE_ROLES, shards=4)

    @task(execution_timeout=timedelta(minutes=10), retries=1, queue=FETCH_QUEUE)
    def fetch(shard: list[dict], ti=None) -> dict:
        from pipeline import jobs

        return jobs.fetch_shard(shard, lane="release", poll_id=f"{ti.dag_id}/{ti.run_id}/{ti.map_index}")

    @task(pool=WRITER_POOL, retry_policy=WRITER_RETRY, trigger_rule="none_failed")
    def load_and_import(fetched: list[dict]) -> dict:
        """Merge staged release feeds, import catalogs, promote release items to events."""
        from pipeline import jobs

        loaded = jobs.load_staged(lane="release")
        catalogs = jobs.import_event_catalogs()
        for rejection in catalogs["rejected"]:
            print(f"rejected: {rejection}")
        promoted = jobs.promote_release_items()
        result = {"items_new": loaded["items_new"], "catalog_files": catalogs["files"],
                  "events_new": catalogs["new"] + promoted["new_events"],
                  "events_updated": catalogs["updated"] + promoted["updated_events"]}
        print(result)
        return result

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def anything_new(result: dict) -> bool:
        return result["events_new"] + result["events_updated"] > 0

    @task(outlets=[NEW_EVENTS])
    def announce(result: dict, *, outlet_events=None) -> None:
        outlet_events[NEW_EVENTS].extra = result

    result = load_and_import(fetch.expand(shard=plan_release_feeds()))
    anything_new(result) >> announce(result)


ingest_events()
