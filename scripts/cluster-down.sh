#!/usr/bin/env bash
# Stops what scripts/cluster-up.sh started in DIR:
#
#     scripts/cluster-down.sh --dir DIR
#
# Reads the process ids from DIR/cluster.env (or DIR/cluster.env.partial, left by a start-up that
# was interrupted) and stops, in order: the edges, the control plane, Redis, the NATS servers and
# PostgreSQL. Each gets SIGTERM (PostgreSQL: a fast shutdown) and a deadline, then SIGKILL. A
# process id that now belongs to another program is left alone. Data under DIR is kept; the
# settings file is removed once everything is down. Idempotent: with nothing running it does
# nothing and succeeds. Exits non-zero only if a process refused to die.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib-services.sh
source "$script_dir/lib-services.sh"

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir=${2:-}; shift 2 || usage ;;
        -h | --help) usage ;;
        *) echo "cluster-down: unknown argument '$1'" >&2; usage ;;
    esac
done
[ -n "$dir" ] || usage

say() { printf 'cluster-down: %s\n' "$*" >&2; }

env_files=()
for candidate in "$dir/cluster.env" "$dir/cluster.env.partial"; do
    [ -f "$candidate" ] && env_files+=("$candidate")
done
if [ "${#env_files[@]}" -eq 0 ]; then
    say "no cluster.env in $dir: nothing to stop"
    exit 0
fi
for env_file in "${env_files[@]}"; do
    # Written by cluster-up.sh: plain KEY=value assignments.
    # shellcheck source=/dev/null
    source "$env_file"
done

failed=0

# Stops PID (named NAME) when it is still the program whose command line contains WORD.
stop_service() {
    local pid=$1 name=$2 word=$3 signal=${4:-TERM}
    [ -n "$pid" ] || return 0
    stratus_pid_alive "$pid" || return 0
    if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$word"; then
        say "pid $pid ($name) now runs something else: left alone"
        return 0
    fi
    say "stopping $name (pid $pid)"
    stratus_stop_pid "$pid" "$name" "$signal" 20 || failed=1
}

for i in 1 2 3; do
    pid_var="EDGE${i}_PID"
    stop_service "${!pid_var:-}" "edge $i" " edge "
done
stop_service "${CONTROL_PLANE_PID:-}" "control plane" " control-plane "
stop_service "${REDIS_PID:-}" redis-server redis-server
for i in 1 2 3; do
    pid_var="NATS${i}_PID"
    stop_service "${!pid_var:-}" "nats-server n$i" nats-server
done

# PostgreSQL: its postmaster.pid is the authority (it is rewritten on every start). SIGINT is its
# fast shutdown: the children exit with it.
postgres_pid="${POSTGRES_PID:-}"
if [ -n "${POSTGRES_DATA:-}" ] && [ -f "$POSTGRES_DATA/postmaster.pid" ]; then
    postgres_pid=$(head -n 1 "$POSTGRES_DATA/postmaster.pid")
fi
stop_service "$postgres_pid" PostgreSQL postgres INT

if [ "$failed" -ne 0 ]; then
    say "some processes refused to die (see above); $dir/cluster.env kept"
    exit 1
fi
rm -f "$dir/cluster.env" "$dir/cluster.env.partial"
say "stopped"
