#!/usr/bin/env bash
# Run Airflow with this repository's configuration:
#   scripts/airflow.sh up                (what `make airflow` runs: every component, in order;
#                                         one Ctrl-C stops them all; see scripts/airflow_up.py)
#   scripts/airflow.sh dags list         (any other Airflow command)
# State goes to .airflow/ (metadata DB, logs, the generated admin password); nothing in git.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export AIRFLOW_PROJECT="$root"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$root/.airflow}"
export AIRFLOW_CONFIG="$root/airflow.cfg"
export MEDIA_TIMING_DB="${MEDIA_TIMING_DB:-$root/data/media_timing.duckdb}"
mkdir -p "$AIRFLOW_HOME"
bin="$root/.venv/bin"
# standalone starts its components as `airflow ...` through PATH.
export PATH="$bin:$PATH"

prepare() {
  "$bin/airflow" db migrate >/dev/null
  # One slot: DuckDB allows one writing process, so every task that writes takes this pool.
  "$bin/airflow" pools set duckdb_writer 1 "the single DuckDB writer" >/dev/null
}

if [ "${1:-}" = "up" ]; then
  shift
  prepare
  echo "Airflow is starting (API server first, then scheduler, DAG processor, triggerer)."
  echo "DAGs from $root/dags; state in $AIRFLOW_HOME; DuckDB file $MEDIA_TIMING_DB"
  exec "$bin/python" "$root/scripts/airflow_up.py" "$@"
fi
if [ "${1:-}" = "prepare" ]; then
  prepare
  exit 0
fi
exec "$bin/airflow" "$@"
