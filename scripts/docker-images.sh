#!/usr/bin/env bash
# Idempotent, as root: Docker engine + local stand-in base images (no registry is reachable here).
#  - installs Debian's docker.io, docker-compose (1.29), debootstrap when missing
#  - installs Compose v2 (`docker compose`) as a CLI plugin from Debian 13's docker-compose
#    package (2.26.1, checksum pinned) when `docker compose` is missing, so both are tested
#  - starts dockerd in the background when `docker info` fails (log: /var/log/dockerd-greetings.log)
#  - builds, only when missing:
#      debian:trixie-slim       Debian 13 minbase made with debootstrap (the Dockerfile's FROM)
#      greetings-rabbitmq:4.0.5 RabbitMQ 4.0.5 from Debian 13's rabbitmq-server package (compose's pinned image)
set -euo pipefail
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_IMAGE=${BASE_IMAGE:-debian:trixie-slim}
RABBIT_IMAGE=${RABBITMQ_IMAGE:-greetings-rabbitmq:4.0.5}
here=$(cd "$(dirname "$0")/.." && pwd)
step() { local t0=$SECONDS; echo "docker-images: $1 ..."; shift; "$@"; echo "docker-images: done in $((SECONDS - t0)) s"; }

install_pkgs() {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap >/dev/null
}
missing=()
for c in dockerd docker-compose debootstrap; do command -v $c >/dev/null || missing+=("$c"); done
if ((${#missing[@]})); then step "installing docker.io docker-compose debootstrap (missing: ${missing[*]})" install_pkgs; fi

# Compose v2 from Debian 13 (Debian 12 packages only 1.29): the package's static binary,
# installed as a Docker CLI plugin; the .deb is checked against a pinned SHA-256.
COMPOSE_V2_DEB=docker-compose_2.26.1-4_amd64.deb
COMPOSE_V2_SHA256=47681197cb2b1ab88206b42a1a92fc75f50d9530a6322d03494a473eed0408ea
install_compose_v2() {
  local dir; dir=$(mktemp -d)
  curl -fsS --retry 3 -o "$dir/$COMPOSE_V2_DEB" "$MIRROR/pool/main/d/docker-compose/$COMPOSE_V2_DEB"
  echo "$COMPOSE_V2_SHA256  $dir/$COMPOSE_V2_DEB" | sha256sum -c --quiet
  dpkg-deb -x "$dir/$COMPOSE_V2_DEB" "$dir/x"
  install -D -m 0755 "$dir/x/usr/libexec/docker/cli-plugins/docker-compose" /usr/local/lib/docker/cli-plugins/docker-compose
  rm -rf "$dir"
}
if [[ "$(uname -m)" == x86_64 ]] && ! docker compose version >/dev/null 2>&1; then
  step "installing Compose v2 ($COMPOSE_V2_DEB) as a Docker CLI plugin" install_compose_v2
fi

start_dockerd() {
  nohup dockerd >/var/log/dockerd-greetings.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  echo "docker-images: dockerd did not answer in 60 s; see /var/log/dockerd-greetings.log" >&2; return 1
}
docker info >/dev/null 2>&1 || step "starting dockerd" start_dockerd

make_base() {
  local dir; dir=$(mktemp -d /var/tmp/trixie-rootfs.XXXXXX)
  debootstrap --variant=minbase trixie "$dir" "$MIRROR" >/var/log/debootstrap-trixie.log 2>&1 \
    || { echo "docker-images: debootstrap failed, see /var/log/debootstrap-trixie.log" >&2; return 1; }
  tar -C "$dir" -c . | docker import -c 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir"
}
docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || step "building $BASE_IMAGE (debootstrap trixie minbase)" make_base

make_rabbit() {
  docker build -q -t "$RABBIT_IMAGE" --label "greetings.standin=$standin_sum" --build-arg BASE="$BASE_IMAGE" -f "$here/rabbitmq/Dockerfile.standin" "$here/rabbitmq" >/dev/null
}
# Rebuilt when rabbitmq/Dockerfile.standin changes (its checksum is a label of the image).
standin_sum=$(sha256sum "$here/rabbitmq/Dockerfile.standin" | cut -c1-16)
[[ "$(docker image inspect -f '{{index .Config.Labels "greetings.standin"}}' "$RABBIT_IMAGE" 2>/dev/null)" == "$standin_sum" ]] || step "building $RABBIT_IMAGE (Debian 13 rabbitmq-server)" make_rabbit
echo "docker-images: $(docker version -f 'engine {{.Server.Version}}'), $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /'), $(docker compose version --short 2>/dev/null | sed 's/^/docker compose /'); images present: $BASE_IMAGE $RABBIT_IMAGE"
