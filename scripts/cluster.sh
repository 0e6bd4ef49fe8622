#!/usr/bin/env bash
# The Celery cluster of the README ("Past one machine"), whole, in one folder:
#   scripts/cluster.sh up        PostgreSQL (metadata), Redis (broker), api-server, scheduler,
#                                dag-processor, triggerer, a `duckdb` worker and a `default` worker,
#                                all on loopback
#   scripts/cluster.sh up --machines
#                                the same as several machines: each worker is a network host of its
#                                own (a Linux network namespace on a bridge, root only); the control
#                                machine's servers listen on the bridge, each worker keeps its logs
#                                on its own disk and serves them on 8793 to the API server
#   scripts/cluster.sh check     polls feeds through it; exits non-zero if anything is off
#   scripts/cluster.sh worker Q T  one more worker on queue Q named T (e.g. after killing one)
#   scripts/cluster.sh down      stops exactly what `up` started, by PID (and removes its network)
#   scripts/cluster.sh env       prints the environment file (source it to run airflow/media-timing
#                                commands against the cluster)
# `make cluster` runs `up`. The folder is $MEDIA_TIMING_CLUSTER_DIR (default /tmp/media-timing-cluster):
# metadata, broker, logs, the cluster's own DuckDB file and shared staging folder; your data/ and
# .airflow/ are not touched. Ports: $CLUSTER_PG_PORT, $CLUSTER_REDIS_PORT, $CLUSTER_API_PORT;
# --machines uses the network $CLUSTER_SUBNET.0/24 (default 10.213.0).
# Needs PostgreSQL's server binaries and redis-server (and, for --machines, iproute2): Debian's
# packages, installed with apt-get when missing (root). The Python side is the locked `cluster`
# extra (make setup).
set -Eeuo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
BASE="${MEDIA_TIMING_CLUSTER_DIR:-/tmp/media-timing-cluster}"
COMPONENTS=(api-server scheduler dag-processor triggerer)
ts() { date -u +%H:%M:%S; }
die() {  # a failed `up` stops what it had started
  trap - ERR
  echo "cluster: $*" >&2
  if [ -n "${STARTING:-}" ]; then STARTING=; down >&2; fi
  exit 1
}

