#!/usr/bin/env bash
# Runs the whole system once: a `hello` and a `goodbye` consumer, then the
# producer for the given names (default: Ada), then stops the consumers.
#
#   scripts/run.sh            -> hello Ada / goodbye Ada
#   scripts/run.sh Ada Bob    -> hello Ada / goodbye Ada / hello Bob / goodbye Bob
#
# Consumer logs go to target/run/<word>.log. Exits with the producer's code.
set -euo pipefail
PROG=run
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
cd "$root"

require_cargo
"$root/scripts/ensure-rabbitmq.sh"
bin="$(cargo_target_dir "$root")/debug"
# Only the two programs this runs, not the whole workspace.
if [[ -x "$bin/producer" && -x "$bin/consumer" ]]; then
    say "building the programs (only what changed since the last build)"
else
    say "building the programs for the first time: this takes a few minutes"
fi
cargo build --bins -p greetings-producer -p greetings-consumer
logs="$root/target/run"
mkdir -p "$logs"

pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
stop_consumers() {
    ((${#pids[@]})) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop_consumers EXIT

for word in hello goodbye; do
    "$bin/consumer" "$word" >"$logs/$word.out" 2>"$logs/$word.log" &
    pids+=("$!")
done
# Wait (bounded) for both to log that they are consuming.
for word in hello goodbye; do
    for _ in $(seq 1 100); do
        grep -q ' consuming ' "$logs/$word.log" 2>/dev/null && break
        if ! kill -0 "${pids[0]}" "${pids[1]}" 2>/dev/null; then
            cat "$logs/$word.log" >&2
            die "consumer $word exited; its log is above"
        fi
        sleep 0.1
    done
    grep -q ' consuming ' "$logs/$word.log" || die "consumer $word did not start within 10 s (log: $logs/$word.log)"
done

if (($# == 0)); then set -- Ada; fi
status=0
"$bin/producer" "$@" || status=$?
exit "$status"
