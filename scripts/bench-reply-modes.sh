#!/usr/bin/env bash
# Both reply modes (rpc.reply_queue = direct | exclusive) side by side, on
# the machine's RabbitMQ 3.10 and on RabbitMQ 4.0.5 (scripts/rabbitmq4.sh,
# aged): the release producer against two release consumers (hello,
# goodbye), durable queues, persistent confirmed mandatory requests, prefetch
# 1, each mode run alternately. Three loads per broker and mode:
#   64 in flight  N names, one per request   (calls/s, p50/p99 from --json)
#   1 in flight   N/10 names                 (p50/p99 latency)
#   batch         N*10 names, --batch 100     (names/s)
# Prints one table row per run. Figures are for the tables in docs/brokers.md;
# targets live in the benchmark, never in tests.
#
#   scripts/bench-reply-modes.sh [N]     (default 20000)
set -euo pipefail
PROG=bench-reply-modes
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"
N=${1:-20000}
require_cargo
"$root/scripts/ensure-rabbitmq.sh"
cargo build --release --bins --quiet
bin="$(cargo_target_dir "$root")/release"
url4=$("$root/scripts/rabbitmq4.sh" up | tail -n 1)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$root/scripts/rabbitmq4.sh" down || true
}
trap cleanup EXIT

# run BROKER URL MODE LOAD ARGS... : one producer run, one row.
run() {
    local broker=$1 url=$2 mode=$3 load=$4 count=$5; shift 5
    local out t0 t1
    t0=$(date +%s.%N)
    out=$(seq 1 "$count" | AMQP_URL=$url GREETINGS_TOPOLOGY__PREFIX=$prefix \
        "$bin/producer" --json --reply-queue "$mode" --timeout 30s "$@" | tail -n 1)
    t1=$(date +%s.%N)
    python3 - "$broker" "$mode" "$load" "$count" "$t0" "$t1" "$out" <<'PY'
import json, sys
broker, mode, load, count, t0, t1, out = sys.argv[1:]
secs = float(t1) - float(t0)
summary = json.loads(out)["summary"]
lat = summary.get("latency_ms", {})
print(f"| {broker} | {mode} | {load} | {count} | {int(count) / secs:,.0f} names/s | "
      f"{lat.get('p50', '-')} | {lat.get('p99', '-')} | {summary.get('complete', '-')} |")
PY
}

echo "| broker | reply queue | load | names | throughput | p50 ms | p99 ms | complete |"
echo "|---|---|---|---|---|---|---|---|"
for target in "3.10.8 amqp://guest:guest@127.0.0.1:5672/%2f" "4.0.5 $url4"; do
    read -r broker url <<<"$target"
    prefix="bench.$(date +%s%N | tail -c 9)"
    for word in hello goodbye; do
        AMQP_URL=$url GREETINGS_TOPOLOGY__PREFIX=$prefix "$bin/consumer" "$word" >/dev/null 2>&1 &
        pids+=($!)
    done
    # Ready once a warm-up run's names are all answered (the consumers
    # declare their queues as they start).
    ready=""
    for _ in $(seq 60); do
        if run "$broker" "$url" exclusive warm-up 200 >/dev/null 2>&1; then ready=1; break; fi
        sleep 1
    done
    [[ -n "$ready" ]] || die "the consumers on $broker did not answer within 60 s"
    for mode in direct exclusive exclusive direct; do
        run "$broker" "$url" "$mode" "64 in flight" "$N"
    done
    for mode in direct exclusive exclusive direct; do
        run "$broker" "$url" "$mode" "1 in flight" $((N / 10)) --concurrency 1
    done
    for mode in direct exclusive exclusive direct; do
        run "$broker" "$url" "$mode" "batch 100" $((N * 10)) --batch 100
    done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
done
