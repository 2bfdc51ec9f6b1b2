#!/usr/bin/env bash
# Generates development TLS certificates (never for production): a CA, a
# server certificate for localhost / 127.0.0.1 (and any extra names given),
# and a client certificate for mutual TLS, all PEM, keys in PKCS#8.
#
#   scripts/gen-dev-certs.sh DIR [NAME...]     # e.g. scripts/gen-dev-certs.sh target/certs rabbitmq
#
# Writes DIR/ca.pem, DIR/ca.key, DIR/server.pem, DIR/server.key,
# DIR/client.pem, DIR/client.key. Certificates are valid for 30 days.
set -euo pipefail
PROG=gen-dev-certs
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

(($# >= 1)) || die "usage: $0 DIR [SERVER_NAME...]"
dir="$1"
shift
command -v openssl >/dev/null 2>&1 || install_debian_packages openssl
mkdir -p "$dir"
cd "$dir"

san="DNS:localhost,IP:127.0.0.1"
for name in "$@"; do san="$san,DNS:$name"; done

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -days 30 -subj "/CN=greetings development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.pem 2>/dev/null

# sign NAME SUBJECT EXTENSIONS
sign() {
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
sign server localhost "subjectAltName=$san
extendedKeyUsage=serverAuth"
sign client greetings-client "extendedKeyUsage=clientAuth"
rm -f ca.srl
chmod 600 ./*.key
say "wrote ca.pem, server.pem/.key (for $san) and client.pem/.key to $dir"
