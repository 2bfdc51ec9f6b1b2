#!/usr/bin/env bash
# Benchmarks the system against the local broker in one command: builds the
# release binaries, installs the peer lanes (the Python seed design on
# aio-pika in .venv-bench, the ruststream-lapin peer in target/peer), then
# runs, each lane starting and stopping its own consumers or responders:
#
#   1. system vs ceiling (3 alternating pairs) and the peers, at 1 and at 64
#      requests in flight;
#   2. the batching lane: producer stdin names/s at --batch 1,10,100,1000,
#      one-name-in-flight latency at --batch 1 vs 100 (3 alternating pairs),
#      and memory over 1,000,000 names;
#   3. the latency/throughput sweep of the system and ceiling lanes;
#   4. the stock example (a second application of the library): 2 warehouses
#      in process, 20,000 calls with Until::All and 1,000 with Until::Live.
#
# Tables go to stdout and target/bench/report.txt, plots to target/bench/.
#
#   scripts/bench.sh                       # everything above (about 15 min on 2 cores)
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
mkdir -p "$root/target/bench"

if [[ $# -gt 0 ]]; then
    exec "$bench" --spawn-consumers "$@"
fi

ensure_bench_venv "$root/.venv-bench" "$root"
say "building the ruststream-lapin peer"
CARGO_TARGET_DIR="$root/target/peer" cargo build --release --quiet \
    --manifest-path "$root/bench/peers/ruststream/Cargo.toml"

report="$root/target/bench/report.txt"
{
    echo "# scripts/bench.sh on $(hostname) at $(date -u +%FT%TZ): $(nproc) cores, $(rabbitmqctl -q version 2>/dev/null || echo 'RabbitMQ ?')"
    echo
    echo "## 1. system, ceiling and peers at 1 request in flight"
    "$bench" --spawn-consumers --baseline --peers seed-py,ruststream -c 1 -n 5000 --warmup 500
    echo
    echo "## 1. system, ceiling and peers at 64 requests in flight"
    "$bench" --spawn-consumers --baseline --peers seed-py,ruststream -c 64 -n 20000
    echo
    echo "## 2. batching lane"
    "$bench" --spawn-consumers --batching --memory-names 1000000 \
        --batch-plot "$root/target/bench/batching.svg"
    echo
    echo "## 3. latency against throughput"
    "$bench" --spawn-consumers --baseline --plot "$root/target/bench/latency.svg"
    echo
    echo "## 4. stock example: in-process warehouses, Until::All and Until::Live"
    "$bench" stock
} 2>&1 | tee "$report"
say "report in $report; plots in $root/target/bench/"
