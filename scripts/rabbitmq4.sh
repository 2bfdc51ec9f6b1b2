#!/usr/bin/env bash
# The RabbitMQ 4.x broker the integration suite also runs against: RabbitMQ
# 4.0.5 from Debian 13 (the stand-in image scripts/docker-images.sh builds),
# in a container named greetings-test-rabbitmq4, its AMQP port published on
# 127.0.0.1 only, every deprecated feature denied (rabbitmq/strict-4.conf).
#
#   scripts/rabbitmq4.sh up     start it (replacing an old one), wait until it
#                               answers, age its process counter, print its URL
#   scripts/rabbitmq4.sh url    print amqp://guest:guest@127.0.0.1:<port>/%2f
#   scripts/rabbitmq4.sh age N  spawn N short-lived Erlang processes on it
#   scripts/rabbitmq4.sh down   remove it
#
# Ageing: on Erlang/OTP 26 and newer a pid's number keeps growing past 2^15
# (OTP 25 wrapped it), so a broker that has been up a while issues direct
# reply-to tokens a fresh one never does. `up` spawns 40,000 processes
# before the suite runs (RABBITMQ4_AGE overrides), so uptime bugs show up in
# the tests instead of hours into production.
#
# Environment: RABBITMQ4_PORT (default 5688), RABBITMQ4_AGE (default 40000),
# RABBITMQ4_NAME (the container's name, default greetings-test-rabbitmq4: a
# second name and port give a broker of one's own beside a running suite).
set -euo pipefail
PROG=rabbitmq4
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

NAME=${RABBITMQ4_NAME:-greetings-test-rabbitmq4}
IMAGE=${RABBITMQ_IMAGE:-greetings-rabbitmq:4.0.5}
PORT=${RABBITMQ4_PORT:-5688}
AGE=${RABBITMQ4_AGE:-40000}
CONF_DIR=/var/tmp/$NAME

url() { printf 'amqp://guest:guest@127.0.0.1:%s/%%2f\n' "$PORT"; }

ctl() { docker exec "$NAME" rabbitmqctl "$@"; }

# The highest pid number the node has handed out, as <0.N.S>: N past 32767
# shows an aged counter on OTP 26+.
newest_pid() { ctl -q eval 'pid_to_list(spawn(fun() -> ok end)).' | tr -d '"'; }

age() {
    local n=$1
    ctl -q eval "lists:foreach(fun(_) -> spawn(fun() -> ok end) end, lists:seq(1, $n)), ok." >/dev/null
    say "spawned $n processes on the node; a new pid is now $(newest_pid)"
}

up() {
    "$root/scripts/docker-images.sh" >&2
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    # A copy the broker's user can read, whatever the checkout's permissions.
    mkdir -p "$CONF_DIR"
    install -m 0644 "$root/rabbitmq/strict-4.conf" "$CONF_DIR/90-strict.conf"
    docker run -d --rm --name "$NAME" -p "127.0.0.1:$PORT:5672" \
        -v "$CONF_DIR/90-strict.conf:/etc/rabbitmq/conf.d/90-strict.conf:ro" \
        "$IMAGE" >/dev/null
    local t0=$SECONDS
    until docker exec "$NAME" rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; do
        ((SECONDS - t0 < 90)) || { docker logs --tail 40 "$NAME" >&2; die "RabbitMQ 4 did not answer within 90 s"; }
        docker inspect "$NAME" >/dev/null 2>&1 || die "the RabbitMQ 4 container exited; see above"
        sleep 1
    done
    say "RabbitMQ $(ctl -q eval 'rabbit_misc:version().' | tr -d '"') on Erlang/OTP $(ctl -q eval 'erlang:system_info(otp_release).' | tr -d '"') up in $((SECONDS - t0)) s at $(url)"
    local feature
    for feature in amqp_address_v1 global_qos queue_master_locator ram_node_type transient_nonexcl_queues; do
        grep -qx false <<<"$(ctl -q eval "rabbit_deprecated_features:is_permitted($feature)." 2>/dev/null)" \
            || die "deprecated feature $feature is not denied (rabbitmq/strict-4.conf not applied?)"
    done
    say "deprecated features denied: amqp_address_v1 global_qos queue_master_locator ram_node_type transient_nonexcl_queues"
    age "$AGE"
    url
}

case "${1:-}" in
    up) up ;;
    url) url ;;
    age) age "${2:?age needs a number of processes}" ;;
    down) docker rm -f "$NAME" >/dev/null 2>&1 || true; say "removed $NAME" ;;
    *) die "usage: $0 up|url|age N|down" ;;
esac
