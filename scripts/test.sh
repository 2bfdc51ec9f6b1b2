#!/usr/bin/env bash
# Runs every test against a real RabbitMQ: starts a local node first if none is
# reachable (see ensure-rabbitmq.sh), prepares the Python interop client's
# virtualenv, builds the binaries and runs the whole workspace's tests, on the
# machine's RabbitMQ 3.10 and again on RabbitMQ 4.0.5 in a container (Docker
# installed and started when missing, as root; see rabbitmq4.sh).
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
say "running the tests (RabbitMQ 3.10, the machine's broker)"
cargo test --workspace "$@" -- --skip faults:: --skip soak:: --skip cluster::
# The same suite on RabbitMQ 4.0.5 (scripts/rabbitmq4.sh: Debian 13's package
# in the stand-in container, every deprecated feature denied, its process
# counter aged past 2^15 first, so uptime bugs show here). Tests that boot
# private nodes of their own (fault injection, soak, cluster, deadlines,
# privileges, quorum, shutdown, TLS, the node self-test, /readyz across a stop)
# stay on 3.10: the host can run only 3.10 nodes (README, Supported brokers).
say "running the tests again on RabbitMQ 4.0.5 (aged, deprecated features denied)"
rabbitmq4_url=$("$root/scripts/rabbitmq4.sh" up | tail -n 1)
trap '"$root/scripts/rabbitmq4.sh" down || true' EXIT
AMQP_URL="$rabbitmq4_url" TEST_RABBITMQCTL="docker exec greetings-test-rabbitmq4 rabbitmqctl" \
    cargo test --workspace "$@" -- \
    --skip faults:: --skip soak:: --skip cluster:: --skip deadlines:: --skip privileges:: \
    --skip quorum:: --skip shutdown:: --skip tls:: --skip node_selftest:: --skip sizes:: \
    --skip operate::readyz_turns_503_when_the_broker_stops_and_200_when_it_is_back
"$root/scripts/rabbitmq4.sh" down
trap - EXIT
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
