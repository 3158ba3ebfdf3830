#!/usr/bin/env bash
# Fault tests of the clustered shape that are too slow or too disruptive for every CI run:
# each starts the services it breaks (its own NATS servers), on top of the shared ones that
# scripts/services-test-up.sh starts. CI (scripts/test.sh) already runs the NATS stop/continue
# (partition), takeover storm, edge kill -9 (wills; 200 persistent sessions under load), Redis
# restart and self-fencing tests; this script adds:
#   - kill -9 of one of three NATS servers under steady QoS 1 load (edge/tests/cluster_faults.rs)
# Prints each test's checker line (acknowledged / delivered / lost / duplicated).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/stratus-target}"

# shellcheck source=scripts/lib-services.sh
source scripts/lib-services.sh
stratus_require_nats_server
# shellcheck source=scripts/services-test-up.sh
source scripts/services-test-up.sh

log=$(mktemp)
status=0
cargo nextest run -p stratus-edge --test cluster_faults --run-ignored ignored-only --no-capture \
    >"$log" 2>&1 || status=$?
cat "$log"
echo
echo "checker results:"
grep -E "NATS node kill:" "$log" || echo "  (no checker line: the test did not get that far)"
rm -f "$log"
exit "$status"
