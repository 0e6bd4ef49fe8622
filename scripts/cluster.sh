#!/usr/bin/env bash
# The Celery cluster of the README ("Past one machine"), whole, on loopback, in one folder:
#   scripts/cluster.sh up        PostgreSQL (metadata), Redis (broker), api-server, scheduler,
#                                dag-processor, triggerer, a `duckdb` worker and a `default` worker
#   scripts/cluster.sh check     polls loopback feeds through it; exits non-zero if anything is off
#   scripts/cluster.sh worker Q T  one more worker on queue Q named T (e.g. after killing one)
#   scripts/cluster.sh down      stops exactly what `up` started, by PID
#   scripts/cluster.sh env       prints the environment file (source it to run airflow/media-timing
#                                commands against the cluster)
# `make cluster` runs `up`. The folder is $MEDIA_TIMING_CLUSTER_DIR (default /tmp/media-timing-cluster):
# metadata, broker, logs, the cluster's own DuckDB file and shared staging folder; your data/ and
# .airflow/ are not touched. Ports: $CLUSTER_PG_PORT, $CLUSTER_REDIS_PORT, $CLUSTER_API_PORT.
# Needs PostgreSQL's server binaries and redis-server: Debian's packages, installed with apt-get
# when missing (root). The Python side is the locked `cluster` extra (make setup).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
BASE="${MEDIA_TIMING_CLUSTER_DIR:-/tmp/media-timing-cluster}"
COMPONENTS=(api-server scheduler dag-processor triggerer)
ts() { date -u +%H:%M:%S; }
die() {  # a failed `up` stops what it had started
  echo "cluster: $*" >&2
  if [ -n "${STARTING:-}" ]; then STARTING=; down >&2; fi
  exit 1
}

pg_bin() {  # the newest PostgreSQL server binaries on this machine, installing Debian's if none
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$d" ] && [ -x "$(command -v initdb)" ]; then d=$(dirname "$(command -v initdb)"); fi
  if [ -z "$d" ]; then
    install_debian postgresql >&2
    d=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  echo "$d"
}

install_debian() {  # install_debian PACKAGE: or stop with the reason
  [ "$(id -u)" = 0 ] || die "$1 is not installed and installing it needs root (apt-get install $1)"
  command -v apt-get >/dev/null || die "$1 is not installed and this machine has no apt-get"
  echo "$(ts) installing $1 (apt-get)"
  { apt-get install -y -qq "$1" || { apt-get update -qq && apt-get install -y -qq "$1"; }; } \
    >"$BASE/logs/apt-$1.log" 2>&1 || die "apt-get install $1 failed: see $BASE/logs/apt-$1.log"
}

