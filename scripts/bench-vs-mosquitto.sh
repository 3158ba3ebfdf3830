#!/usr/bin/env bash
# Stratus and Mosquitto 2.0 side by side on this machine, with `stratus bench` as the load
# generator: max throughput (p2p, fan-in, fan-out; QoS 0 and 1; 64 B and 1 KiB), latency at a
# fixed rate of half Mosquitto's maximum, broker RSS per idle connection (10k and ~19k
# connections, fresh brokers), and connect rate with many concurrent connectors.
#
# Each measurement alternates the two brokers over several rounds (the order flips every round)
# and the table shows medians over rounds. Brokers and generator share the machine; the table
# shows the generator's own CPU use so that a saturated generator is visible.
#
# Usage: scripts/bench-vs-mosquitto.sh [--quick] [--rounds N] [--latency-rounds N] [OUTPUT.md]
#   --quick     one round, short runs (about 2 minutes instead of 10-15)
#   --rounds N  rounds of the throughput and connection measurements (default 3)
#   --latency-rounds N  rounds of the fixed-rate latency measurements (default 9: a p99 on a
#               shared virtual machine moves several-fold between runs, see BENCHMARKS.md)
#   OUTPUT.md   where the markdown table goes (default bench-results.md); it is also printed. A
#               file holding the markers <!-- bench:begin --> and <!-- bench:end --> (as
#               BENCHMARKS.md does) keeps everything outside them: only the results are replaced.
# Environment: CARGO_TARGET_DIR (default /var/tmp/stratus-target), STRATUS_BENCH_KEEP=1 keeps the
# raw JSON results and logs (their directory is printed).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
rounds=3
latency_rounds=9
out=bench-results.md
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --rounds) rounds="$2"; shift ;;
        --latency-rounds) latency_rounds="$2"; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
        *) out="$1" ;;
    esac
    shift
done
if [ "$quick" = 1 ]; then
    rounds=1
    latency_rounds=1
    msg_flags=(--warmup 0.5 --duration 1.5 --drain 1)
    hold=1
else
    msg_flags=(--warmup 1 --duration 4 --drain 2)
    hold=3
fi
clients=8
conn_counts=(10000 19000)
connectors=200
source_ips=127.0.0.1-127.0.0.8

step() { printf '\n==> %s\n' "$*" >&2; }
# shellcheck source=scripts/lib-mosquitto.sh
source scripts/lib-mosquitto.sh

step "prerequisites"
stratus_mosquitto_require
command -v python3 >/dev/null || { echo "error: python3 is needed for the table" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/stratus-target}"
step "release build (target dir $CARGO_TARGET_DIR)"
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/stratus"

work="$(mktemp -d /tmp/stratus-bench.XXXXXX)"
mkdir -p "$work/results"
broker_pids=()
cleanup() {
    for pid in "${broker_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "${STRATUS_BENCH_KEEP:-0}" = 1 ]; then
        echo "raw results kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# Three free loopback ports (Stratus MQTT, Stratus HTTP, Mosquitto).
read -r s_port s_http m_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "error: nothing listens on port $1; see $work/*.log" >&2
    exit 1
}

stratus_pid=""
mosquitto_pid=""
start_stratus() {
    local extra=()
    # Newer builds also open a WebSocket listener by default; this comparison is MQTT over TCP.
    if "$bin" dev --help | grep -q -- '--ws-listen'; then extra+=(--ws-listen off); fi
    rm -rf "$work/stratus-data"
    STRATUS_LOG=warn "$bin" dev --data-dir "$work/stratus-data" --mqtt-listen "127.0.0.1:$s_port" \
        --http-listen "127.0.0.1:$s_http" "${extra[@]}" >>"$work/stratus.log" 2>&1 &
    stratus_pid=$!
    broker_pids+=("$stratus_pid")
    wait_port "$s_port"
}
start_mosquitto() {
    stratus_mosquitto_conf "$m_port" "$work/mosquitto.conf"
    /usr/sbin/mosquitto -c "$work/mosquitto.conf" >>"$work/mosquitto.log" 2>&1 &
    mosquitto_pid=$!
    broker_pids+=("$mosquitto_pid")
    wait_port "$m_port"
}
stop_brokers() {
    for pid in "$stratus_pid" "$mosquitto_pid"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    broker_pids=()
}