pg_bin() {  # the newest PostgreSQL server binaries on this machine, installing Debian's if none
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
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

load_secrets() {  # the cluster's passwords and keys: made once, kept in $BASE/secrets (mode 600)
  local k
  if [ ! -s "$BASE/secrets" ]; then
    (umask 077
     for k in JWT_SECRET API_SECRET_KEY PG_PASSWORD REDIS_PASSWORD; do
       echo "$k=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
     done >"$BASE/secrets")
  fi
  source "$BASE/secrets"
}

write_env() {
  local allow
  allow=127.0.0.0/8
  [ "$MACHINES" = 0 ] || allow=$SUBNET.0/24
  (umask 077; : >"$BASE/env.sh")  # it holds the passwords
  cat >"$BASE/env.sh" <<EOF
# The cluster's settings (scripts/cluster.sh up wrote them). Every process of the cluster reads these.
export AIRFLOW_HOME=$BASE/airflow-home
export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
export AIRFLOW__CORE__PARALLELISM=32
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow:$PG_PASSWORD@$HOST:$PG_PORT/airflow
# Redis refuses other machines unless it has a password (protected mode): it always has one here.
export AIRFLOW__CELERY__BROKER_URL=redis://:$REDIS_PASSWORD@$HOST:$REDIS_PORT/0
# +psycopg2: with the locked SQLAlchemy 2.1 a bare postgresql:// means psycopg 3, not installed.
export AIRFLOW__CELERY__RESULT_BACKEND=db+postgresql+psycopg2://airflow:$PG_PASSWORD@$HOST:$PG_PORT/airflow
export AIRFLOW__CELERY__WORKER_CONCURRENCY=1
export AIRFLOW__API__HOST=$HOST
export AIRFLOW__API__PORT=$API_PORT
export AIRFLOW__API__BASE_URL=http://$HOST:$API_PORT
# Two secrets, each the same for every component (and every machine), not airflow.cfg's
# development one: jwt_secret signs the workers' execution-API tokens, secret_key the tokens
# the API server shows a worker's log server (port 8793) when it reads a task's log from there.
export AIRFLOW__API_AUTH__JWT_SECRET=$JWT_SECRET
export AIRFLOW__API__SECRET_KEY=$API_SECRET_KEY
# How long a task may go without a heartbeat before it is failed and retried (Airflow: 300 s).
export AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=${CLUSTER_HEARTBEAT_TIMEOUT:-300}
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
# The duckdb worker's own disk; the fetch workers stage on the shared folder, which the duckdb
# worker merges from. MEDIA_TIMING_FETCH_QUEUE must reach the dag-processor (it shapes the DAGs).
export MEDIA_TIMING_DB=$BASE/duckdb/media_timing.duckdb
export MEDIA_TIMING_DATA_DIR=$BASE/shared-data
export MEDIA_TIMING_FETCH_QUEUE=default
# The check serves its feeds on loopback (or on the cluster's own network), which feeds may not
# reach unless allowed.
export MEDIA_TIMING_FETCH_ALLOW_NETWORKS=${CLUSTER_FETCH_ALLOW_NETWORKS-$allow}
export MEDIA_TIMING_CLUSTER_DIR=$BASE  # scripts/cluster.sh worker|check|down then act on this cluster
export CLUSTER_DIR=$BASE CLUSTER_PG_PORT=$PG_PORT CLUSTER_REDIS_PORT=$REDIS_PORT CLUSTER_API_PORT=$API_PORT
export CLUSTER_HOST=$HOST CLUSTER_MACHINES=$MACHINES CLUSTER_SUBNET=$SUBNET CLUSTER_PG_PASSWORD=$PG_PASSWORD
export CLUSTER_FEED_HOSTS=$FEED_HOSTS
EOF
}

# --machines: the cluster's own network. The control machine (PostgreSQL, Redis, the Airflow
# components, the check's feed servers) is this one, at $SUBNET.1 and $SUBNET.201-204 on a
# bridge; each worker is a network namespace (a host with its own address, ports and routes)
# wired to the bridge. Filesystems stay shared, as a shared folder would be between machines.
net_name() { echo "mt${SUBNET##*.}-$1"; }  # under 15 characters, one set of names per subnet

net_up() {
  local br
  br=$(net_name br)
  command -v ip >/dev/null || install_debian iproute2
  ! ip link show "$br" >/dev/null 2>&1 ||
    die "network $br already exists: another cluster uses $SUBNET.0/24 (set CLUSTER_SUBNET)"
  ip link add "$br" type bridge || die "cannot create the bridge $br (needs root and network namespaces)"
  echo "$br" >"$BASE/net-bridge"
  ip addr add "$SUBNET.1/24" dev "$br"
  for h in 201 202 203 204; do ip addr add "$SUBNET.$h/24" dev "$br"; done
  ip link set "$br" up
}

machine_up() {  # machine_up TAG: a network host for one worker (its address and netns in machines/TAG)
  local tag=$1 n ns veth
  mkdir -p "$BASE/machines"
  n=$(( 10 + $(find "$BASE/machines" -mindepth 1 -maxdepth 1 | wc -l) ))
  ns=$(net_name "$tag") veth=$(net_name "h$n")
  mkdir -p "$BASE/machines/$tag/logs"
  ip netns add "$ns" || die "cannot create the network namespace $ns"
  echo "$ns" >>"$BASE/net-namespaces"
  ip link add "$veth" type veth peer name "$veth-p"
  ip link set "$veth-p" netns "$ns"
  ip link set "$veth" master "$(cat "$BASE/net-bridge")" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "$veth-p" name eth0
  ip -n "$ns" addr add "$SUBNET.$n/24" dev eth0
  ip -n "$ns" link set eth0 up
  echo "$SUBNET.$n" >"$BASE/machines/$tag/address"
  echo "$ns" >"$BASE/machines/$tag/netns"
}

net_down() {
  local ns
  if [ -f "$BASE/net-namespaces" ]; then
    while read -r ns; do ip netns del "$ns" 2>/dev/null || true; done <"$BASE/net-namespaces"
    rm -f "$BASE/net-namespaces"
  fi
  if [ -f "$BASE/net-bridge" ]; then ip link del "$(cat "$BASE/net-bridge")" 2>/dev/null || true; rm -f "$BASE/net-bridge"; fi
  rm -rf "$BASE/machines"
}

alive() { [ -f "$BASE/$1.pid" ] && kill -0 "$(cat "$BASE/$1.pid")" 2>/dev/null; }

start() {  # start NAME ARGS...: one Airflow component in its own session; its PID in NAME.pid
  local name=$1; shift
  local inside=()
  [ -z "${NETNS:-}" ] || inside=(ip netns exec "$NETNS")
  # exec: the PID recorded is the component itself, leader of its own process group (for `down`).
  (cd "$root"; source "$BASE/env.sh"; exec "${inside[@]}" setsid "$root/scripts/airflow.sh" "$@" \
    >"$BASE/logs/$name.log" 2>&1 </dev/null) &
  echo $! >"$BASE/$name.pid"
  echo "$(ts) started $name (pid $!)"
}

worker() {  # worker QUEUE TAG: a Celery worker through the project's launcher (airflow.cfg, env)
  local queue=$1 tag=${2:-$1} logs=(--skip-serve-logs)
  [ -f "$BASE/env.sh" ] || die "no cluster in $BASE (run: scripts/cluster.sh up)"
  ! alive "worker-$tag" || die "worker-$tag is already running"
  source "$BASE/env.sh"
  MACHINES=$CLUSTER_MACHINES SUBNET=$CLUSTER_SUBNET
  if [ "$MACHINES" = 1 ]; then
    [ ! -d "$BASE/machines/$tag" ] || die "machine $tag already exists: give the worker another tag"
    machine_up "$tag"
    logs=()
  fi
  # Airflow's hostname says who ran what (task_instance.hostname): scripts/cluster_hosts.py
  # gives two workers on one machine the machine's name and their tag, a worker on a machine of
  # its own its address. A worker's log server binds every interface on 8793, so on one machine
  # it is off and the API server reads the logs from disk; a machine of its own keeps its logs on
  # its own disk and serves them to the API server.
  (export PYTHONPATH="$root/scripts" AIRFLOW__CORE__HOSTNAME_CALLABLE=cluster_hosts.name CLUSTER_WORKER_TAG=$tag
   if [ "$MACHINES" = 1 ]; then
     export CLUSTER_WORKER_ADDRESS="$(cat "$BASE/machines/$tag/address")" NETNS="$(cat "$BASE/machines/$tag/netns")"
     export AIRFLOW__LOGGING__BASE_LOG_FOLDER="$BASE/machines/$tag/logs"
   fi
   start "worker-$tag" celery worker --queues "$queue" --concurrency 1 --celery-hostname "$tag@%h" "${logs[@]}")
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
  local t0 pg listen
  t0=$(date +%s)
  PG_PORT=${CLUSTER_PG_PORT:-55432} REDIS_PORT=${CLUSTER_REDIS_PORT:-56379} API_PORT=${CLUSTER_API_PORT:-58081}
  MACHINES=0 SUBNET=${CLUSTER_SUBNET:-10.213.0} HOST=127.0.0.1
  FEED_HOSTS=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4
  case "${1:-}" in
    "") ;;
    --machines) MACHINES=1 HOST=$SUBNET.1 FEED_HOSTS=$SUBNET.201,$SUBNET.202,$SUBNET.203,$SUBNET.204 ;;
    *) die "usage: scripts/cluster.sh up [--machines]" ;;
  esac
  if alive scheduler || alive postgres; then die "a cluster is already running in $BASE (scripts/cluster.sh down)"; fi
  [ "$MACHINES" = 0 ] || [ "$(id -u)" = 0 ] || die "up --machines needs root (it creates network namespaces)"
  STARTING=1
  trap 'die "up failed at line $LINENO of scripts/cluster.sh"' ERR  # and takes down what it started
  mkdir -p "$BASE"/{logs,duckdb,shared-data,airflow-home}
  chmod 755 "$BASE"  # the postgres user must reach its data folder
  load_secrets
  [ -x "$root/.venv/bin/celery" ] || make -C "$root" setup >"$BASE/logs/setup.log"
  "$root/.venv/bin/python" -c "import airflow.providers.celery, psycopg2, asyncpg, redis" 2>/dev/null ||
    die "the cluster extra is not installed in .venv (make setup installs requirements.lock)"
  pg=$(pg_bin)
  command -v redis-server >/dev/null || install_debian redis-server
  command -v redis-server >/dev/null || die "redis-server is not on PATH after installing it"
  listen=127.0.0.1
  if [ "$MACHINES" = 1 ]; then
    net_up
    listen=127.0.0.1,$HOST
    echo "$(ts) network $SUBNET.0/24: this machine is $HOST, each worker a host of its own"
  fi

  echo "$(ts) PostgreSQL ($pg) on $HOST:$PG_PORT, Redis on $HOST:$REDIS_PORT"
  mkdir -p "$BASE/pg"
  [ "$(id -u)" != 0 ] || chown postgres:postgres "$BASE/pg"
  chmod 700 "$BASE/pg"
  [ -f "$BASE/pg/data/PG_VERSION" ] || as_pg "$pg/initdb -D $BASE/pg/data -U postgres --auth=trust -E UTF8" \
    >"$BASE/logs/initdb.log" 2>&1 || die "initdb failed: see $BASE/logs/initdb.log"
  if [ "$MACHINES" = 1 ] && ! grep -q "^host airflow airflow $SUBNET.0/24" "$BASE/pg/data/pg_hba.conf"; then
    # Other machines log in with the password (initdb's trust covers this machine's loopback only).
    echo "host airflow airflow $SUBNET.0/24 scram-sha-256" >>"$BASE/pg/data/pg_hba.conf"
  fi
  as_pg "$pg/pg_ctl -D $BASE/pg/data -l $BASE/pg/postgres.log -w -o '-c listen_addresses=$listen -p $PG_PORT -k $BASE/pg' start" \
    >/dev/null || die "PostgreSQL did not start: see $BASE/pg/postgres.log"
  head -1 "$BASE/pg/data/postmaster.pid" >"$BASE/postgres.pid"
  echo "$pg" >"$BASE/pg-bin"
  "$pg/psql" -qh 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 \
    -c "CREATE USER airflow PASSWORD '$PG_PASSWORD'" -c "CREATE DATABASE airflow OWNER airflow" \
    >"$BASE/logs/createdb.log" 2>&1 || grep -q "already exists" "$BASE/logs/createdb.log" ||
    die "creating the airflow database failed: see $BASE/logs/createdb.log"
  # A folder kept from an earlier `up` may hold another password: this cluster's is in secrets.
  "$pg/psql" -qh 127.0.0.1 -p "$PG_PORT" -U postgres -c "ALTER USER airflow PASSWORD '$PG_PASSWORD'" >/dev/null
  (umask 077; echo "requirepass $REDIS_PASSWORD" >"$BASE/redis.conf")  # not on the command line: ps shows it
  # shellcheck disable=SC2086  # one --bind argument per address
  # The append-only file keeps queued tasks across `down` and `up`: without it a task queued at
  # `down` is lost with the broker and its run waits for [scheduler] task_queued_timeout (600 s).
  mkdir -p "$BASE/redis"
  redis-server "$BASE/redis.conf" --bind ${listen//,/ } --port "$REDIS_PORT" --save '' --appendonly yes \
    --daemonize yes --pidfile "$BASE/redis.pid" --dir "$BASE/redis" --logfile "$BASE/logs/redis.log" ||
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
  wait_until 180 "the API server" curl -sf "http://$HOST:$API_PORT/api/v2/monitor/health"
  # New DAG files otherwise wait for the dag-processor's first scan.
  (cd "$root" && source "$BASE/env.sh" && scripts/airflow.sh dags reserialize >"$BASE/logs/reserialize.log" 2>&1) ||
    echo "$(ts) dags reserialize failed (logs/reserialize.log): waiting for the dag-processor"
  wait_until 120 "the duckdb worker" worker_ready duckdb
  wait_until 120 "the default worker" worker_ready default
  STARTING=
  trap - ERR
  echo "$(ts) cluster up in $(( $(date +%s) - t0 )) s: http://$HOST:$API_PORT (admin, password in $BASE/airflow-home/simple_auth_manager_passwords.json.generated)"
  if [ "$MACHINES" = 1 ]; then
    for m in "$BASE"/machines/*; do echo "  worker $(basename "$m") on $(cat "$m/address") (netns $(cat "$m/netns"))"; done
  fi
  echo "  source $BASE/env.sh   # then scripts/airflow.sh ... and media-timing ... use the cluster"
}

check() {
  [ -f "$BASE/env.sh" ] || die "no cluster in $BASE (run: scripts/cluster.sh up)"
  source "$BASE/env.sh"
  "$root/.venv/bin/python" "$root/scripts/cluster_check.py" "$@"
}

stop_groups() {  # stop_groups NAME...: TERM their process groups at once, wait, then KILL what is left
  local name p pids=() end
  for name in "$@"; do
    [ -f "$BASE/$name.pid" ] || continue
    p=$(cat "$BASE/$name.pid")
    pids+=("$p")
    kill -TERM -- "-$p" 2>/dev/null || true
    rm -f "$BASE/$name.pid"
  done
  end=$(( $(date +%s) + 30 ))
  for p in "${pids[@]}"; do
    while kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.5; done
  done
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
}

down() {
  local f pg
  # Workers first (they finish or give back their task), then the components, then the servers.
  local workers=()
  for f in "$BASE"/worker-*.pid; do [ ! -e "$f" ] || workers+=("$(basename "$f" .pid)"); done
  stop_groups "${workers[@]}"
  stop_groups "${COMPONENTS[@]}"
  if [ -f "$BASE/redis.pid" ]; then kill "$(cat "$BASE/redis.pid")" 2>/dev/null || true; rm -f "$BASE/redis.pid"; fi
  if [ -f "$BASE/postgres.pid" ]; then
    pg=$(cat "$BASE/pg-bin")
    as_pg "$pg/pg_ctl -D $BASE/pg/data -m fast -w stop" >/dev/null 2>&1 || kill "$(cat "$BASE/postgres.pid")" 2>/dev/null || true
    rm -f "$BASE/postgres.pid"
  fi
  net_down
  echo "$(ts) stopped (state kept in $BASE; remove the folder to start afresh)"
}

case "${1:-up}" in
  up) shift || true; up "$@" ;;
  check) shift; check "$@" ;;
  worker) shift; [ $# -ge 1 ] || die "usage: scripts/cluster.sh worker QUEUE [TAG]"; worker "$@" ;;
  down) down ;;
  env) cat "$BASE/env.sh" ;;
  *) die "usage: scripts/cluster.sh up [--machines]|check|worker QUEUE [TAG]|down|env" ;;
esac
