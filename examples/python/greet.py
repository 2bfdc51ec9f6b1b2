#!/usr/bin/env python3
"""Greet NAMEs through the greetings consumers, speaking only wire contract v1.

A stand-alone client in another language than the services, to show that the
contract is enough to interoperate with them:

  * requests go to the fanout exchange ``<prefix>`` with ``mandatory`` and
    publisher confirms; the body is ``{"name": NAME}`` as UTF-8 JSON with
    content_type, correlation_id, reply_to, timestamp and expiration set;
  * replies come back through RabbitMQ direct reply-to
    (``amq.rabbitmq.reply-to``) with the request's correlation_id, one per
    consumer word bound to the exchange.

Usage:
    greet.py [--url URL] [--prefix P] [--expect hello,goodbye]
             [--timeout SECONDS] NAME...

For each NAME, in order, prints the greetings of the expected consumers in
--expect order, one per line. Missing replies and error replies go to stderr.

Exit codes:
    0  every expected consumer greeted every name
    2  bad arguments
    3  a reply is missing after --timeout, or a consumer answered with an error
    4  the broker is unreachable, refused something, or the connection was lost
    5  a request was unroutable (no queue bound to the exchange)

Set up: python3 -m venv venv && venv/bin/pip install -r requirements.txt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field

import pika
import pika.exceptions

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
CONTENT_TYPE = "application/json"

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_BROKER = 4
EXIT_UNROUTABLE = 5


@dataclass
class Request:
    """One published name and the replies gathered for it, keyed by consumer word."""

    name: str
    greetings: dict[str, str] = field(default_factory=dict)
    errors: dict[str, tuple[str, str]] = field(default_factory=dict)
    malformed: list[str] = field(default_factory=list)

    def answered(self, word: str) -> bool:
        return word in self.greetings or word in self.errors


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="greet.py",
        description="Greet NAMEs through the greetings consumers (wire contract v1).",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("AMQP_URL") or DEFAULT_URL,
        # '%' is argparse's format character: escape the one in %2f.
        help="broker URL (default: $AMQP_URL, else "
        + DEFAULT_URL.replace("%", "%%")
        + ")",
    )
    parser.add_argument(
        "--prefix", default="greetings", metavar="P", help="exchange and queue name prefix (default: %(default)s)"
    )
    parser.add_argument(
        "--expect",
        default="hello,goodbye",
        metavar="WORDS",
        help="comma-separated consumer words to wait for, in print order "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=5.0,
        help="seconds to wait for every reply; also the requests' expiration "
        "(default: %(default)s)",
    )
    parser.add_argument("names", nargs="+", metavar="NAME", help="names to greet, in order")
    args = parser.parse_args(argv)

    words: list[str] = []
    for word in args.expect.split(","):
        word = word.strip()
        if word and word not in words:
            words.append(word)
    if not words:
        parser.error("--expect needs at least one consumer word")
    args.expect = words

    if not args.timeout > 0 or args.timeout == float("inf"):
        parser.error("--timeout must be a positive number of seconds")
    if not args.prefix or args.prefix.startswith("amq."):
        parser.error("--prefix must be non-empty and must not start with 'amq.'")

    bodies = []
    for name in args.names:
        try:
            bodies.append(json.dumps({"name": name}, ensure_ascii=False).encode("utf-8"))
        except UnicodeEncodeError:
            parser.error(f"NAME {name!r} is not valid UTF-8")
    args.bodies = bodies
    return args


def err(message: str) -> None:
    print(f"greet.py: {message}", file=sys.stderr)


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    try:
        params = pika.URLParameters(args.url)
    except Exception as e:  # pika raises several types for bad URLs
        err(f"invalid --url: {e}")
        return EXIT_USAGE
    # Never hang on a broker under a resource alarm: give up after the timeout.
    params.blocked_connection_timeout = max(args.timeout, 1.0)

    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError as e:
        err(f"cannot connect to the broker: {e!r}")
        return EXIT_BROKER

    try:
        return run(connection, args)
    except pika.exceptions.UnroutableError:
        err(
            f"request unroutable: no consumer queue is bound to exchange "
            f"{args.prefix!r} (are any consumers running with --prefix {args.prefix}?)"
        )
        return EXIT_UNROUTABLE
    except pika.exceptions.NackError:
        err("the broker refused (nacked) a request")
        return EXIT_BROKER
    except pika.exceptions.ChannelClosedByBroker as e:
        err(f"the broker closed the channel: {e.reply_code} {e.reply_text}")
        return EXIT_BROKER
    except pika.exceptions.AMQPError as e:
        err(f"broker connection failed: {e!r}")
        return EXIT_BROKER
    finally:
        if connection.is_open:
            try:
                connection.close()
            except pika.exceptions.AMQPError:
                pass


def run(connection: pika.BlockingConnection, args: argparse.Namespace) -> int:
    channel = connection.channel()
    # Each service declares what it uses (idempotent); the client publishes to
    # the request exchange, so it declares that and nothing else.
    channel.exchange_declare(exchange=args.prefix, exchange_type="fanout", durable=True)

    pending: dict[str, Request] = {}

    def on_reply(_ch, _method, properties, body: bytes) -> None:
        request = pending.get(properties.correlation_id or "")
        if request is None:
            return  # a late reply to an earlier run, or not ours: ignore
        try:
            reply = json.loads(body.decode("utf-8"))
            word = reply["consumer"]
            if not isinstance(word, str):
                raise TypeError("consumer is not a string")
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
            request.malformed.append(f"{e}: {body[:200]!r}")
            return
        if request.answered(word):
            return  # a duplicate (e.g. a redelivered request): keep the first
        if isinstance(reply.get("greeting"), str) and "error" not in reply:
            request.greetings[word] = reply["greeting"]
        elif isinstance(reply.get("error"), dict):
            error = reply["error"]
            request.errors[word] = (str(error.get("code")), str(error.get("message")))
        else:
            request.malformed.append(f"neither greeting nor error: {body[:200]!r}")

    # Direct reply-to: consume the pseudo-queue (auto-ack, as RabbitMQ requires)
    # on this channel before publishing any request that names it as reply_to.
    channel.basic_consume(DIRECT_REPLY_TO, on_reply, auto_ack=True)
    channel.confirm_delivery()

    deadline = time.monotonic() + args.timeout
    expiration = str(max(1, round(args.timeout * 1000)))
    requests: list[Request] = []
    for name, body in zip(args.names, args.bodies):
        correlation_id = str(uuid.uuid4())
        request = Request(name)
        pending[correlation_id] = request
        requests.append(request)
        properties = pika.BasicProperties(
            content_type=CONTENT_TYPE,
            correlation_id=correlation_id,
            reply_to=DIRECT_REPLY_TO,
            timestamp=int(time.time()),
            expiration=expiration,
        )
        # With confirms on, this returns once the broker confirmed, and raises
        # UnroutableError if the broker returned the mandatory message.
        channel.basic_publish(
            exchange=args.prefix,
            routing_key="",
            body=body,
            properties=properties,
            mandatory=True,
        )

    def complete() -> bool:
        return all(r.answered(w) for r in requests for w in args.expect)

    while not complete():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        connection.process_data_events(time_limit=remaining)

    failed = False
    for request in requests:
        for word in args.expect:
            if word in request.greetings:
                print(request.greetings[word], flush=True)
            elif word in request.errors:
                code, message = request.errors[word]
                err(f"{word} refused {request.name!r}: {code}: {message}")
                failed = True
            else:
                err(f"no reply from {word} for {request.name!r} within {args.timeout:g}s")
                failed = True
        for problem in request.malformed:
            err(f"malformed reply for {request.name!r}: {problem}")
            failed = True
    return EXIT_INCOMPLETE if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
