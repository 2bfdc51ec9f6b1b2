#!/usr/bin/env python3
"""Try, with one service's own credential, every action outside its role,
and print one JSON object: ``{"refused": [...], "allowed": [...]}``, each
entry naming an action. Exits 0 only when the broker refused every one.

ROLE is ``producer`` or a word (the credential's user). OTHER is another
word, whose objects ROLE must not touch. The URL carries the user and its
password.

A word may consume its own queue and publish its replies (``P.reply``), its
retry copies and its dead letters (its own exchange ``P.WORD.retry``); a
producer may publish requests (``P``) and declare, bind and consume its own
exclusive reply queues. Nothing else, and neither may delete, purge or bind
a shared object. Each action runs on a fresh channel: a refusal closes it.

Used by tests/nodes/privileges.rs and scripts/compose-test.sh.

Usage: cross_role.py URL PREFIX ROLE OTHER
"""

import json
import sys

import pika
import pika.exceptions


def actions(p, role, other):
    """(name, function of a channel) for every action outside ROLE."""
    def publish(exchange, key):
        def run(ch):
            ch.confirm_delivery()
            ch.basic_publish(exchange, key, b'{"name":"Mallory"}', mandatory=False)
        return run

    def consume(queue):
        return lambda ch: ch.basic_consume(queue, lambda *a: None)

    def get(queue):
        return lambda ch: ch.basic_get(queue)

    shared_exchanges = [p, p + ".dlx", p + ".reply", p + "." + other + ".retry"]
    shared_queues = [p + ".dead", p + "." + other, p + "." + other + ".retry", p + "." + other + ".due"]
    found = []
    for x in shared_exchanges:
        found.append((f"delete exchange {x}", lambda ch, x=x: ch.exchange_delete(x)))
        found.append((
            f"redeclare exchange {x} as topic",
            lambda ch, x=x: ch.exchange_declare(x, "topic", durable=True),
        ))
    for q in shared_queues:
        found.append((f"delete queue {q}", lambda ch, q=q: ch.queue_delete(q)))
        found.append((f"purge queue {q}", lambda ch, q=q: ch.queue_purge(q)))
        found.append((f"consume {q}", consume(q)))
        found.append((f"get from {q}", get(q)))
    found += [
        (f"publish to {p}.dlx", publish(p + ".dlx", "")),
        (f"publish into {p}.{other} through the default exchange", publish("", f"{p}.{other}")),
        (f"publish into {p}.dead through the default exchange", publish("", f"{p}.dead")),
        (f"publish into {p}.{other} through its retry exchange", publish(f"{p}.{other}.retry", "due")),
        (f"publish a dead letter through {p}.{other}.retry", publish(f"{p}.{other}.retry", "dead")),
        (f"declare queue {p}.stolen", lambda ch: ch.queue_declare(f"{p}.stolen", durable=True)),
        (f"declare exchange {p}.stolen", lambda ch: ch.exchange_declare(f"{p}.stolen", "fanout")),
        (
            f"bind {p}.dead to {p}",
            lambda ch: ch.queue_bind(f"{p}.dead", p, routing_key=""),
        ),
        (
            f"bind {p}.{other} to {p}.reply",
            lambda ch: ch.queue_bind(f"{p}.{other}", f"{p}.reply", routing_key="x"),
        ),
    ]
    if role == "producer":
        found += [
            (f"bind {p}.dead to {p}.{other}.retry",
             lambda ch: ch.queue_bind(f"{p}.dead", f"{p}.{other}.retry", routing_key="due")),

        ]
    else:
        own = f"{p}.{role}.retry"
        found += [
            (f"publish a request to {p}", publish(p, "")),
            (f"bind {p}.dead to its own exchange (key due)",
             lambda ch: ch.queue_bind(f"{p}.dead", own, routing_key="due")),
            (f"unbind {p}.dead from its own exchange",
             lambda ch: ch.queue_unbind(f"{p}.dead", own, routing_key="dead")),
            (f"bind its own queue to {p}.dlx",
             lambda ch: ch.queue_bind(f"{p}.{role}", f"{p}.dlx", routing_key="")),
        ]
    return found


def main() -> int:
    url, prefix, role, other = sys.argv[1:5]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    refused, allowed = [], []
    for name, run in actions(prefix, role, other):
        channel = connection.channel()
        try:
            run(channel)
        except pika.exceptions.ChannelClosedByBroker as closed:
            if closed.reply_code == 403:
                refused.append(name)
            else:
                allowed.append(f"{name} (not refused for access: {closed.reply_code} {closed.reply_text})")
            continue
        allowed.append(name)
        if channel.is_open:
            channel.close()
    connection.close()
    print(json.dumps({"refused": refused, "allowed": allowed}))
    return 0 if not allowed else 1


if __name__ == "__main__":
    sys.exit(main())
