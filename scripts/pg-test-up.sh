#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 for the tests and exports its URL:
#
#     source scripts/pg-test-up.sh     # then: cargo nextest run -p stratus-control-plane
#
# STRATUS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:PORT/postgres is exported (trust
# authentication, loopback only, a free port, a unix socket in the temporary directory); tests create
# and drop their own databases on it. The server and its temporary directory are removed when the
# shell exits (registered with `stratus_on_exit` from lib-services.sh, so it composes with
# services-test-up.sh; call `stratus_pg_down` to stop it earlier). PostgreSQL refuses to run as
# root, so as root the server runs as the system user `stratus-pg` (created when missing).
# Installs Debian's postgresql-15 when its binaries are missing.

# shellcheck source=scripts/lib-services.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-services.sh"

stratus_pg_up() {
    local pg_bin=/usr/lib/postgresql/15/bin
    local run=()
    if [ ! -x "$pg_bin/pg_ctl" ]; then
        echo "pg-test-up: installing postgresql-15" >&2
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        "${sudo[@]}" apt-get update -q >&2 || return 1
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 >&2 || return 1
    fi
    STRATUS_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/stratus-pg.XXXXXX") || return 1
    if [ "$(id -u)" -eq 0 ]; then
        id -u stratus-pg >/dev/null 2>&1 \
            || useradd --system --no-create-home --shell /usr/sbin/nologin stratus-pg || return 1
        chown stratus-pg "$STRATUS_PG_DIR"
        run=(runuser -u stratus-pg --)
    fi
    mkdir -p "$STRATUS_PG_DIR/sock"
    [ "$(id -u)" -ne 0 ] || chown stratus-pg "$STRATUS_PG_DIR/sock"
    STRATUS_PG_RUN=("${run[@]}")
    "${run[@]}" "$pg_bin/initdb" -D "$STRATUS_PG_DIR/data" -U postgres --auth=trust -E UTF8 \
        --no-sync >"$STRATUS_PG_DIR/initdb.log" 2>&1 \
        || { cat "$STRATUS_PG_DIR/initdb.log" >&2; return 1; }
    local attempt port
    for attempt in 1 2 3; do
        port=$(stratus_free_port)
        if "${run[@]}" "$pg_bin/pg_ctl" -D "$STRATUS_PG_DIR/data" -l "$STRATUS_PG_DIR/server.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $STRATUS_PG_DIR/sock -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null; then
            export STRATUS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
            echo "pg-test-up: PostgreSQL on 127.0.0.1:$port (STRATUS_TEST_POSTGRES_URL exported)" >&2
            return 0
        fi
        echo "pg-test-up: start on port $port failed (attempt $attempt)" >&2
        tail -n 5 "$STRATUS_PG_DIR/server.log" >&2 || true
    done
    return 1
}

stratus_pg_down() {
    if [ -n "${STRATUS_PG_DIR:-}" ] && [ -d "$STRATUS_PG_DIR" ]; then
        "${STRATUS_PG_RUN[@]}" /usr/lib/postgresql/15/bin/pg_ctl -D "$STRATUS_PG_DIR/data" -m immediate \
            stop >/dev/null 2>&1 || true
        rm -rf "$STRATUS_PG_DIR"
    fi
    unset STRATUS_PG_DIR STRATUS_TEST_POSTGRES_URL
}

if ! stratus_pg_up; then
    echo "pg-test-up: could not start PostgreSQL" >&2
    stratus_pg_down
    return 1 2>/dev/null || exit 1
fi
stratus_on_exit stratus_pg_down