# bench NAME BROKER ROUND FLAGS...: one generator run, its JSON summary kept under results/.
bench() {
    local name=$1 broker=$2 round=$3 port pid
    shift 3
    if [ "$broker" = stratus ]; then port=$s_port pid=$stratus_pid; else port=$m_port pid=$mosquitto_pid; fi
    local file="$work/results/$name.$broker.$round.json"
    printf '    %-28s %-9s round %s\n' "$name" "$broker" "$round" >&2
    if ! "$bin" bench --url "mqtt://127.0.0.1:$port" --broker-pid "$pid" --json --quiet "$@" \
        >"$file" 2>>"$work/bench.log"; then
        echo "      failed: $(tail -n 1 "$work/bench.log")" >&2
        rm -f "$file"
    fi
}
# Brokers in the order of round $1: Stratus first in odd rounds, Mosquitto first in even ones.
order() { if [ $(($1 % 2)) = 1 ]; then echo stratus mosquitto; else echo mosquitto stratus; fi; }

started=$(date +%s)
step "throughput: p2p, fan-in, fan-out x QoS 0/1 x 64 B/1 KiB, $rounds round(s)"
start_stratus
start_mosquitto
for round in $(seq "$rounds"); do
    for scenario in p2p fan-in fan-out; do
        for qos in 0 1; do
            for size in 64 1024; do
                for broker in $(order "$round"); do
                    bench "tput.$scenario.q$qos.$size" "$broker" "$round" --scenario "$scenario" \
                        --clients "$clients" --qos "$qos" --size "$size" "${msg_flags[@]}"
                done
            done
        done
    done
done

for qos in 0 1; do
    rate=$(python3 - "$work/results" "$qos" <<'PY'
import glob, json, statistics, sys
runs = [json.load(open(f)) for f in glob.glob(f"{sys.argv[1]}/tput.p2p.q{sys.argv[2]}.64.mosquitto.*.json")]
rates = [r["received_per_sec"] for r in runs if r.get("received_per_sec")]
print(int(statistics.median(rates) / 2) if rates else 10000)
PY
)
    step "latency: p2p QoS $qos 64 B at $rate msg/s (half Mosquitto's maximum)"
    for round in $(seq "$latency_rounds"); do
        for broker in $(order "$round"); do
            bench "lat.p2p.q$qos.64" "$broker" "$round" --scenario p2p --clients "$clients" \
                --qos "$qos" --size 64 --rate "$rate" "${msg_flags[@]}"
        done
    done
done
stop_brokers

for n in "${conn_counts[@]}"; do
    step "idle connections: $n, fresh brokers, $connectors concurrent connectors"
    for round in $(seq "$rounds"); do
        for broker in $(order "$round"); do
            if [ "$broker" = stratus ]; then start_stratus; else start_mosquitto; fi
            sleep 0.5
            processes=1
            if [ "$n" -gt 15000 ]; then processes=2; fi
            bench "conns.$n" "$broker" "$round" --scenario conns --clients "$n" --duration "$hold" \
                --connectors "$connectors" --source-ips "$source_ips" --processes "$processes"
            stop_brokers
        done
    done
done
elapsed=$(( $(date +%s) - started ))

step "table"
python3 - "$work/results" "$out" "$rounds" "$quick" "$elapsed" "$bin" "$latency_rounds" <<'PY'
import glob, json, os, platform, statistics, subprocess, sys

