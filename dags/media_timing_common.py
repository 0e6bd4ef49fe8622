"""What the media-timing DAGs share: their assets, retry rules and defaults (not a DAG file)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, ExceptionRetryPolicy, RetryAction, RetryRule

START = pendulum.datetime(2026, 1, 1, tz="UTC")

# Data-aware scheduling: producers emit these, analyze_timing runs when they change.
NEW_ITEMS = Asset("duckdb://media_timing/items", extra={"table": "items"})
NEW_EVENTS = Asset("duckdb://media_timing/events", extra={"table": "events"})
NEW_RESULTS = Asset("duckdb://media_timing/results", extra={"table": "results"})

# DuckDB allows one writing process: every task that writes takes this one-slot pool.
WRITER_POOL = "duckdb_writer"

WRITER_RETRY = ExceptionRetryPolicy(rules=[
    RetryRule(exception="pipeline.database.DatabaseLocked", action=RetryAction.RETRY,
              retry_delay=timedelta(seconds=20), reason="another process holds the DuckDB file"),
    RetryRule(exception="pipeline.csvfile.CsvFileError", action=RetryAction.FAIL,
              reason="the input file is unusable: fix it, then clear the task"),
    RetryRule(exception="pipeline.claims.ClaimError", action=RetryAction.FAIL,
              reason="the claim file is invalid: fix it, then clear the task"),
    RetryRule(exception="pipeline.store.SourceConflict", action=RetryAction.FAIL,
              reason="the source exists with another role: pick another name"),
])

DEFAULT_ARGS = {
    "owner": "media-timing",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=15),
    "execution_timeout": timedelta(minutes=20),
}
