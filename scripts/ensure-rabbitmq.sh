#!/usr/bin/env bash
# ensure-rabbitmq.sh — make sure a RabbitMQ broker answers AMQP at
# RABBITMQ_HOST:RABBITMQ_PORT, starting (and if necessary installing) a local
# node when it does not. Never stops, restarts or reconfigures a running broker.
#
# Environment:
#   RABBITMQ_HOST       host to check (default 127.0.0.1)
#   RABBITMQ_PORT       AMQP port to check (default 5672)
#   RABBITMQ_WAIT_SECS  how long to wait for a freshly started node (default 60)
#
# Any of rabbitmq-server's own variables (RABBITMQ_NODENAME, RABBITMQ_NODE_PORT,
# RABBITMQ_DIST_PORT, RABBITMQ_MNESIA_BASE, RABBITMQ_LOG_BASE,
# RABBITMQ_ENABLED_PLUGINS_FILE, HOME, ...) pass through unchanged to
# rabbitmq-server. When RABBITMQ_NODENAME is set, the node is started with
# /usr/lib/rabbitmq/bin/rabbitmq-server as the current user (a private node,
# e.g. for tests); otherwise the machine's main node is started with
# `rabbitmq-server -detached` (as root, or via `sudo -n`).
#
# Everything this script says goes to stderr, prefixed "ensure-rabbitmq:".
# Exit status: 0 if the broker is reachable at the end, 1 otherwise.

set -euo pipefail

readonly PROG="ensure-rabbitmq"
readonly LIBEXEC_SERVER="/usr/lib/rabbitmq/bin/rabbitmq-server"

HOST="${RABBITMQ_HOST:-127.0.0.1}"
PORT="${RABBITMQ_PORT:-5672}"
WAIT_SECS="${RABBITMQ_WAIT_SECS:-60}"

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit 1; }

if ! [[ "$PORT" =~ ^[0-9]{1,5}$ ]] || ((10#$PORT < 1 || 10#$PORT > 65535)); then
    die "RABBITMQ_PORT must be a TCP port number, got '$PORT'"
fi
if ! [[ "$WAIT_SECS" =~ ^[0-9]{1,6}$ ]]; then
    die "RABBITMQ_WAIT_SECS must be a whole number of seconds, got '$WAIT_SECS'"
fi
PORT=$((10#$PORT))
WAIT_SECS=$((10#$WAIT_SECS))

# Strip brackets from an IPv6 literal such as [::1].
HOST="${HOST#[}"
HOST="${HOST%]}"

# probe HOST PORT -> 0: answers AMQP; 1: no TCP connection; 2: TCP connection
# accepted but no AMQP reply (another service on that port, or a hung node).
# One connection: connect, send the AMQP 0-9-1 protocol header and read the
# first 3 bytes of the reply. A broker answers with a Connection.Start method
# frame (type 1 on channel 0: 01 00 00), or, if it disliked the header, with
# its own protocol header ("AMQ..."). Anything else (e.g. an HTTP error from a
# proxy) does not count as a broker.
probe() {
    local out
    # shellcheck disable=SC2016  # $1/$2 are expanded by the inner bash
    out=$(timeout 2 "${BASH:-bash}" -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        echo connected
        printf "AMQP\x00\x00\x09\x01" >&3 || exit 0
        head -c 3 <&3 | od -An -tx1 | tr -d " \n"
    ' probe "$1" "$2" 2>/dev/null) || true
    case "$out" in
        connected*010000 | connected*414d51) return 0 ;;
        connected*) return 2 ;;
        *) return 1 ;;
    esac
}

# Microseconds since the epoch (bash >= 5 has EPOCHREALTIME).
now_us() {
    if [[ -n "${EPOCHREALTIME:-}" ]]; then
        local t="${EPOCHREALTIME//[!0-9]/}"
        printf '%s\n' "$((10#$t))"
    else
        date +%s%6N
    fi
}

is_local() {
    case "$1" in
        localhost | ::1 | 127.*) return 0 ;;
        *) return 1 ;;
    esac
}

# ---------------------------------------------------------------- 1. check
rc=0
probe "$HOST" "$PORT" || rc=$?
case "$rc" in
    0)
        say "broker reachable at $HOST:$PORT (nothing started)"
        exit 0
        ;;
    2)
        die "something accepts TCP connections at $HOST:$PORT but does not answer the AMQP protocol header; not touching it (is it a RabbitMQ node that is still booting or hung, or another service on that port?)"
        ;;
esac

if ! is_local "$HOST"; then
    die "no AMQP broker reachable at $HOST:$PORT, and $HOST is not a local address, so nothing can be started from here; start RabbitMQ on $HOST or point RABBITMQ_HOST/RABBITMQ_PORT at a running broker"
fi

# A local broker may be listening on only one of IPv4/IPv6 loopback. Starting
# another node in that case would only collide with the running one.
for other in 127.0.0.1 ::1; do
    [[ "$other" == "$HOST" ]] && continue
    if probe "$other" "$PORT"; then
        die "a broker answers at $other:$PORT but not at $HOST:$PORT; not starting another node (set RABBITMQ_HOST=$other, or configure the running broker to listen on $HOST)"
    fi
done

say "no broker reachable at $HOST:$PORT; a local RabbitMQ node needs starting"

