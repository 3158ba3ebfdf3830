#!/usr/bin/env bash
# The clustered shape's throughput beside Mosquitto 2.0 on this machine: a local cluster from
# scripts/cluster-up.sh (3 NATS nodes with JetStream, R3 stream; Redis; PostgreSQL; the control
# plane; 3 edges, release build) and one Mosquitto, loaded in turn by `stratus bench`: p2p and
# fan-out at QoS 0 and 1, 64 B. Publishers connect to edge 1 and subscribers to edge 2, so every
# message crosses the backbone (QoS 0 on core NATS, QoS 1 through JetStream, acknowledged to the
# publisher after the stream stored it on a quorum of the three nodes).
#
# CPU: the summed CPU time of every process the cluster needs (3 edges, 3 NATS nodes, Redis)
# while the generator measures, read from /proc; for Mosquitto, its own. The generator runs on
# the same two cores.
#
# Usage: scripts/bench-cluster.sh [--quick] [--rounds N] [OUTPUT.md]
#   --quick     one round of short runs
#   OUTPUT.md   where the table goes (default cluster-bench-results.md); a file holding the
#               markers <!-- bench-cluster:begin --> and <!-- bench-cluster:end --> (as
#               BENCHMARKS.md does) keeps everything outside them.
# Environment: CARGO_TARGET_DIR (default /var/tmp/stratus-target); STRATUS_BENCH_KEEP=1 keeps the
# raw results, logs and the cluster directory (printed).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
rounds=2
out=cluster-bench-results.md
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --rounds) rounds="$2"; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
        *) out="$1" ;;
    esac
    shift
done
if [ "$quick" = 1 ]; then
    rounds=1
    warmup=0.5 duration=2 drain=1
else
    warmup=1 duration=5 drain=2
fi
clients=8
# Fixed rate of the latency runs: within what the cluster sustains at QoS 1 on this machine.
fixed_rate=10000
# Pause after a QoS 0 run at full rate, for what it left queued to drain.
settle=5

step() { printf '\n==> %s\n' "$*" >&2; }
# shellcheck source=scripts/lib-mosquitto.sh
source scripts/lib-mosquitto.sh

step "prerequisites"
stratus_mosquitto_require
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/stratus-target}"
step "release build (target dir $CARGO_TARGET_DIR)"
cargo build --release --quiet --bin stratus
bin="$CARGO_TARGET_DIR/release/stratus"

