#!/usr/bin/env bash
# Runs every test against a real RabbitMQ, in phases: starts a local node
# first if none is reachable (see ensure-rabbitmq.sh) and prepares the Python
# interop client's virtualenv; builds the binaries; runs the default test
# targets (`cargo test --workspace`: the broker-only suite, the link check,
# the crates' own tests), the Python interop suite (`--test interop`) and the
# private-node suite (`--test nodes`) on the machine's RabbitMQ 3.10; the
# default targets and the interop suite again on RabbitMQ 4.0.5 in a
# container (Docker installed and started when missing, as root; see
# rabbitmq4.sh); then the fault-injection, soak and cluster suites (each a
# test target of its own) and the compose deployment (compose-test.sh, Docker).
#
# Every phase runs even when an earlier one failed (a phase that cannot run
# without one that failed is skipped, and says so). At the end, a summary
# lists every phase as passed, failed or skipped and why, with the command to
# rerun each failed one; the exit status is 1 when any phase failed or was
# skipped, 0 when all passed.
#
# Extra arguments go to every `cargo test` before its `--` (e.g.
# scripts/test.sh --release).
set -uo pipefail
PROG="test"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

require_cargo

cargo_args=("$@")
# "$@" as it would be typed again, for the rerun hints.
extra=""
if ((${#cargo_args[@]})); then
    extra=" $(printf '%q ' "${cargo_args[@]}")"
    extra=${extra% }
fi

names=()
results=()
reasons=()
hints=()
times=()

# record NAME RESULT WHY HINT SECONDS
record() {
    names+=("$1")
    results+=("$2")
    reasons+=("$3")
    hints+=("$4")
    times+=("$5")
}

# phase NAME HINT CMD...: runs CMD as phase NAME; HINT is how to rerun it by
# hand (with any precondition). Returns CMD's status.
phase() {
    local name=$1 hint=$2 t0=$SECONDS status
    shift 2
    say "phase $name: $hint"
    "$@"
    status=$?
    if ((status == 0)); then
        record "$name" passed "" "$hint" $((SECONDS - t0))
    else
        record "$name" failed "exit status $status" "$hint" $((SECONDS - t0))
        say "phase $name FAILED (exit status $status); rerun it with: $hint"
    fi
    return "$status"
}

# skip NAME WHY HINT
skip() {
    record "$1" skipped "$2" "$3" 0
    say "phase $1 skipped: $2"
}

summary() {
    local i failed=0 skipped=0
    printf '\n%s\n' "test: summary of every phase" >&2
    for i in "${!names[@]}"; do
        case ${results[i]} in
            passed) printf '  %-10s passed   (%d s)\n' "${names[i]}" "${times[i]}" >&2 ;;
            failed)
                failed=$((failed + 1))
                printf '  %-10s FAILED   (%d s, %s)\n             rerun: %s\n' \
                    "${names[i]}" "${times[i]}" "${reasons[i]}" "${hints[i]}" >&2
                ;;
            skipped)
                skipped=$((skipped + 1))
                printf '  %-10s skipped  (%s)\n             run: %s\n' \
                    "${names[i]}" "${reasons[i]}" "${hints[i]}" >&2
                ;;
        esac
    done
    if ((failed + skipped == 0)); then
        say "every phase passed"
        return 0
    fi
    say "$failed phase(s) failed, $skipped skipped"
    return 1
}

test_cmd="cargo test --workspace$extra"
nodes_cmd="cargo test -p greetings-tests --test nodes$extra"
interop_cmd="cargo test -p greetings-tests --test interop$extra"

# Setup: a broker to test against, and pika for the interop tests.
broker_ok=1
phase setup "scripts/ensure-rabbitmq.sh (and the .venv with pika: scripts/test.sh makes it)" \
    bash -c '"$1/scripts/ensure-rabbitmq.sh" && . "$1/scripts/lib.sh" && PROG=test ensure_python_venv "$1/.venv" "$1"' \
    _ "$root" || broker_ok=0

build_ok=1
phase build "cargo build --workspace --bins" cargo build --workspace --bins || build_ok=0

no_build="the build failed"
no_broker="no broker: the setup phase failed"

# The default targets, then the private-node suite, on the machine's 3.10.
if ((!build_ok)); then
    skip tests-3.10 "$no_build" "$test_cmd"
    skip interop "$no_build" "$interop_cmd"
    skip nodes "$no_build" "$nodes_cmd (as root)"
elif ((!broker_ok)); then
    skip tests-3.10 "$no_broker" "scripts/ensure-rabbitmq.sh, then $test_cmd"
    skip interop "$no_broker" "scripts/ensure-rabbitmq.sh and the .venv, then $interop_cmd"
    skip nodes "$no_broker" "scripts/ensure-rabbitmq.sh, then $nodes_cmd (as root)"
