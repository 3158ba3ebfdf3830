#!/usr/bin/env bash
# Runs schemathesis against the control plane API of a fresh `stratus dev` (its own data
# directory and free loopback ports): every operation of /api/openapi.json with generated
# requests, all checks (no 5xx, responses match the schema, schema-valid requests accepted).
#
# Usage: scripts/api-schema-check.sh STRATUS_BINARY SCHEMATHESIS_BINARY
# Environment: SCHEMATHESIS_MAX_EXAMPLES (default 50).
set -euo pipefail
cd "$(dirname "$0")/.."
stratus="$1"
schemathesis="$2"
examples="${SCHEMATHESIS_MAX_EXAMPLES:-50}"

dir=$(mktemp -d "${TMPDIR:-/tmp}/stratus-api-check.XXXXXX")
pid=""
cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    [ -z "$pid" ] || wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$stratus" dev --data-dir "$dir/data" --mqtt-listen 127.0.0.1:0 --ws-listen off \
    --http-listen "127.0.0.1:$port" >"$dir/stratus.log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
    if python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
        "$base/healthz" 2>/dev/null; then
        break
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$dir/stratus.log" >&2; echo "error: stratus dev exited" >&2; exit 1; }
    sleep 0.2
done
[ -f "$dir/data/admin-token" ] || { cat "$dir/stratus.log" >&2; echo "error: stratus dev did not come up" >&2; exit 1; }
token=$(cat "$dir/data/admin-token")

"$schemathesis" --config-file scripts/schemathesis.toml run "$base/api/openapi.json" \
    --header "Authorization: Bearer $token" --checks all --max-examples "$examples" \
    --seed 1 --no-color