as_pg() {  # initdb and the server refuse root: run them as the postgres user then
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

write_env() {
  local secret
  secret=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  cat >"$BASE/env.sh" <<EOF
# The cluster's settings (scripts/cluster.sh up wrote them). Every process of the cluster reads these.
export AIRFLOW_HOME=$BASE/airflow-home
export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
export AIRFLOW__CORE__PARALLELISM=32
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow:airflow@127.0.0.1:$PG_PORT/airflow
export AIRFLOW__CELERY__BROKER_URL=redis://127.0.0.1:$REDIS_PORT/0
# +psycopg2: with the locked SQLAlchemy 2.1 a bare postgresql:// means psycopg 3, not installed.
export AIRFLOW__CELERY__RESULT_BACKEND=db+postgresql+psycopg2://airflow:airflow@127.0.0.1:$PG_PORT/airflow
export AIRFLOW__CELERY__WORKER_CONCURRENCY=1
export AIRFLOW__API__PORT=$API_PORT
export AIRFLOW__API__BASE_URL=http://127.0.0.1:$API_PORT
# One secret for every component (and every machine), not airflow.cfg's development one.
export AIRFLOW__API_AUTH__JWT_SECRET=$secret
# How long a task may go without a heartbeat before it is failed and retried (Airflow: 300 s).
export AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=${CLUSTER_HEARTBEAT_TIMEOUT:-300}
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
# The duckdb worker's own disk; the fetch workers stage on the shared folder, which the duckdb
# worker merges from. MEDIA_TIMING_FETCH_QUEUE must reach the dag-processor (it shapes the DAGs).
export MEDIA_TIMING_DB=$BASE/duckdb/media_timing.duckdb
export MEDIA_TIMING_DATA_DIR=$BASE/shared-data
export MEDIA_TIMING_FETCH_QUEUE=default
# The check serves its feeds on loopback, which feeds may not reach unless allowed.
export MEDIA_TIMING_FETCH_ALLOW_NETWORKS=${CLUSTER_FETCH_ALLOW_NETWORKS-127.0.0.0/8}
export CLUSTER_DIR=$BASE CLUSTER_PG_PORT=$PG_PORT CLUSTER_REDIS_PORT=$REDIS_PORT CLUSTER_API_PORT=$API_PORT
EOF
}

alive() { [ -f "$BASE/$1.pid" ] && kill -0 "$(cat "$BASE/$1.pid")" 2>/dev/null; }

start() {  # start NAME ARGS...: one Airflow component in its own session; its PID in NAME.pid
  local name=$1; shift
  # exec: the PID recorded is the component itself, leader of its own process group (for `down`).
  (cd "$root"; source "$BASE/env.sh"; exec setsid "$root/scripts/airflow.sh" "$@" \
    >"$BASE/logs/$name.log" 2>&1 </dev/null) &
  echo $! >"$BASE/$name.pid"
  echo "$(ts) started $name (pid $!)"
}

worker() {  # worker QUEUE TAG: a Celery worker through the project's launcher (airflow.cfg, env)
  local queue=$1 tag=${2:-$1}
  [ -f "$BASE/env.sh" ] || die "no cluster in $BASE (run: scripts/cluster.sh up)"
  ! alive "worker-$tag" || die "worker-$tag is already running"
  # Two workers on one machine need two Airflow hostnames (task_instance.hostname says who ran
  # what): scripts/cluster_hosts.py appends the tag. The log server binds every interface on
  # 8793, so on one machine it is off and the API server reads the logs from disk; on separate
  # machines drop --skip-serve-logs and open 8793 to the API server.
  (export PYTHONPATH="$root/scripts" AIRFLOW__CORE__HOSTNAME_CALLABLE=cluster_hosts.name CLUSTER_WORKER_TAG=$tag
   start "worker-$tag" celery worker --queues "$queue" --concurrency 1 \
     --celery-hostname "$tag@%h" --skip-serve-logs)
}

wait_until() {  # wait_until SECONDS WHAT COMMAND...
  local limit=$1 what=$2; shift 2
  local end=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "timed out after $limit s waiting for $what (logs: $BASE/logs)"
    sleep 2
  done
}

worker_ready() { grep -q " ready" "$BASE/logs/worker-$1.log"; }

up() {
  local t0 pg
  t0=$(date +%s)
  PG_PORT=${CLUSTER_PG_PORT:-55432} REDIS_PORT=${CLUSTER_REDIS_PORT:-56379} API_PORT=${CLUSTER_API_PORT:-58081}
  if alive scheduler || alive postgres; then die "a cluster is already running in $BASE (scripts/cluster.sh down)"; fi
  STARTING=1
  mkdir -p "$BASE"/{logs,duckdb,shared-data,airflow-home}
  chmod 755 "$BASE"  # the postgres user must reach its data folder
  [ -x "$root/.venv/bin/celery" ] || make -C "$root" setup >"$BASE/logs/setup.log"
  "$root/.venv/bin/python" -c "import airflow.providers.celery, psycopg2, asyncpg, redis" 2>/dev/null ||
    die "the cluster extra is not installed in .venv (make setup installs requirements.lock)"
  pg=$(pg_bin)
  command -v redis-server >/dev/null || install_debian redis-server
  command -v redis-server >/dev/null || die "redis-server is not on PATH after installing it"

  echo "$(ts) PostgreSQL ($pg) on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT"
  mkdir -p "$BASE/pg"
  [ "$(id -u)" != 0 ] || chown postgres:postgres "$BASE/pg"
  chmod 700 "$BASE/pg"
  [ -f "$BASE/pg/data/PG_VERSION" ] || as_pg "$pg/initdb -D $BASE/pg/data -U postgres --auth=trust -E UTF8" \
    >"$BASE/logs/initdb.log" 2>&1 || die "initdb failed: see $BASE/logs/initdb.log"
  as_pg "$pg/pg_ctl -D $BASE/pg/data -l $BASE/pg/postgres.log -w -o '-c listen_addresses=127.0.0.1 -p $PG_PORT -k $BASE/pg' start" \
    >/dev/null || die "PostgreSQL did not start: see $BASE/pg/postgres.log"
  head -1 "$BASE/pg/data/postmaster.pid" >"$BASE/postgres.pid"
  echo "$pg" >"$BASE/pg-bin"
  "$pg/psql" -qh 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 \
    -c "CREATE USER airflow PASSWORD 'airflow'" -c "CREATE DATABASE airflow OWNER airflow" \
    >"$BASE/logs/createdb.log" 2>&1 || grep -q "already exists" "$BASE/logs/createdb.log" ||
    die "creating the airflow database failed: see $BASE/logs/createdb.log"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
    --pidfile "$BASE/redis.pid" --dir "$BASE" --logfile "$BASE/logs/redis.log" ||
    die "Redis did not start: see $BASE/logs/redis.log"
  wait_until 20 "Redis" test -s "$BASE/redis.pid"

  write_env
  echo "$(ts) airflow db migrate, pool duckdb_writer"
  (cd "$root" && source "$BASE/env.sh" && scripts/airflow.sh prepare >"$BASE/logs/prepare.log" 2>&1) ||
    die "airflow db migrate failed: see $BASE/logs/prepare.log"
  start api-server api-server
  start scheduler scheduler
  start dag-processor dag-processor
  start triggerer triggerer --skip-serve-logs
  worker duckdb duckdb
  worker default default
  wait_until 180 "the API server" curl -sf "http://127.0.0.1:$API_PORT/api/v2/monitor/health"
  # New DAG files otherwise wait for the dag-processor's first scan.
  (cd "$root" && source "$BASE/env.sh" && scripts/airflow.sh dags reserialize >"$BASE/logs/reserialize.log" 2>&1) ||
    echo "$(ts) dags reserialize failed (logs/reserialize.log): waiting for the dag-processor"
  wait_until 120 "the duckdb worker" worker_ready duckdb
  wait_until 120 "the default worker" worker_ready default
  STARTING=
  echo "$(ts) cluster up in $(( $(date +%s) - t0 )) s: http://127.0.0.1:$API_PORT (admin, password in $BASE/airflow-home/simple_auth_manager_passwords.json.generated)"
  echo "  source $BASE/env.sh   # then scripts/airflow.sh ... and media-timing ... use the cluster"
}

check() {
  [ -f "$BASE/env.sh" ] || die "no cluster in $BASE (run: scripts/cluster.sh up)"
  source "$BASE/env.sh"
  "$root/.venv/bin/python" "$root/scripts/cluster_check.py" "$@"
}

stop_group() {  # stop_group NAME: TERM its process group, wait, then KILL what is left
  local p
  [ -f "$BASE/$1.pid" ] || return 0
  p=$(cat "$BASE/$1.pid")
  kill -TERM -- "-$p" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 1; done
  kill -KILL -- "-$p" 2>/dev/null || true
  rm -f "$BASE/$1.pid"
}

down() {
  local f pg
  # Workers first (they finish or give back their task), then the components, then the servers.
  for f in "$BASE"/worker-*.pid; do [ -e "$f" ] && stop_group "$(basename "$f" .pid)"; done
  for f in "${COMPONENTS[@]}"; do stop_group "$f"; done
  if [ -f "$BASE/redis.pid" ]; then kill "$(cat "$BASE/redis.pid")" 2>/dev/null || true; rm -f "$BASE/redis.pid"; fi
  if [ -f "$BASE/postgres.pid" ]; then
    pg=$(cat "$BASE/pg-bin")
    as_pg "$pg/pg_ctl -D $BASE/pg/data -m fast -w stop" >/dev/null 2>&1 || kill "$(cat "$BASE/postgres.pid")" 2>/dev/null || true
    rm -f "$BASE/postgres.pid"
  fi
  echo "$(ts) stopped (state kept in $BASE; remove the folder to start afresh)"
}

case "${1:-up}" in
  up) up ;;
  check) shift; check "$@" ;;
  worker) shift; [ $# -ge 1 ] || die "usage: scripts/cluster.sh worker QUEUE [TAG]"; worker "$@" ;;
  down) down ;;
  env) cat "$BASE/env.sh" ;;
  *) die "usage: scripts/cluster.sh up|check|worker QUEUE [TAG]|down|env" ;;
esac
