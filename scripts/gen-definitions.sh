#!/usr/bin/env bash
# Generates the broker's users and permissions with random passwords: a
# RabbitMQ definitions file (loaded at boot with `load_definitions`) and one
# password file per user. Needs only bash and coreutils (it runs in the broker
# image on first start, from the compose file's `init` service).
#
#   scripts/gen-definitions.sh [--prefix P] [--vhost V] [--reply-queue MODE]
#                              [--queue-type classic|quorum] DIR WORD...
#
# Users (least privilege, on vhost V, default `greetings`; names under prefix
# P, default `greetings`), for clients whose replies come back (MODE, the
# services' rpc.reply_queue) to an `exclusive` reply queue (default) or by
# `direct` reply-to:
#   producer  publishes requests to exchange P. exclusive: declares its own
#             exclusive reply queues P.reply.<id>, binds them to P.reply and
#             consumes them. direct: nothing more (direct reply-to needs no
#             queue permission)
#   WORD      one per consumer word: declares only its own objects (queues
#             P.WORD and P.WORD.due, retry queue and exchange P.WORD.retry),
#             consumes only P.WORD and P.WORD.due, publishes only replies (P.reply) and its own retry
#             copies and dead letters (P.WORD.retry, keys wait and dead).
#             direct: also replies through the default exchange; exclusive:
#             no write on the default exchange at all, so it cannot aim a
#             message at another queue (the consumers then run with
#             GREETINGS_CONSUMER__DIRECT_REPLY_TO=false).
#   admin     administrator, for operators (management UI, definitions
#             export, dead-letters)
# The shared objects are declared here, by the operator, and no service may
# configure (so delete) them: exchanges P (fanout), P.reply (direct), P.dlx
# (fanout) and each P.WORD.retry (direct); queue P.dead (x-max-length 10000,
# x-message-ttl 7 days, the services' defaults; quorum with --queue-type
# quorum) bound to P.dlx and to each P.WORD.retry with key `dead`. The
# services find them and use them as they are (passive declares).
# A letter in P.dead therefore came through the exchange of the one word
# that wrote it, and `dead-letters replay` sends it back to that word alone.
# No guest user. Passwords: 32 random letters and digits, stored in the
# definitions as salted SHA-256 hashes (rabbit_password_hashing_sha256).
#
# Writes DIR/definitions.json and DIR/<user>.password (mode 600). Does nothing
# when DIR/definitions.json exists: generated once, kept across restarts.
set -euo pipefail
PROG=gen-definitions
say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "error: $*"; exit 1; }

prefix=greetings
vhost=greetings
reply_queue=exclusive
queue_type=classic
while (($#)); do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a value}"; shift 2 ;;
        --reply-queue) reply_queue="${2:?--reply-queue needs a value}"; shift 2 ;;
        --queue-type) queue_type="${2:?--queue-type needs a value}"; shift 2 ;;
        --vhost) vhost="${2:?--vhost needs a value}"; shift 2 ;;
        --) shift; break ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