work="$(mktemp -d /var/tmp/stratus-cluster-bench.XXXXXX)"
# PostgreSQL runs as another user when this runs as root: it must reach the cluster directory.
chmod 755 "$work"
mkdir -p "$work/results"
mosquitto_pid=""
cleanup() {
    [ -z "$mosquitto_pid" ] || { kill "$mosquitto_pid" 2>/dev/null || true; wait "$mosquitto_pid" 2>/dev/null || true; }
    if [ -f "$work/cluster/cluster.env" ] || [ -f "$work/cluster/cluster.env.partial" ]; then
        scripts/cluster-down.sh --dir "$work/cluster" >/dev/null 2>&1 || true
    fi
    if [ "${STRATUS_BENCH_KEEP:-0}" = 1 ]; then
        echo "raw results kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# A free block of 18 loopback ports for the cluster, and one for Mosquitto.
read -r base m_port < <(python3 -c '
import socket
def free(n):
    for start in range(20000, 60000, 97):
        socks = []
        try:
            for p in range(start, start + n):
                s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
            return start
        except OSError:
            pass
        finally:
            for s in socks: s.close()
s = socket.socket(); s.bind(("127.0.0.1", 0))
print(free(18), s.getsockname()[1])')

step "cluster on 127.0.0.1:$base.. (logs in $work/cluster/logs)"
STRATUS_LOG=warn scripts/cluster-up.sh --base-port "$base" --dir "$work/cluster" --bin "$bin" >&2
# shellcheck disable=SC1091
source "$work/cluster/cluster.env"
cluster_pids=("$EDGE1_PID" "$EDGE2_PID" "$EDGE3_PID" "$NATS1_PID" "$NATS2_PID" "$NATS3_PID" "$REDIS_PID")

stratus_mosquitto_conf "$m_port" "$work/mosquitto.conf"
/usr/sbin/mosquitto -c "$work/mosquitto.conf" >>"$work/mosquitto.log" 2>&1 &
mosquitto_pid=$!
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$m_port") 2>/dev/null; then break; fi
    sleep 0.1
done

# CPU seconds (user + system) used so far by the given processes.
cpu_seconds() {
    python3 - "$@" <<'PY'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
total = 0
for pid in sys.argv[1:]:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    except OSError:
        pass
print(total / tick)
PY
}

# bench NAME BROKER ROUND FLAGS...: one generator run; its JSON summary and the CPU the broker's
# processes used during the measured window go under results/.
bench() {
    local name=$1 broker=$2 round=$3 pub_url sub_url pids
    shift 3
    if [ "$broker" = cluster ]; then
        pub_url="mqtt://127.0.0.1:$EDGE1_MQTT_PORT" sub_url="mqtt://127.0.0.1:$EDGE2_MQTT_PORT"
        pids=("${cluster_pids[@]}")
    else
        pub_url="mqtt://127.0.0.1:$m_port" sub_url="$pub_url"
        pids=("$mosquitto_pid")
    fi
    local file="$work/results/$name.$broker.$round"
    printf '    %-22s %-9s round %s\n' "$name" "$broker" "$round" >&2
    "$bin" bench --url "$pub_url" --sub-url "$sub_url" --json --quiet --warmup "$warmup" \
        --duration "$duration" --drain "$drain" "$@" >"$file.json" 2>>"$work/bench.log" &
    local gen=$!
    # The measured window starts after setup and warm-up: wait for the progress of setup to
    # end (connections are quick here), then sample over the middle of the window.
    sleep "$(python3 -c "print($warmup + 1.0)")"
    local before after
    before=$(cpu_seconds "${pids[@]}")
    sleep "$(python3 -c "print(max($duration - 1.5, 0.5))")"
    after=$(cpu_seconds "${pids[@]}")
    local window
    window=$(python3 -c "print(max($duration - 1.5, 0.5))")
    if wait "$gen"; then
        python3 - "$file.json" "$before" "$after" "$window" <<'PY'
import json, sys
path, before, after, window = sys.argv[1], *map(float, sys.argv[2:])
summary = json.load(open(path))
summary["cluster_cpu_percent"] = (after - before) / window * 100
json.dump(summary, open(path, "w"))
PY
    else
        echo "      failed: $(tail -n 1 "$work/bench.log")" >&2
        rm -f "$file.json"
    fi
}
order() { if [ $(($1 % 2)) = 1 ]; then echo cluster mosquitto; else echo mosquitto cluster; fi; }

started=$(date +%s)
# QoS 1 first: QoS 0 at full rate overloads the cluster's path (see the notes under the table),
# and what it left queued must not slow the next run, so every QoS 0 run is followed by a pause.
for round in $(seq "$rounds"); do
    for qos in 1 0; do
        for scenario in p2p fan-out; do
            step "round $round: $scenario QoS $qos 64 B"
            for broker in $(order "$round"); do
                bench "$scenario.q$qos" "$broker" "$round" --scenario "$scenario" \
                    --clients "$clients" --qos "$qos" --size 64
                if [ "$qos" = 0 ]; then sleep "$settle"; fi
            done
        done
    done
    step "round $round: p2p QoS 1 64 B at $fixed_rate msg/s"
    for broker in $(order "$round"); do
        bench "lat.p2p.q1" "$broker" "$round" --scenario p2p --clients "$clients" --qos 1 \
            --size 64 --rate "$fixed_rate"
    done
done
elapsed=$(( $(date +%s) - started ))

step "table"
python3 - "$work/results" "$out" "$rounds" "$quick" "$elapsed" "$fixed_rate" <<'PY'
import glob, json, os, statistics, subprocess, sys

results, out, rounds, quick, elapsed = sys.argv[1:6]
fixed_rate = int(sys.argv[6])
runs = {}
for path in glob.glob(os.path.join(results, "*.json")):
    name, broker, _round, _ = os.path.basename(path).rsplit(".", 3)
    try:
        runs.setdefault((name, broker), []).append(json.load(open(path)))
    except (OSError, json.JSONDecodeError):
        pass

def median(name, broker, field):
    values = [r[field] for r in runs.get((name, broker), []) if r.get(field) is not None]
    return statistics.median(values) if values else None

def fmt(v, digits=0):
    return "n/a" if v is None else f"{v:,.{digits}f}"

price = float(os.environ.get("STRATUS_VCPU_HOUR_USD", "0.0425"))
rows = []
for scenario, qos, name in [("p2p", 1, "p2p.q1"), ("fan-out", 1, "fan-out.q1"),
                            ("p2p", 0, "p2p.q0"), ("fan-out", 0, "fan-out.q0"),
                            ("p2p", 1, "lat.p2p.q1")]:
    c, m = median(name, "cluster", "received_per_sec"), median(name, "mosquitto", "received_per_sec")
    ratio = f"{c / m:.2f}" if c and m else "n/a"
    label = f"{scenario} QoS {qos} 64 B" + (" at a fixed rate" if name.startswith("lat.") else ", full rate")
    cells = [label, fmt(c), fmt(m), ratio,
             f"{fmt(median(name, 'cluster', 'lost'))} / {fmt(median(name, 'mosquitto', 'lost'))}",
             f"{fmt(median(name, 'cluster', 'p50_ms'), 1)} / {fmt(median(name, 'cluster', 'p99_ms'), 1)}",
             f"{fmt(median(name, 'mosquitto', 'p50_ms'), 1)} / {fmt(median(name, 'mosquitto', 'p99_ms'), 1)}",
             f"{fmt(median(name, 'cluster', 'cluster_cpu_percent'))} / {fmt(median(name, 'mosquitto', 'cluster_cpu_percent'))}"]
    for broker, rate in [("cluster", c), ("mosquitto", m)]:
        cpu = median(name, broker, "cluster_cpu_percent")
        if rate and cpu:
            seconds = cpu / 100 / rate * 1e6
            cells.append(f"{seconds:.1f} s, ${seconds / 3600 * price:.4f}")
        else:
            cells.append("n/a")
    rows.append("| " + " | ".join(cells) + " |")

def output(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""
rev = output(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
dirty = " (with uncommitted changes)" if output(["git", "status", "--porcelain"]) else ""
kind = "QUICK RUN (1 round, short runs)" if quick == "1" else f"{rounds} rounds"
text = f"""### Clustered shape vs Mosquitto ({kind})

- Stratus `{rev}`{dirty}, release build, `scripts/cluster-up.sh`: 3 NATS 2.15 nodes (JetStream,
  stream with 3 replicas), Redis, PostgreSQL, the control plane and 3 edges, all on this machine's
  {os.cpu_count()} cores with the generator; Mosquitto as in the table above. MQTT 3.1.1, 8
  publisher/subscriber pairs (p2p) or 1 publisher to 8 subscribers (fan-out), as fast as the broker
  takes them (QoS 1 publishers keep 128 messages in flight), and p2p QoS 1 at a fixed {fixed_rate:,} msg/s
  in total for latency.
- Publishers connect to edge 1, subscribers to edge 2: every message crosses NATS (QoS 0 on core
  NATS; QoS 1 through the JetStream stream, acknowledged to the publisher once stored on a quorum).
- CPU is that of every process the broker needs while the generator measures (cluster: 3 edges,
  3 NATS nodes, Redis), in % of one core; CPU time per million messages delivered at
  ${price} per vCPU-hour. Medians over rounds, the order flipping every round; total {int(elapsed) // 60} min {int(elapsed) % 60} s.

| Measurement | Cluster msg/s received | Mosquitto msg/s received | Cluster / Mosquitto | Lost (C / M) | Cluster latency p50 / p99 ms | Mosquitto latency p50 / p99 ms | CPU % (C / M) | Cluster CPU per M msgs | Mosquitto CPU per M msgs |
|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n"
begin, end = "<!-- bench-cluster:begin -->", "<!-- bench-cluster:end -->"
try:
    previous = open(out).read()
except OSError:
    previous = ""
if begin in previous and end in previous:
    head, rest = previous.split(begin, 1)
    _, tail = rest.split(end, 1)
    text = head + begin + "\n" + text + end + tail
open(out, "w").write(text)
print(text)
PY
echo "written to $out" >&2
