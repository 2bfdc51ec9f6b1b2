#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on this machine, beside the main broker, for
# development and the cluster tests.
#
#   scripts/cluster.sh up            start 3 nodes and join them (idempotent)
#   scripts/cluster.sh status        one line per node: name, AMQP URL, running|stopped
#                                    (or paused, partitioned)
#   scripts/cluster.sh kill NODE     SIGKILL a node's VM (NODE: 1, 2, 3 or its name)
#   scripts/cluster.sh start NODE    start a stopped node again (it rejoins)
#   scripts/cluster.sh partition NODE  cut NODE's distribution traffic from the
#                                    other two (its Erlang cookie changed and its
#                                    links dropped: every reconnection fails its
#                                    handshake); pause_minority pauses it
#   scripts/cluster.sh heal NODE     restore its cookie and reconnect: it resumes
#   scripts/cluster.sh urls          the comma-separated AMQP_URL of the cluster
#   scripts/cluster.sh down          stop every node and delete the cluster's data
#
# Each node has its own name (greetings-c1@localhost ...), AMQP port
# (CLUSTER_BASE_PORT+1.., default 5681..5683), distribution port (AMQP port +
# 20000), data directory under CLUSTER_DIR (default /tmp/greetings-cluster)
# and a shared Erlang cookie of its own (in each node's HOME); partition
# handling is pause_minority. Needs root (or the RabbitMQ installation's
# owner) and the server scripts under /usr/lib/rabbitmq/bin; never touches
# the main broker (rabbit@localhost on 5672).
set -euo pipefail
PROG=cluster
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

SBIN=/usr/lib/rabbitmq/bin
DIR="${CLUSTER_DIR:-/tmp/greetings-cluster}"
BASE_PORT="${CLUSTER_BASE_PORT:-5680}"
NODES=(1 2 3)
BOOT_TIMEOUT=90
# The partitioned node's cookie: the CLI must present it to reach that node.
PARTITION_COOKIE=greetings-partitioned

[[ -x "$SBIN/rabbitmq-server" ]] || die "no $SBIN/rabbitmq-server: install the rabbitmq-server package"

name_of() { echo "greetings-c$1@localhost"; }
port_of() { echo $((BASE_PORT + $1)); }
url_of() { echo "amqp://guest:guest@127.0.0.1:$(port_of "$1")/%2f"; }

# index NODE: 1..3 from "2" or "greetings-c2@localhost".
index() {
  local arg="$1"
  for i in "${NODES[@]}"; do
    [[ "$arg" == "$i" || "$arg" == "$(name_of "$i")" || "$arg" == "greetings-c$i" ]] && { echo "$i"; return; }
  done
  die "unknown node '$arg': use 1, 2, 3 or a name from 'status'"
}

# on I CMD ARGS...: runs a RabbitMQ CLI tool as node I (its HOME holds the cookie).
on() {
  local i="$1" tool="$2"; shift 2
  local home="$DIR/c$i"
  HOME="$home" RABBITMQ_NODENAME="$(name_of "$i")" RABBITMQ_NODE_PORT="$(port_of "$i")" \
    RABBITMQ_DIST_PORT=$(($(port_of "$i") + 20000)) \
    RABBITMQ_MNESIA_BASE="$home/mnesia" RABBITMQ_LOG_BASE="$home/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$home/plugins" RABBITMQ_CONFIG_FILE="$home/rabbitmq.conf" \
    "$SBIN/$tool" "$@"
}

ctl() { local i="$1"; shift; on "$i" rabbitmqctl -n "$(name_of "$i")" "$@"; }

# running I: node I's VM answers and its RabbitMQ application runs (a paused
# node's does not).
running() { [[ "$(ctl "$1" -q eval 'rabbit:is_running().' 2>/dev/null)" == true ]]; }
alive() { ctl "$1" -q eval 'ok.' >/dev/null 2>&1; }

prepare() {
  local i="$1" home="$DIR/c$i"
  mkdir -p "$home/mnesia" "$home/log"
  [[ -f "$DIR/cookie" ]] || { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 >"$DIR/cookie"; }
  install -m 400 "$DIR/cookie" "$home/.erlang.cookie"
  echo '[].' >"$home/plugins"
  cat >"$home/rabbitmq.conf" <<EOF
listeners.tcp.default = $(port_of "$i")
loopback_users = none
cluster_partition_handling = pause_minority
log.console = false
log.file.level = info
EOF
}

