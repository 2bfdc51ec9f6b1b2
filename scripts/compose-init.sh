#!/usr/bin/env bash
# The compose file's one-shot `init` service (runs as root in the broker image,
# before the broker). On first start it generates the credentials and hands
# each service only its own:
#
#   /run/greetings/broker/     definitions.json (users, password hashes,
#                              permissions) and admin.password, for operators
#   /run/greetings/<user>/     <user>.password, one volume per user
#                              (producer, and one per word), owned by the
#                              services' uid, mode 0400
#
# With GREETINGS_DEV_TLS=1 (docker-compose.tls.yml) it also writes development
# certificates (scripts/gen-dev-certs.sh; never for production): the server's
# certificate and key to the broker's volume, the CA to every user's volume.
#
# Existing files are kept: an operator who puts their own definitions and
# passwords (or certificates) in the volumes first gets them used as they are.
# Words come from GREETINGS_WORDS (default "hello goodbye"); each needs a
# volume mounted at /run/greetings/<word>.
set -euo pipefail
PROG=compose-init
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit 1; }

base=/run/greetings
service_uid=${GREETINGS_SERVICE_UID:-10001}
read -r -a words <<<"${GREETINGS_WORDS:-hello goodbye}"
users=(producer "${words[@]}")
for user in "${users[@]}"; do
    [[ -d "$base/$user" ]] || die "no volume mounted at $base/$user"
done

if [[ -e "$base/broker/definitions.json" ]]; then
    say "credentials exist; keeping them"
else
    work=$(mktemp -d)
    bash "$root/scripts/gen-definitions.sh" --queue-type "${GREETINGS_QUEUE_TYPE:-classic}" "$work" "${words[@]}"
    install -m 0400 -o rabbitmq -g rabbitmq "$work/definitions.json" "$base/broker/"
    install -m 0400 -o rabbitmq -g rabbitmq "$work/admin.password" "$base/broker/"
    for user in "${users[@]}"; do
        install -m 0400 -o "$service_uid" -g "$service_uid" "$work/$user.password" "$base/$user/"
    done
    rm -rf "$work"
    say "credentials generated; admin password: docker-compose exec rabbitmq cat $base/admin.password"
fi

# A cluster's nodes share one Erlang cookie (docker-compose.cluster.yml).
if [[ "${GREETINGS_ERLANG_COOKIE:-0}" == 1 ]]; then
    if [[ -e "$base/broker/erlang.cookie" ]]; then
        say "Erlang cookie exists; keeping it"
    else
        head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$base/broker/erlang.cookie.new"
        install -m 0400 -o rabbitmq -g rabbitmq "$base/broker/erlang.cookie.new" "$base/broker/erlang.cookie"
        rm -f "$base/broker/erlang.cookie.new"
        say "Erlang cookie generated for the cluster's nodes"
    fi
fi

if [[ "${GREETINGS_DEV_TLS:-0}" == 1 ]]; then
    if [[ -e "$base/broker/server.pem" ]]; then
        say "TLS certificates exist; keeping them"
    else
        work=$(mktemp -d)
        bash "$root/scripts/gen-dev-certs.sh" "$work" rabbitmq
        install -m 0444 "$work/ca.pem" "$base/broker/"
        install -m 0444 "$work/server.pem" "$base/broker/"
        install -m 0400 -o rabbitmq -g rabbitmq "$work/server.key" "$base/broker/"
        for user in "${users[@]}"; do install -m 0444 "$work/ca.pem" "$base/$user/"; done
        rm -rf "$work"
        say "development TLS certificates generated (CA, server certificate for 'rabbitmq')"
    fi
fi
