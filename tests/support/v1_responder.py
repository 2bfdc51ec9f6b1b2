#!/usr/bin/env python3
"""A responder that knows only wire contract v1 (README, "Wire contract").

The integration tests use it as "an older consumer" beside contract v1.1
clients: it answers ``{"name": NAME}`` with ``{"consumer": WORD, "greeting":
"WORD NAME"}`` and, as v1 says of any other body, replies ``invalid_request``
and rejects the request without requeue (so it is dead-lettered). A batch
``{"names": [...]}`` is such a body.

It follows v1's consumer rules that matter for interoperating: its own durable
queue ``<prefix>.<word>`` bound to the fanout exchange ``<prefix>`` with the
documented arguments, prefetch 1, manual acks, replies published with
publisher confirms before the ack, one ``WORD NAME`` line on stdout per
greeting. It is a test fixture, not a hardened service: it does not check
``reply_to`` against the allow-list, expirations or retries.

Usage: v1_responder.py --url URL --prefix P --word WORD
Prints ``consuming <queue>`` on stdout once it consumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata

import pika

MAX_REQUEST_BYTES = 4096
QUEUE_EXPIRES_MS = 3_600_000


def check_name(name: object) -> str | None:
    """Why `name` is not a valid v1 NAME, or None if it is."""
    if not isinstance(name, str):
        return "expected a string \"name\""
    if not 1 <= len(name) <= 100:
        return f"a name has 1 to 100 characters, not {len(name)}"
    if not name.strip():
        return "a name is not only whitespace"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "a name has no control characters"
    return None


def answer(word: str, body: bytes) -> tuple[dict, str | None]:
    """The reply body for `body`, and the greeting if it is one."""
    why = None
    name = None
    if len(body) > MAX_REQUEST_BYTES:
        why = f"request body of {len(body)} bytes is over {MAX_REQUEST_BYTES}"
    else:
        try:
            request = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            why = f"not a UTF-8 JSON object: {error}"
        else:
            if not isinstance(request, dict):
                why = "expected a JSON object"
            else:
                name = request.get("name")
                why = check_name(name)
    if why is not None:
        return {"consumer": word, "error": {"code": "invalid_request", "message": why}}, None
    greeting = f"{word} {name}"
    return {"consumer": word, "greeting": greeting}, greeting


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--word", required=True)
    args = parser.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.exchange_declare(args.prefix, "fanout", durable=True)
    queue = f"{args.prefix}.{args.word}"
    channel.queue_declare(
        queue,
        durable=True,
        arguments={
            "x-dead-letter-exchange": f"{args.prefix}.dlx",
            "x-expires": QUEUE_EXPIRES_MS,
        },
    )
    channel.queue_bind(queue, args.prefix)
    channel.basic_qos(prefetch_count=1)

    def on_request(ch, method, properties, body):
        reply, greeting = answer(args.word, body)
        if properties.reply_to and properties.correlation_id:
            # Confirmed (confirm_delivery) before the ack below.
            ch.basic_publish(
                "",
                properties.reply_to,
                json.dumps(reply, ensure_ascii=False).encode("utf-8"),
                pika.BasicProperties(
                    content_type="application/json",
                    correlation_id=properties.correlation_id,
                ),
            )
        if greeting is None:
            ch.basic_reject(method.delivery_tag, requeue=False)
        else:
            print(greeting, flush=True)
            ch.basic_ack(method.delivery_tag)

    channel.basic_consume(queue, on_request)
    print(f"consuming {queue}", flush=True)
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