start_node() {
  local i="$1"
  if alive "$i"; then return; fi
  prepare "$i"
  on "$i" rabbitmq-server -detached >/dev/null 2>&1 || die "rabbitmq-server -detached failed for $(name_of "$i")"
}

await_node() {
  local i="$1" t=$SECONDS
  while ! ctl "$i" -q await_startup >/dev/null 2>&1; do
    ((SECONDS - t < BOOT_TIMEOUT)) || die "$(name_of "$i") did not start within ${BOOT_TIMEOUT} s (logs: $DIR/c$i/log)"
    sleep 1
  done
}

joined() { ctl 1 -q cluster_status --formatter json 2>/dev/null | grep -q "$(name_of "$1")"; }

up() {
  mkdir -p "$DIR"
  local t=$SECONDS
  for i in "${NODES[@]}"; do start_node "$i"; done
  for i in "${NODES[@]}"; do await_node "$i"; done
  for i in 2 3; do
    joined "$i" && ctl 1 -q cluster_status --formatter json | grep -q "\"running_nodes\":\[[^]]*$(name_of "$i")" && continue
    {
      ctl "$i" -q stop_app
      ctl "$i" -q reset
      ctl "$i" -q join_cluster "$(name_of 1)"
      ctl "$i" -q start_app
    } >>"$DIR/cluster.log" 2>&1 || die "$(name_of "$i") could not join $(name_of 1) (see $DIR/cluster.log)"
    await_node "$i"
  done
  say "cluster up in $((SECONDS - t)) s"
  status
}

status() {
  for i in "${NODES[@]}"; do
    if running "$i"; then state=running
    elif ctl "$i" --erlang-cookie "$PARTITION_COOKIE" -q eval 'ok.' >/dev/null 2>&1; then state=partitioned
    elif alive "$i"; then state=paused
    else state=stopped; fi
    printf '%s %s %s\n' "$(name_of "$i")" "$(url_of "$i")" "$state"
  done
}

kill_node() {
  local i; i=$(index "$1")
  local pid
  pid=$(ctl "$i" -q eval 'os:getpid().' 2>/dev/null | tr -dc '0-9') || true
  [[ -n "$pid" ]] || die "$(name_of "$i") is not running"
  kill -9 "$pid"
  while alive "$i"; do sleep 0.2; done
  say "killed $(name_of "$i") (pid $pid)"
}

start_again() {
  local i; i=$(index "$1")
  start_node "$i"
  await_node "$i"
  say "started $(name_of "$i")"
}

partition() {
  local i; i=$(index "$1")
  ctl "$i" -q eval "erlang:set_cookie(node(), '$PARTITION_COOKIE'), [erlang:disconnect_node(N) || N <- nodes()], ok." >/dev/null \
    || die "cannot partition $(name_of "$i")"
  say "partitioned $(name_of "$i") from the other nodes"
}

heal() {
  local i; i=$(index "$1")
  local cookie; cookie=$(cat "$DIR/cookie")
  ctl "$i" --erlang-cookie "$PARTITION_COOKIE" -q eval \
    "erlang:set_cookie(node(), '$cookie'), [net_adm:ping(N) || N <- ['$(name_of 1)', '$(name_of 2)', '$(name_of 3)']], ok." >/dev/null \
    || die "cannot heal $(name_of "$i") (is it partitioned?)"
  say "healed $(name_of "$i")"
}

down() {
  for i in "${NODES[@]}"; do
    if alive "$i"; then
      pid=$(ctl "$i" -q eval 'os:getpid().' 2>/dev/null | tr -dc '0-9') || true
      ctl "$i" -q stop >/dev/null 2>&1 || { [[ -n "${pid:-}" ]] && kill -9 "$pid" 2>/dev/null; } || true
    fi
  done
  rm -rf "$DIR"
  say "cluster down, $DIR removed"
}

urls() { local out=(); for i in "${NODES[@]}"; do out+=("$(url_of "$i")"); done; (IFS=,; echo "${out[*]}"); }

case "${1:-}" in
  up) up ;;
  status) status ;;
  kill) [[ -n "${2:-}" ]] || die "usage: $0 kill NODE"; kill_node "$2" ;;
  start) [[ -n "${2:-}" ]] || die "usage: $0 start NODE"; start_again "$2" ;;
  urls) urls ;;
  partition) [[ -n "${2:-}" ]] || die "usage: $0 partition NODE"; partition "$2" ;;
  heal) [[ -n "${2:-}" ]] || die "usage: $0 heal NODE"; heal "$2" ;;
  down) down ;;
  *) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
