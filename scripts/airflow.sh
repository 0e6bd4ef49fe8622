#!/usr/bin/env bash
# Run an Airflow command with this repository's configuration:
#   scripts/airflow.sh standalone        (what `make airflow` runs)
#   scripts/airflow.sh dags list
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

if [ "${1:-}" = "standalone" ]; then
  prepare
  port=$(grep -E '^port' "$root/airflow.cfg" | head -1 | awk '{print $3}')
  port="${AIRFLOW__API__PORT:-$port}"
  echo "Airflow is starting: http://127.0.0.1:$port"
  echo "Log in as admin; the password is printed below by Airflow and kept in"
  echo "  $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
  echo "DAGs from $root/dags; state in $AIRFLOW_HOME; DuckDB file $MEDIA_TIMING_DB"
  echo "Stop it with Ctrl-C."
  exec "$bin/airflow" standalone
fi
if [ "${1:-}" = "prepare" ]; then
  prepare
  exit 0
fi
exec "$bin/airflow" "$@"