results, out, rounds, quick, elapsed, binary, latency_rounds = sys.argv[1:8]
runs = {}
by_round = {}
for path in glob.glob(os.path.join(results, "*.json")):
    name, broker, round_, _ = os.path.basename(path).rsplit(".", 3)
    try:
        run = json.load(open(path))
    except (OSError, json.JSONDecodeError):
        continue
    runs.setdefault((name, broker), []).append(run)
    by_round[(name, broker, int(round_))] = run

def median(name, broker, field):
    values = [r[field] for r in runs.get((name, broker), []) if r.get(field) is not None]
    return statistics.median(values) if values else None

def fmt(value, digits=0):
    if value is None:
        return "n/a"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"

def ratio(s, m):
    return f"{s / m:.2f}" if s is not None and m not in (None, 0) else "n/a"

def pair(name, field, digits=0):
    return f"{fmt(median(name, 'stratus', field), digits)} / {fmt(median(name, 'mosquitto', field), digits)}"

rows = []
def row(label, name, field, digits=0, extra=True):
    s, m = median(name, "stratus", field), median(name, "mosquitto", field)
    cells = [label, fmt(s, digits), fmt(m, digits), ratio(s, m)]
    if extra:
        cells += [pair(name, "lost"), pair(name, "generator_cpu_percent"), pair(name, "broker_cpu_percent")]
    else:
        cells += ["", pair(name, "generator_cpu_percent"), pair(name, "broker_cpu_percent")]
    cells.append(pair(name, "machine_steal_percent", 1))
    rows.append("| " + " | ".join(cells) + " |")

for scenario in ["p2p", "fan-in", "fan-out"]:
    for qos in [0, 1]:
        for size in [64, 1024]:
            label = f"{scenario} QoS {qos} {size} B: msg/s received (higher is better)"
            row(label, f"tput.{scenario}.q{qos}.{size}", "received_per_sec")
for qos in [0, 1]:
    name = f"lat.p2p.q{qos}.64"
    rate = median(name, "mosquitto", "rate") or median(name, "stratus", "rate")
    for field, label in [("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")]:
        row(f"p2p QoS {qos} 64 B at {fmt(rate)} msg/s: latency {label} ms (lower is better)",
            name, field, 3)
for n in [10000, 19000]:
    row(f"RSS per idle connection at {n:,}: bytes (lower is better)",
        f"conns.{n}", "broker_rss_per_connection_bytes", extra=False)
    row(f"Idle connections held of {n:,} (higher is better)", f"conns.{n}", "held", extra=False)
row("Connect rate, 10,000 connections, 200 concurrent connectors: conn/s (higher is better)",
    "conns.10000", "connect_per_sec", extra=False)