done
(($# >= 2)) || die "usage: $0 [--prefix P] [--vhost V] [--reply-queue MODE] [--queue-type TYPE] DIR WORD..."
dir="$1"
shift
[[ "$prefix" =~ ^[A-Za-z0-9._-]{1,100}$ && "$prefix" != amq.* ]] || die "invalid prefix '$prefix'"
[[ "$vhost" =~ ^[A-Za-z0-9._-]{1,100}$ ]] || die "invalid vhost '$vhost'"
[[ "$reply_queue" == exclusive || "$reply_queue" == direct ]] || die "--reply-queue must be exclusive or direct, not '$reply_queue'"
[[ "$queue_type" == classic || "$queue_type" == quorum ]] || die "--queue-type must be classic or quorum, not '$queue_type'"
for word in "$@"; do
    [[ "$word" =~ ^[A-Za-z0-9_-]{1,64}$ ]] || die "invalid word '$word' (1-64 letters, digits, - or _)"
    [[ "$word" != producer && "$word" != admin ]] || die "'$word' is a reserved user name"
done

if [[ -e "$dir/definitions.json" ]]; then
    say "$dir/definitions.json exists; keeping the credentials already generated"
    exit 0
fi
mkdir -p "$dir"
umask 077

password() {
    local pw=""
    while ((${#pw} < 32)); do
        pw+=$(head -c 512 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')
    done
    printf '%s' "${pw:0:32}"
}

# base64(salt ++ sha256(salt ++ password)), salt = 4 random bytes.
hash() {
    local salt digest
    salt=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
    digest=$( { printf '%b' "$(sed 's/../\\x&/g' <<<"$salt")"; printf '%s' "$1"; } \
        | sha256sum | cut -d' ' -f1)
    printf '%b' "$(sed 's/../\\x&/g' <<<"$salt$digest")" | base64 -w0
}

# A regex-quoted name (dots and dashes are the only specials allowed above).
quote() { sed 's/[.]/\\\\./g' <<<"$1"; }

p=$(quote "$prefix")
users=()
permissions=()
add_user() { # name tags configure write read
    local pw
    pw=$(password)
    printf '%s' "$pw" >"$dir/$1.password"
    users+=("{\"name\":\"$1\",\"password_hash\":\"$(hash "$pw")\",\"hashing_algorithm\":\"rabbit_password_hashing_sha256\",\"tags\":[$2]}")
    permissions+=("{\"user\":\"$1\",\"vhost\":\"$vhost\",\"configure\":\"$3\",\"write\":\"$4\",\"read\":\"$5\"}")
}

add_user admin '"administrator"' '.*' '.*' '.*'
if [[ "$reply_queue" == exclusive ]]; then
    add_user producer '' \
        "^$p\\\\.reply\\\\..+\$" \
        "^$p(\\\\.reply\\\\..+)?\$" \
        "^$p\\\\.reply(\\\\..+)?\$"
    default_exchange=""
else
    add_user producer '' '^$' "^$p\$" '^$'
    default_exchange="amq\\\\.default|"
fi
exchanges=()
bindings=()
exchange() { # name type
    exchanges+=("{\"name\":\"$1\",\"vhost\":\"$vhost\",\"type\":\"$2\",\"durable\":true,\"auto_delete\":false,\"internal\":false,\"arguments\":{}}")
}
bind_dead() { # source key
    bindings+=("{\"source\":\"$1\",\"vhost\":\"$vhost\",\"destination\":\"$prefix.dead\",\"destination_type\":\"queue\",\"routing_key\":\"$2\",\"arguments\":{}}")
}
exchange "$prefix" fanout
exchange "$prefix.reply" direct
exchange "$prefix.dlx" fanout
bind_dead "$prefix.dlx" ""
for word in "$@"; do
    w=$(quote "$word")
    add_user "$word" '' \
        "^$p\\\\.$w(\\\\.retry|\\\\.due)?\$" \
        "^(${default_exchange}$p\\\\.reply|$p\\\\.$w(\\\\.retry|\\\\.due)?)\$" \
        "^($p|$p\\\\.$w(\\\\.retry|\\\\.due)?)\$"
    exchange "$prefix.$word.retry" direct
    bind_dead "$prefix.$word.retry" dead
done
dead_arguments='"x-max-length":10000,"x-message-ttl":604800000'
[[ "$queue_type" == quorum ]] && dead_arguments+=',"x-queue-type":"quorum"'

join() { local IFS=,; printf '%s' "$*"; }
cat >"$dir/definitions.json" <<JSON
{
  "users": [$(join "${users[@]}")],
  "vhosts": [{"name": "$vhost"}],
  "permissions": [$(join "${permissions[@]}")],
  "exchanges": [$(join "${exchanges[@]}")],
  "queues": [{"name": "$prefix.dead", "vhost": "$vhost", "durable": true, "auto_delete": false, "arguments": {$dead_arguments}}],
  "bindings": [$(join "${bindings[@]}")]
}
JSON
chmod 600 "$dir"/*.password "$dir/definitions.json"
say "wrote $dir/definitions.json (vhost $vhost; users admin, producer, $*) and a .password file per user"
