#!/usr/bin/env bash
# The compose deployment, for real, as root: Docker engine and stand-in images (docker-images.sh),
# binaries built on the host (cargo cannot fetch crates inside a container here), then on a fresh
# copy of HEAD (`git archive`, no secret present) with a unique project name and free host ports:
# up --build and the demo; run --rm producer; --scale hello=3 with 300 names; restart rabbitmq and
# time the recovery; down -v and check nothing of the project remains; each service holds only its
# own password. Then with Compose v2 (`docker compose`) and docker-compose.tls.yml: a TLS-only
# broker, the demo over amqps://, the plain AMQP port refusing. Prints every figure.
# Talks to the stack only through `docker-compose` and ports published on 127.0.0.1.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"
T0=$SECONDS
say() { printf 'compose-test: %s\n' "$*"; }
fail() { printf 'compose-test: FAIL: %s\n' "$*" >&2; exit 1; }
timed() { local t=$SECONDS; say "$1 ..."; shift; "$@"; say "  took $((SECONDS - t)) s"; }

timed "docker-images.sh (engine, stand-in images)" bash "$repo/scripts/docker-images.sh"
# COMPOSE_TEST_PROFILE=debug reuses the debug binaries scripts/test.sh built
# (a release build takes about 5 minutes on 2 cores); release by default.
profile="${COMPOSE_TEST_PROFILE:-release}"
case "$profile" in
  release) timed "cargo build --release --bins (host)" cargo build --release --bins --quiet --manifest-path "$repo/Cargo.toml" ;;
  debug) timed "cargo build --bins (host)" cargo build --bins --quiet --manifest-path "$repo/Cargo.toml" ;;
  *) fail "COMPOSE_TEST_PROFILE must be release or debug, not $profile" ;;
esac

