"""What the media-timing DAGs share: their assets, retry rules and defaults (not a DAG file)."""

from __future__ import annotations

import os
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

# On a cluster (Celery or Kubernetes executors) the DuckDB file lives on one worker's disk, so
# every task that opens it runs on this queue, served by that worker alone. The fetch tasks open
# no database and may run anywhere, but they stage files the loader must see: they stay on this
# queue unless MEDIA_TIMING_FETCH_QUEUE names another and MEDIA_TIMING_DATA_DIR is shared storage.
# LocalExecutor (the default) ignores queues.
DUCKDB_QUEUE = "duckdb"
FETCH_QUEUE = os.environ.get("MEDIA_TIMING_FETCH_QUEUE") or DUCKDB_QUEUE

# One policy from the pipeline's error classes (pipeline/errors.py): what may succeed later is
# retried soon, what a person must fix fails at once with its message in the log.
WRITER_RETRY = ExceptionRetryPolicy(rules=[
    RetryRule(exception="pipeline.errors.Unavailable", action=RetryAction.RETRY,
              retry_delay=timedelta(seconds=20), reason="busy or down (the DuckDB file lock, a server)"),
    RetryRule(exception="pipeline.errors.UserError", action=RetryAction.FAIL,
              reason="bad input (a file, a claim, a form value): fix it, then clear the task"),
    RetryRule(exception="pipeline.errors.Uncertain", action=RetryAction.FAIL,
              reason="an outcome only a person can check"),
])

DEFAULT_ARGS = {
    "owner": "media-timing",
    "queue": DUCKDB_QUEUE,
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=15),
    "execution_timeout": timedelta(minutes=20),
}