def output(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""

rev = output(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
dirty = " (with uncommitted changes)" if output(["git", "status", "--porcelain"]) else ""
mosq = (output(["/usr/sbin/mosquitto", "-h"]).splitlines() or ["mosquitto"])[0]
cpu = "unknown"
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
kind = "QUICK SMOKE RUN (1 round, short runs): not for publication" if quick == "1" else f"{rounds} rounds"
text = f"""# Stratus vs Mosquitto ({kind})

- Stratus `{rev}`{dirty}, release build, `stratus dev` with defaults; {mosq}, `persistence false`,
  `max_inflight_messages 1024`, `max_queued_messages 10000` (Stratus's defaults), `set_tcp_nodelay true`.
- One machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}. Both brokers
  and the generator (`stratus bench`) share it; MQTT 3.1.1 over loopback TCP.
- Throughput: 8 publisher/subscriber pairs (p2p), 8 publishers to 1 subscriber (fan-in), 1 publisher
  to 8 subscribers (fan-out), as fast as the broker takes them; QoS 1 publishers keep 128 messages in flight.
  "Lost" counts messages sent (QoS 0) or acknowledged (QoS 1) that never reached a subscriber.
- Latency: p2p, 8 pairs, at half of Mosquitto's median p2p maximum measured earlier in this run,
  rounds: {latency_rounds} (each round's figures are listed below the table).
- Connections: fresh brokers, idle clients with one subscription each from 127.0.0.1-8; RSS is the
  broker's VmRSS growth divided by the connections opened.
- Medians over rounds; the brokers alternate, the order flipping every round. Total time {int(elapsed) // 60} min {int(elapsed) % 60} s.
- "Generator CPU" is the load generator's own CPU use while measuring (connections: while connecting),
  in % of one core; "Broker CPU" likewise for the broker. "Steal" is the share of the machine's CPU
  time the hypervisor gave to someone else during the measurement. Pairs are Stratus / Mosquitto.

| Measurement | Stratus | Mosquitto | Stratus / Mosquitto | Lost (S / M) | Generator CPU % (S / M) | Broker CPU % (S / M) | Steal % (S / M) |
|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n"

# Each latency round, so that the spread behind the medians is visible.
for qos in [0, 1]:
    name = f"lat.p2p.q{qos}.64"
    lines, lower = [], 0
    for r in range(1, int(latency_rounds) + 1):
        s, m = by_round.get((name, "stratus", r)), by_round.get((name, "mosquitto", r))
        if not s or not m:
            continue
        if s.get("p99_ms") is not None and m.get("p99_ms") is not None and s["p99_ms"] < m["p99_ms"]:
            lower += 1
        lines.append(f"| {r} | {fmt(s.get('p99_ms'), 3)} | {fmt(s.get('machine_steal_percent'), 1)} "
                     f"| {fmt(m.get('p99_ms'), 3)} | {fmt(m.get('machine_steal_percent'), 1)} |")
    if lines:
        text += f"""
p2p QoS {qos} latency per round: Stratus's p99 was the lower one in {lower} of {len(lines)} rounds.

| Round | Stratus p99 ms | Steal % | Mosquitto p99 ms | Steal % |
|---|---|---|---|---|
""" + "\n".join(lines) + "\n"

# What the measured broker CPU time implies per million messages at a cloud price.
price = float(os.environ.get("STRATUS_VCPU_HOUR_USD", "0.0425"))
cost_rows = []
for scenario in ["p2p", "fan-in", "fan-out"]:
    for qos in [0, 1]:
        for size in [64, 1024]:
            name = f"tput.{scenario}.q{qos}.{size}"
            cells = [f"{scenario} QoS {qos} {size} B"]
            for broker in ["stratus", "mosquitto"]:
                rate = median(name, broker, "received_per_sec")
                cpu = median(name, broker, "broker_cpu_percent")
                if rate and cpu:
                    seconds = cpu / 100 / rate * 1e6
                    cells += [f"{seconds:.2f}", f"${seconds / 3600 * price:.5f}"]
                else:
                    cells += ["n/a", "n/a"]
            cost_rows.append("| " + " | ".join(cells) + " |")
text += f"""
## Cost per million messages

Broker CPU time per million messages delivered (from the broker's CPU use and delivery rate in the
throughput runs above, the generator excluded) and what it costs at ${price} per vCPU-hour (an
on-demand c6i.large in us-east-1, $0.085/h for 2 vCPUs; set `STRATUS_VCPU_HOUR_USD` to change it).
AWS IoT Core charges $1.00 per million messages (up to 5 KB each, counted in and out).

| Throughput run | Stratus CPU s / M msgs | Stratus $ / M msgs | Mosquitto CPU s / M msgs | Mosquitto $ / M msgs |
|---|---|---|---|---|
""" + "\n".join(cost_rows) + "\n"
begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
try:
    previous = open(out).read()
except OSError:
    previous = ""
if begin in previous and end in previous:
    head, rest = previous.split(begin, 1)
    _, tail = rest.split(end, 1)
    text = head + begin + "\n" + text.replace("# Stratus vs Mosquitto", "### Stratus vs Mosquitto", 1) + end + tail
open(out, "w").write(text)
print(text)
PY
echo "written to $out" >&2