# The binaries built above, wherever cargo puts them (CARGO_TARGET_DIR).
bin="$(cargo_target_dir "$repo")/$profile"
work=$(mktemp -d /tmp/greetings-compose.XXXXXX)
export COMPOSE_PROJECT_NAME="gct$$$(date +%s)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export AMQP_HOST_PORT=$(free_port) MANAGEMENT_HOST_PORT=$(free_port)
export GREETINGS_DOCKERFILE=Dockerfile.host-binaries GREETINGS_IMAGE="greetings:$COMPOSE_PROJECT_NAME"
export DEMO_NAMES="Ada Bob"
# Compose v1 (Debian's docker-compose 1.29) for the main scenario, v2 for the TLS one.
compose=(docker-compose --ansi never)
dc() { "${compose[@]}" "$@"; }
projects=("$COMPOSE_PROJECT_NAME")
cleanup() {
  local rc=$?
  set +e
  if ((rc != 0)); then say "logs of the failed run (last lines):"; (cd "$work" && dc logs --tail=30 2>&1 | tail -80); fi
  for p in "${projects[@]}"; do (cd "$work" && COMPOSE_PROJECT_NAME=$p dc --profile cli down -v --remove-orphans >/dev/null 2>&1); done
  docker image rm -f "$GREETINGS_IMAGE" >/dev/null 2>&1
  rm -rf "$work"
  say "total $((SECONDS - T0)) s, exit $rc"
}
# Nothing of project $1 is left (containers, networks, volumes).
assert_gone() {
  local c n v
  c=$(docker ps -aq --filter "label=com.docker.compose.project=$1" | wc -l)
  n=$(docker network ls -q --filter "label=com.docker.compose.project=$1" | wc -l)
  v=$(docker volume ls -q --filter "label=com.docker.compose.project=$1" | wc -l)
  say "left after down -v: $c containers, $n networks, $v volumes"
  ((c + n + v == 0)) || fail "the project left resources behind"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

git -C "$repo" archive HEAD | tar -x -C "$work"
mkdir -p "$work/dist" && cp "$bin/producer" "$bin/consumer" "$bin/dead-letters" "$work/dist/"
cd "$work"
ls secrets *.password 2>/dev/null && fail "a secret is present in the fresh copy"
say "project $COMPOSE_PROJECT_NAME in $work; AMQP 127.0.0.1:$AMQP_HOST_PORT, management 127.0.0.1:$MANAGEMENT_HOST_PORT"

t=$SECONDS
dc up -d --build >"$work/up.log" 2>&1 || { cat "$work/up.log"; fail "docker-compose up -d --build"; }
say "up -d --build: $((SECONDS - t)) s"
demo=$(dc ps -q demo)
[[ -n "$demo" ]] || fail "no demo container"
code=$(timeout 120 docker wait "$demo") || fail "demo did not exit within 120 s"
say "demo exited $code, $((SECONDS - t)) s after up"
logs=$(dc logs --no-color demo)
echo "$logs" | sed 's/^/  /'
[[ "$code" == 0 ]] || fail "demo exit code $code"
for g in "hello Ada" "goodbye Ada" "hello Bob" "goodbye Bob"; do grep -q "$g" <<<"$logs" || fail "demo logs lack '$g'"; done

# Least privilege in exclusive reply-queue mode: no word's user may write to the default exchange
# (so none can aim a message at another queue), and the producer may configure only its own reply
# queues. The demo above proved each can still do its job.
perms=$(dc exec -T rabbitmq rabbitmqctl -q list_permissions -p greetings 2>/dev/null | tr -d '\r')
echo "$perms" | sed 's/^/  /'
for w in hello goodbye; do
  write=$(awk -v u="$w" '$1 == u { print $3 }' <<<"$perms")
  [[ -n "$write" ]] || fail "no permissions listed for $w"
  [[ "$write" != *amq* ]] || fail "$w may write to the default exchange: $write"
done
[[ "$(awk '$1 == "producer" { print $2 }' <<<"$perms")" == '^greetings\.reply\..+$' ]] \
  || fail "the producer's configure permission is wider than its reply queues"
# Every action outside its role, tried with each service's own password read from its own
# volume: the broker refuses each (tests/support/cross_role.py lists them).
ensure_python_venv "$repo/.venv" "$repo"
for pair in "hello goodbye" "goodbye hello" "producer hello"; do
  read -r role other <<<"$pair"
  if [[ "$role" == producer ]]; then
    password=$(dc run --rm --no-deps -T --entrypoint cat producer /run/greetings/producer.password 2>/dev/null)
  else
    password=$(docker exec "$(dc ps -q "$role" | head -1)" cat "/run/greetings/$role.password")
  fi
  [[ -n "$password" ]] || fail "cannot read $role's password from its volume"
  report=$("$repo/.venv/bin/python" "$repo/tests/support/cross_role.py" \
    "amqp://$role:$password@127.0.0.1:$AMQP_HOST_PORT/greetings" greetings "$role" "$other") \
    || fail "$role may act outside its role: $report"
  say "least privilege: the broker refused $role $(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["refused"]))' <<<"$report") actions outside its role"
done

# Each service sees only its own password.
for svc in hello goodbye; do
  seen=$(docker exec "$(dc ps -q "$svc" | head -1)" ls /run/greetings | tr '\n' ' ')
  [[ "$seen" == "$svc.password " ]] || fail "$svc sees '$seen' in /run/greetings, not only its own password"
done
say "secrets: each consumer sees only its own password file"

# Operate: /metrics inside the hello container counts the demo's requests.
metrics=$(dc exec -T hello consumer --probe http://127.0.0.1:9090/metrics) || fail "scrape /metrics in hello"
ok=$(awk '/^greetings_requests_total\{.*outcome="ok"/ {print $2}' <<<"$metrics")
[[ "${ok:-0}" -ge 2 ]] || { echo "$metrics" | head -20; fail "hello's /metrics counts ${ok:-no} ok requests, expected >= 2"; }
say "metrics: hello answered $ok requests (greetings_requests_total{outcome=\"ok\"})"

# From here on the broker has been "up a while": on Erlang/OTP 26+ a pid's number grows past
# 2^15 once the node has spawned 32,768 processes (hours of ordinary uptime), and what worked on
# a fresh broker must still work (docs/brokers.md).
dc exec -T rabbitmq rabbitmqctl -q eval 'lists:foreach(fun(_) -> spawn(fun() -> ok end) end, lists:seq(1, 40000)), ok.' >/dev/null \
  || fail "age the broker"
say "aged the broker: a new pid is now $(dc exec -T rabbitmq rabbitmqctl -q eval 'pid_to_list(spawn(fun() -> ok end)).' | tr -d '"\r')"

t=$SECONDS
out=$(dc run --rm producer Ada 2>&1) || { echo "$out"; fail "run --rm producer Ada"; }
echo "$out" | sed 's/^/  /'
grep -q "hello Ada" <<<"$out" && grep -q "goodbye Ada" <<<"$out" || fail "producer Ada lacks a greeting"
say "run --rm producer Ada: $((SECONDS - t)) s"

t=$SECONDS
dc up -d --scale hello=3 >/dev/null 2>&1 || fail "up -d --scale hello=3"
for i in $(seq 60); do
  n=$(docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" --filter "label=com.docker.compose.service=hello" --filter health=healthy | wc -l)
  ((n == 3)) && break; sleep 1
done
((n == 3)) || fail "3 healthy hello replicas expected, got $n"
say "scale hello=3: 3 healthy in $((SECONDS - t)) s"
# Healthy is /readyz answering 200: each replica is consuming its queue.
declare -A before
for c in $(dc ps -q hello); do before[$c]=$(docker logs "$c" 2>/dev/null | grep -c '^hello N' || true); done
names=$(for i in $(seq 300); do printf 'N%03d ' "$i"; done)
t=$SECONDS
out=$(dc run --rm producer $names 2>&1) || { echo "$out" | tail -5; fail "producer with 300 names"; }
ok=$(grep -c '^hello N' <<<"$out" || true); okg=$(grep -c '^goodbye N' <<<"$out" || true)
say "300 names: $ok hello and $okg goodbye replies in $((SECONDS - t)) s"
((ok == 300 && okg == 300)) || fail "expected 300 of each"
split=() total=0
for c in $(dc ps -q hello); do
  k=$(( $(docker logs "$c" 2>/dev/null | grep -c '^hello N' || true) - ${before[$c]:-0} ))
  split+=("$(docker inspect -f '{{.Name}}' "$c" | sed 's|^/||')=$k"); total=$((total + k))
done
say "split over the hello replicas: ${split[*]} (sum $total)"
((total == 300)) || fail "replica logs account for $total of 300"

t=$SECONDS
dc restart rabbitmq >/dev/null 2>&1 || fail "restart rabbitmq"
say "restart rabbitmq returned after $((SECONDS - t)) s"
healed=""
for i in $(seq 120); do
  if out=$(dc run --rm producer Ada 2>&1) && grep -q "hello Ada" <<<"$out" && grep -q "goodbye Ada" <<<"$out"; then healed=1; break; fi
  sleep 1
done
[[ -n "$healed" ]] || fail "no complete producer call within 120 attempts after the restart"
say "after restart rabbitmq: producer call succeeds again $((SECONDS - t)) s after the restart began"

t=$SECONDS
dc --profile cli down -v --remove-orphans >/dev/null 2>&1 || fail "down -v"
say "down -v: $((SECONDS - t)) s"
assert_gone "$COMPOSE_PROJECT_NAME"

# TLS only, with Compose v2, on the image built above.
compose=(docker compose --ansi never -f docker-compose.yml -f docker-compose.tls.yml)
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME}tls" AMQPS_HOST_PORT=$(free_port)
projects+=("$COMPOSE_PROJECT_NAME")
say "TLS-only stack with $(docker compose version --short 2>/dev/null | sed 's/^/Compose /'): project $COMPOSE_PROJECT_NAME, AMQPS 127.0.0.1:$AMQPS_HOST_PORT"
t=$SECONDS
dc up -d >"$work/up-tls.log" 2>&1 || { cat "$work/up-tls.log"; fail "TLS: up -d"; }
demo=$(dc ps -q demo)
[[ -n "$demo" ]] || fail "TLS: no demo container"
code=$(timeout 120 docker wait "$demo") || fail "TLS: demo did not exit within 120 s"
logs=$(dc logs --no-color demo)
echo "$logs" | sed 's/^/  /'
[[ "$code" == 0 ]] || fail "TLS: demo exit code $code"
for g in "hello Ada" "goodbye Ada" "hello Bob" "goodbye Bob"; do grep -q "$g" <<<"$logs" || fail "TLS: demo logs lack '$g'"; done
say "TLS: demo over amqps:// exited 0, $((SECONDS - t)) s after up"
listeners=$(dc exec -T rabbitmq rabbitmq-diagnostics -q listeners 2>&1)
echo "$listeners" | sed 's/^/  /'
grep -q 'amqp/ssl' <<<"$listeners" || fail "TLS: no amqp/ssl listener"
grep -Eq 'protocol: amqp,|protocol: amqp$' <<<"$listeners" && fail "TLS: a plain AMQP listener is open"
plain=$(AMQP_URL="amqp://producer:x@127.0.0.1:$AMQP_HOST_PORT/greetings" timeout 60 "$bin/producer" --timeout 2s Ada 2>&1) && fail "TLS: a plain AMQP connection succeeded"
say "TLS: plain amqp:// on 127.0.0.1:$AMQP_HOST_PORT refused: $(tail -1 <<<"$plain")"
dc --profile cli down -v --remove-orphans >/dev/null 2>&1 || fail "TLS: down -v"
assert_gone "$COMPOSE_PROJECT_NAME"

# A 3-node cluster with quorum queues, with Compose v1, on the image built above.
compose=(docker-compose --ansi never -f docker-compose.yml -f docker-compose.cluster.yml)
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME%tls}cl" AMQP_HOST_PORT=$(free_port) MANAGEMENT_HOST_PORT=$(free_port)
projects+=("$COMPOSE_PROJECT_NAME")
say "cluster stack: project $COMPOSE_PROJECT_NAME, AMQP 127.0.0.1:$AMQP_HOST_PORT (first node)"
t=$SECONDS
dc up -d >"$work/up-cluster.log" 2>&1 || { cat "$work/up-cluster.log"; fail "cluster: up -d"; }
demo=$(dc ps -q demo)
[[ -n "$demo" ]] || fail "cluster: no demo container"
code=$(timeout 240 docker wait "$demo") || fail "cluster: demo did not exit within 240 s"
logs=$(dc logs --no-color demo)
echo "$logs" | sed 's/^/  /'
[[ "$code" == 0 ]] || fail "cluster: demo exit code $code"
for g in "hello Ada" "goodbye Ada" "hello Bob" "goodbye Bob"; do grep -q "$g" <<<"$logs" || fail "cluster: demo logs lack '$g'"; done
say "cluster: demo exited 0, $((SECONDS - t)) s after up"
status=$(dc exec -T rabbitmq rabbitmqctl -q cluster_status --formatter json 2>/dev/null)
running=$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["running_nodes"]))' <<<"$status") || fail "cluster: cannot read cluster_status"
((running == 3)) || fail "cluster: $running running nodes, expected 3: $status"
types=$(dc exec -T rabbitmq rabbitmqctl -q list_queues -p greetings name type 2>/dev/null | tr -d '\r')
grep -Eq '^greetings\.hello[[:space:]]+quorum' <<<"$types" || fail "cluster: greetings.hello is not a quorum queue: $types"
say "cluster: 3 running nodes; greetings.hello is a quorum queue"
t=$SECONDS
dc kill rabbitmq-3 >/dev/null 2>&1 || fail "cluster: kill rabbitmq-3"
healed=""
for i in $(seq 60); do
  if out=$(dc run --rm producer Ada 2>&1) && grep -q "hello Ada" <<<"$out" && grep -q "goodbye Ada" <<<"$out"; then healed=1; break; fi
  sleep 1
done
[[ -n "$healed" ]] || { echo "$out"; fail "cluster: no complete producer call within 60 attempts after killing rabbitmq-3"; }
say "cluster: rabbitmq-3 killed; a producer call completes $((SECONDS - t)) s later, on the other two nodes"
dc --profile cli down -v --remove-orphans >/dev/null 2>&1 || fail "cluster: down -v"
assert_gone "$COMPOSE_PROJECT_NAME"
say "PASS"
