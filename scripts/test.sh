#!/usr/bin/env bash
# Runs every test against a real RabbitMQ: starts a local node first if none is
# reachable (see ensure-rabbitmq.sh), prepares the Python interop client's
# virtualenv, builds the binaries and runs the whole workspace's tests.
#
# Extra arguments go to `cargo test` before its `--` (e.g. scripts/test.sh --release).
set -euo pipefail
PROG="test"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

require_cargo
"$root/scripts/ensure-rabbitmq.sh"
ensure_python_venv "$root/.venv" "$root"
say "building the programs (the first build on a new machine takes a few minutes)"
cargo build --workspace --bins
say "running the tests"
cargo test --workspace "$@" -- --skip faults:: --skip soak:: --skip cluster::
# The fault-injection tests and the 100,000-request soak print their ledgers
# and figures; the soak runs alone, as beside the fault tests on 2 cores it
# would starve their timing bounds. Same `cargo test --workspace` selection
# as above (only the filter differs), so nothing is compiled again.
say "running the fault-injection tests (ledgers and figures below)"
cargo test --workspace "$@" -- faults:: --nocapture
say "running the soak test"
cargo test --workspace "$@" -- soak:: --nocapture
# The cluster tests on a 3-node cluster of private nodes (scripts/cluster.sh),
# removed afterwards, pass or fail.
say "running the cluster tests (3 private nodes; ledgers and figures below)"
"$root/scripts/cluster.sh" up
trap '"$root/scripts/cluster.sh" down || true' EXIT
cargo test --workspace "$@" -- cluster:: --nocapture --test-threads 1
"$root/scripts/cluster.sh" down
trap - EXIT
# The compose deployment on a real Docker engine (installed and started when
# missing), with the debug binaries built above.
say "running the compose test (docker-compose up, demo, scale, restart, down)"
COMPOSE_TEST_PROFILE=debug "$root/scripts/compose-test.sh"
