#!/usr/bin/env bash
# Benchmarks the system in one command: builds the release binaries,
# installs the peer lanes (the Python seed design on aio-pika in
# .venv-bench, the ruststream-lapin peer in target/peer), then runs, each
# lane starting and stopping its own consumers or responders:
#
#   1. per call on the machine's RabbitMQ 3.10, exclusive reply queues (the
#      default): system vs ceiling (3 alternating pairs), the ceiling with
#      unconfirmed requests, and the peers (seed-py, ruststream at its
#      defaults, ruststream-confirmed), at 1 and at 64 requests in flight;
#   2. the same system/ceiling pairs with direct reply-to on 3.10, then both
#      reply modes on RabbitMQ 4.0.5 (scripts/rabbitmq4.sh: a container,
#      aged), at 1 and at 64 in flight;
#   3. the batching lane on 3.10: producer stdin names/s at --batch
#      1,10,100,1000, one-name-in-flight latency at --batch 1 vs 100, and
#      1,000,000 names at --batch 1000 with the producer's and consumers'
#      memory;
#   4. latency against throughput, system and ceiling, one plot per reply
#      mode (3.10);
#   5. the stock example (the library's second application): 2 warehouses,
#      Until::All and Until::Live, at the same load as part 1.
#
# Every run also appends its results as JSON lines to target/bench/records/;
# scripts/bench-goals.py turns those into the tables of docs/performance.md
# and the issue's goals, met or not. The human tables go to stdout and
# target/bench/report.txt, the goals to target/bench/goals.md, the plots to
# target/bench/*.svg.
#
#   scripts/bench.sh                       # everything above (about 35 min on 2 cores)
#   scripts/bench.sh --batching            # one `bench` run with these flags instead
#                                          # (see target/release/bench --help)
#   scripts/bench.sh stock -n 2000         # only the stock lane (bench stock --help)
set -euo pipefail
PROG=bench
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

require_cargo
"$root/scripts/ensure-rabbitmq.sh"
cargo build --release --bins --quiet
bench="$(cargo_target_dir "$root")/release/bench"
out="$root/target/bench"
mkdir -p "$out"

if [[ $# -gt 0 ]]; then
    exec "$bench" --spawn-consumers "$@"
fi

ensure_bench_venv "$root/.venv-bench" "$root"
say "building the ruststream-lapin peer"
CARGO_TARGET_DIR="$root/target/peer" cargo build --release --quiet \
    --manifest-path "$root/bench/peers/ruststream/Cargo.toml"

records="$out/records"
rm -rf "$records"
mkdir -p "$records"
peers=seed-py,ruststream,ruststream-confirmed
url310="amqp://guest:guest@127.0.0.1:5672/%2f"

# run NAME ARGS...: one bench run against $AMQP_URL, its results recorded
# in records/NAME.jsonl.
run() {
    local name=$1
    shift
    echo
    echo "## $name"
    "$bench" --spawn-consumers --record "$records/$name.jsonl" "$@"
}

# per_call BROKER MODE [EXTRA...]: system/ceiling pairs at 1 and at 64 in flight.
per_call() {
    local broker=$1 mode=$2
    shift 2
    run "$broker-$mode-c1" --baseline --reply-queue "$mode" -c 1 -n 3000 --warmup 300 "$@"
    run "$broker-$mode-c64" --baseline --reply-queue "$mode" -c 64 -n 10000 --warmup 1000 "$@"
}

stop_rabbitmq4() { "$root/scripts/rabbitmq4.sh" down >/dev/null 2>&1 || true; }

started=$SECONDS
{
    echo "# scripts/bench.sh on $(hostname) at $(date -u +%FT%TZ): $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB," \
        "load average $(cut -d' ' -f1-3 /proc/loadavg), RabbitMQ $(rabbitmqctl -q version 2>/dev/null || echo '?') at 127.0.0.1:5672"
    export AMQP_URL=$url310
    echo
    echo "# 1. per call, RabbitMQ 3.10, exclusive reply queues, with the peers"
    per_call 3.10 exclusive --unconfirmed-ceiling --peers "$peers"
    echo
    echo "# 2. reply modes: direct on 3.10, both on 4.0.5"
    per_call 3.10 direct
    url4=$("$root/scripts/rabbitmq4.sh" up | tail -n 1)
    trap stop_rabbitmq4 EXIT
    # Two brokers run now: name the container's Erlang VM for its CPU time.
    for pid in $(pgrep -x beam.smp); do
        if grep -q docker "/proc/$pid/cgroup" 2>/dev/null; then export GREETINGS_BENCH_BROKER_PID=$pid; fi
    done
    AMQP_URL=$url4 per_call 4.0 exclusive
    AMQP_URL=$url4 per_call 4.0 direct
    stop_rabbitmq4
    unset GREETINGS_BENCH_BROKER_PID
    echo
    echo "# 3. batching lane, RabbitMQ 3.10"
    run batching --batching --memory-names 1000000 --memory-batch 1000 \
        --batch-plot "$out/batching.svg"
    echo
    echo "# 4. latency against throughput, RabbitMQ 3.10"
    for mode in exclusive direct; do
        run "latency-$mode" --baseline --reply-queue "$mode" -n 5000 --warmup 500 \
            --plot "$out/latency-$mode.svg"
    done
    echo
    echo "# 5. stock example: 2 in-process warehouses, Until::All and Until::Live"
    run stock stock -n 10000
    echo
    echo "(bench.sh took $((SECONDS - started)) s)"
} 2>&1 | tee "$out/report.txt"
python3 "$root/scripts/bench-goals.py" "$records" | tee "$out/goals.md"
say "report in $out/report.txt, goals in $out/goals.md, plots in $out/"