if [[ -n "${RABBITMQ_NODE_PORT:-}" && "$RABBITMQ_NODE_PORT" != "$PORT" ]]; then
    say "warning: RABBITMQ_NODE_PORT=$RABBITMQ_NODE_PORT differs from the port checked (RABBITMQ_PORT=$PORT); the wait below will probably time out"
elif [[ -z "${RABBITMQ_NODE_PORT:-}" && "$PORT" != 5672 ]]; then
    say "warning: checking port $PORT, but the node listens on 5672 unless RABBITMQ_NODE_PORT or its config says otherwise"
fi

# ---------------------------------------------------------- 2. install
is_root=false
[[ "$(id -u)" == 0 ]] && is_root=true

find_server() {
    command -v rabbitmq-server 2>/dev/null && return 0
    local p
    for p in /usr/sbin/rabbitmq-server "$LIBEXEC_SERVER"; do
        [[ -x "$p" ]] && { printf '%s\n' "$p"; return 0; }
    done
    return 1
}

if ! find_server >/dev/null; then
    if ! $is_root; then
        die "rabbitmq-server is not installed and this script is not running as root; install it with: sudo apt-get install rabbitmq-server (then re-run this script)"
    fi
    say "rabbitmq-server is not installed; installing it with apt-get (package rabbitmq-server)"
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rabbitmq-server >&2
    }
    if ! apt_install; then
        say "apt-get install failed; running apt-get update and retrying"
        apt-get update >&2 || die "apt-get update failed"
        apt_install || die "apt-get install rabbitmq-server failed"
    fi
    find_server >/dev/null || die "rabbitmq-server was installed but cannot be found (looked in PATH, /usr/sbin and /usr/lib/rabbitmq/bin)"
    say "installed rabbitmq-server"

    # The package's service may already have started the node.
    if probe "$HOST" "$PORT"; then
        say "broker reachable at $HOST:$PORT (started by the freshly installed package's service)"
        exit 0
    fi
fi

# ------------------------------------------------------------- 3. start
if [[ -n "${RABBITMQ_NODENAME:-}" ]]; then
    # Private node: run the real script as the current user so that HOME,
    # RABBITMQ_MNESIA_BASE etc. are honoured (the Debian wrapper in /usr/sbin
    # switches to the rabbitmq user).
    if [[ -x "$LIBEXEC_SERVER" ]]; then
        server="$LIBEXEC_SERVER"
    else
        server="$(find_server)"
    fi
    start_cmd=("$server" -detached)
    node_desc="node $RABBITMQ_NODENAME"
elif $is_root; then
    start_cmd=("$(find_server)" -detached)
    node_desc="the machine's main RabbitMQ node"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    start_cmd=(sudo -n rabbitmq-server -detached)
    node_desc="the machine's main RabbitMQ node (via sudo)"
else
    die "no broker at $HOST:$PORT and this script is not root and cannot use sudo without a password; start the broker yourself with: sudo rabbitmq-server -detached (or: sudo systemctl start rabbitmq-server)"
fi

log_dir="${RABBITMQ_LOG_BASE:-/var/log/rabbitmq}"
# A node that fails to boot (e.g. its port is taken) leaves an Erlang crash
# dump; noticing a new one lets us give up early with its reason.
crash_dump="${ERL_CRASH_DUMP:-$log_dir/erl_crash.dump}"
mtime() { stat -c %Y "$1" 2>/dev/null || echo 0; }
dump_mtime_before=$(mtime "$crash_dump")

say "starting $node_desc: ${start_cmd[*]}"
start_us=$(now_us)
if ! "${start_cmd[@]}" >&2; then
    die "'${start_cmd[*]}' failed; see the output above and the logs in $log_dir"
fi

# -------------------------------------------------------------- 4. wait
deadline_us=$((start_us + WAIT_SECS * 1000000))
while :; do
    if probe "$HOST" "$PORT"; then
        elapsed_us=$(($(now_us) - start_us))
        say "$(printf 'started a local RabbitMQ node; reachable at %s:%s after %d.%d s' \
            "$HOST" "$PORT" $((elapsed_us / 1000000)) $((elapsed_us % 1000000 / 100000)))"
        exit 0
    fi
    if [[ "$(mtime "$crash_dump")" != "$dump_mtime_before" ]]; then
        say "error: $node_desc failed to boot; it wrote $crash_dump"
        # The dump is still being written when it first appears.
        for _ in 1 2 3 4 5 6; do
            slogan=$(grep -m1 '^Slogan:' "$crash_dump" 2>/dev/null | cut -c1-400) || true
            [[ -n "$slogan" ]] && { say "  $slogan"; break; }
            sleep 0.5
        done
        say "its logs are in $log_dir"
        exit 1
    fi
    (($(now_us) >= deadline_us)) && break
    sleep 0.5
done

say "error: started $node_desc, but no AMQP broker answered at $HOST:$PORT within $WAIT_SECS s (RABBITMQ_WAIT_SECS)"
say "its logs are in $log_dir (e.g. $log_dir/${RABBITMQ_NODENAME:-<nodename>}.log; the Debian wrapper also writes $log_dir/startup_log and startup_err)"
say "the node may still be booting or may have failed; check with: rabbitmq-diagnostics${RABBITMQ_NODENAME:+ -n $RABBITMQ_NODENAME} status"
exit 1
