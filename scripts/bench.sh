#!/usr/bin/env bash
# Benchmarks the system against the local broker: builds the release
# binaries, starts its own hello/goodbye consumers and the ceiling lane's echo
# responders, runs both lanes over a sweep of requests in flight, prints the
# table and writes the latency/throughput plot.
#
#   scripts/bench.sh                       # prefetch 1, plot to target/bench/latency.svg
#   scripts/bench.sh --prefetch 32         # any `bench` flag (see target/release/bench --help)
#
# Other modes: target/release/bench --spawn-consumers --sweep | --memory | --rate 2000 ...
set -euo pipefail
PROG=bench
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

require_cargo
"$root/scripts/ensure-rabbitmq.sh"
cargo build --release --bins --quiet
mkdir -p "$root/target/bench"
exec "$root/target/release/bench" --spawn-consumers --baseline \
    --plot "$root/target/bench/latency.svg" "$@"