else
    phase tests-3.10 "$test_cmd" cargo test --workspace "${cargo_args[@]}"
    # Python clients (pika, from the setup's .venv).
    phase interop "$interop_cmd" \
        cargo test -p greetings-tests --test interop "${cargo_args[@]}"
    # Private nodes of their own (root and rabbitmq-server's scripts): deadlines,
    # privileges, quorum, shutdown, TLS, sizes, the node self-test and
    # /readyz across a broker stop. The host runs only 3.10 nodes (docs/brokers.md,
    # Supported brokers), so this suite does not run on 4.0.5.
    phase nodes "$nodes_cmd (as root)" \
        cargo test -p greetings-tests --test nodes "${cargo_args[@]}"
fi

# The default targets on RabbitMQ 4.0.5 (scripts/rabbitmq4.sh: Debian 13's
# package in the stand-in container, every deprecated feature denied, its
# process counter aged past 2^15 first, so uptime bugs show here).
rabbitmq4_tests() {
    local url status
    url=$("$root/scripts/rabbitmq4.sh" up | tail -n 1) || {
        say "scripts/rabbitmq4.sh up failed"
        "$root/scripts/rabbitmq4.sh" down || true
        return 1
    }
    AMQP_URL="$url" TEST_RABBITMQCTL="docker exec greetings-test-rabbitmq4 rabbitmqctl" \
        cargo test --workspace "${cargo_args[@]}"
    status=$?
    AMQP_URL="$url" TEST_RABBITMQCTL="docker exec greetings-test-rabbitmq4 rabbitmqctl" \
        cargo test -p greetings-tests --test interop "${cargo_args[@]}" || status=$?
    "$root/scripts/rabbitmq4.sh" down || true
    return "$status"
}
rabbitmq4_hint="scripts/rabbitmq4.sh up, then AMQP_URL=\$(scripts/rabbitmq4.sh url) \
TEST_RABBITMQCTL='docker exec greetings-test-rabbitmq4 rabbitmqctl' $test_cmd \
(and the same for $interop_cmd); scripts/rabbitmq4.sh down"
if ((build_ok)); then
    phase tests-4.0 "$rabbitmq4_hint" rabbitmq4_tests
else
    skip tests-4.0 "$no_build" "$rabbitmq4_hint"
fi

# The fault-injection tests and the 100,000-request soak print their ledgers
# and figures; the soak runs alone, as beside the fault tests on 2 cores it
# would starve their timing bounds.
faults_cmd="cargo test -p greetings-tests --test faults$extra -- --nocapture"
soak_cmd="cargo test -p greetings-tests --test soak$extra -- --nocapture"
if ((!build_ok)); then
    skip faults "$no_build" "$faults_cmd (as root)"
    skip soak "$no_build" "$soak_cmd"
elif ((!broker_ok)); then
    skip faults "$no_broker" "scripts/ensure-rabbitmq.sh, then $faults_cmd (as root)"
    skip soak "$no_broker" "scripts/ensure-rabbitmq.sh, then $soak_cmd"
else
    phase faults "$faults_cmd (as root)" \
        cargo test -p greetings-tests --test faults "${cargo_args[@]}" -- --nocapture
    phase soak "$soak_cmd" \
        cargo test -p greetings-tests --test soak "${cargo_args[@]}" -- --nocapture
fi

# The cluster tests on a 3-node cluster of private nodes (scripts/cluster.sh),
# removed afterwards, pass or fail.
cluster_tests() {
    local status
    "$root/scripts/cluster.sh" up || {
        say "scripts/cluster.sh up failed"
        "$root/scripts/cluster.sh" down || true
        return 1
    }
    cargo test -p greetings-tests --test cluster "${cargo_args[@]}" -- --nocapture --test-threads 1
    status=$?
    "$root/scripts/cluster.sh" down || true
    return "$status"
}
cluster_hint="scripts/cluster.sh up, then cargo test -p greetings-tests --test cluster$extra \
-- --nocapture --test-threads 1; scripts/cluster.sh down"
if ((build_ok)); then
    phase cluster "$cluster_hint" cluster_tests
else
    skip cluster "$no_build" "$cluster_hint"
fi

# The compose deployment on a real Docker engine (installed and started when
# missing), with the debug binaries built above.
compose_hint="COMPOSE_TEST_PROFILE=debug scripts/compose-test.sh (after cargo build --workspace --bins)"
if ((build_ok)); then
    phase compose "$compose_hint" env COMPOSE_TEST_PROFILE=debug "$root/scripts/compose-test.sh"
else
    skip compose "$no_build" "$compose_hint"
fi

summary
