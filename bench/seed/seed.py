#!/usr/bin/env python3
"""The Python seed design: the same scatter-gather RPC as this project,
written plainly on aio-pika, as a peer lane of the benchmark (docs/performance.md).
Run with `bench --peers seed-py`; `scripts/bench.sh` installs
its requirements into .venv-bench.

Guarantees, the same as the Rust system's at its defaults:

* requests: to the durable fanout exchange ``<P>.requests``, persistent
  (delivery mode 2; ``--transient`` for mode 1), ``mandatory``, each
  publish awaited until the broker confirms it (publisher confirms);
* responders: one durable queue ``<P>.<word>`` each, prefetch 1, manual
  acks, the reply published on a confirm channel and confirmed *before*
  the ack;
* replies: RabbitMQ direct reply-to (``amq.rabbitmq.reply-to``), consumed
  without acks by the requester, matched by correlation id; a call ends
  when every word has answered or at its timeout.

Bodies are JSON: ``{"name": "n1"}`` and ``{"consumer": "hello",
"greeting": "hello n1"}``.

Usage:
  seed.py respond --amqp-url URL --prefix P --word hello
  seed.py request --amqp-url URL --prefix P --requests N --warmup W
                  --in-flight C --timeout SECONDS [--transient]
                  [--words hello,goodbye] [--cleanup]

``request`` prints one JSON line: lane, in_flight, requests, complete, lost,
errors, elapsed_s, rps, p50_us, p90_us, p99_us, max_us.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import uuid

import aio_pika
from aio_pika import DeliveryMode, ExchangeType, Message

try:  # Optional: the same event loop a tuned deployment would use.
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


async def connect(url: str) -> aio_pika.abc.AbstractConnection:
    try:
        return await aio_pika.connect(url)
    except Exception as error:  # noqa: BLE001 - any failure is fatal here
        print(f"seed.py: cannot connect to the broker: {error}", file=sys.stderr)
        sys.exit(1)


async def declare(channel, prefix: str, words: list[str]):
    exchange = await channel.declare_exchange(f"{prefix}.requests", ExchangeType.FANOUT, durable=True)
    for word in words:
        queue = await channel.declare_queue(f"{prefix}.{word}", durable=True)
        await queue.bind(exchange)
    return exchange


async def respond(args) -> int:
    connection = await connect(args.amqp_url)
    consume = await connection.channel(publisher_confirms=False)
    replies = await connection.channel(publisher_confirms=True)
    await consume.set_qos(prefetch_count=1)
    await declare(consume, args.prefix, [args.word])
    queue = await consume.get_queue(f"{args.prefix}.{args.word}")

    async def on_request(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            name = json.loads(message.body)["name"]
        except (ValueError, KeyError, TypeError):
            await message.reject(requeue=False)
            return
        if message.reply_to and message.correlation_id:
            body = json.dumps({"consumer": args.word, "greeting": f"{args.word} {name}"})
            # Awaited: returns once the broker confirmed the reply.
            await replies.default_exchange.publish(
                Message(body.encode(), content_type="application/json",
                        correlation_id=message.correlation_id),
                routing_key=message.reply_to,
            )
        await message.ack()

    await queue.consume(on_request, no_ack=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await connection.close()
    return 0


async def wait_for_consumers(channel, prefix: str, words: list[str]) -> None:
    deadline = time.monotonic() + 30
    for word in words:
        while True:
            queue = await channel.declare_queue(f"{prefix}.{word}", passive=True)
            if queue.declaration_result.consumer_count >= 1:
                break
            if time.monotonic() > deadline:
                print(f"seed.py: no consumer on {prefix}.{word} after 30 s", file=sys.stderr)
                sys.exit(1)
            await asyncio.sleep(0.05)


def percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def request(args) -> int:
    words = [w for w in args.words.split(",") if w]
    connection = await connect(args.amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await declare(channel, args.prefix, words)
    await wait_for_consumers(channel, args.prefix, words)

    waiting: dict[str, tuple[set[str], asyncio.Future]] = {}

    async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        entry = waiting.get(message.correlation_id or "")
        if entry is None:
            return
        answered, done = entry
        try:
            answered.add(json.loads(message.body)["consumer"])
        except (ValueError, KeyError, TypeError):
            return
        if len(answered) >= len(words) and not done.done():
            done.set_result(None)

    # Direct reply-to: consumed (no acks) on the channel that publishes.
    reply_queue = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
    await reply_queue.consume(on_reply, no_ack=True)
    mode = DeliveryMode.NOT_PERSISTENT if args.transient else DeliveryMode.PERSISTENT

    async def call(i: int) -> str:
        correlation_id = uuid.uuid4().hex
        done = asyncio.get_running_loop().create_future()
        waiting[correlation_id] = (set(), done)
        try:
            await exchange.publish(
                Message(json.dumps({"name": f"n{i}"}).encode(), content_type="application/json",
                        correlation_id=correlation_id, reply_to=DIRECT_REPLY_TO,
                        delivery_mode=mode, expiration=args.timeout),
                routing_key="",
                mandatory=True,
            )
            await asyncio.wait_for(done, args.timeout)
            return "complete"
        except asyncio.TimeoutError:
            return "lost"
        except Exception as error:  # noqa: BLE001 - counted, reported once
            print(f"seed.py: call failed: {error!r}", file=sys.stderr)
            return "errors"
        finally:
            waiting.pop(correlation_id, None)

    async def closed_loop(total: int, latencies: list[int] | None, counts: dict[str, int]) -> None:
        next_index = iter(range(total))

        async def worker() -> None:
            for i in next_index:
                started = time.perf_counter_ns()
                outcome = await call(i)
                counts[outcome] = counts.get(outcome, 0) + 1
                if latencies is not None:
                    latencies.append(max(1, (time.perf_counter_ns() - started) // 1000))

        await asyncio.gather(*(worker() for _ in range(args.in_flight)))

    await closed_loop(args.warmup, None, {})
    latencies: list[int] = []
    counts: dict[str, int] = {}
    started = time.perf_counter()
    await closed_loop(args.requests, latencies, counts)
    elapsed = time.perf_counter() - started
    latencies.sort()
    if args.cleanup:
        for word in words:
            await channel.queue_delete(f"{args.prefix}.{word}")
        await channel.exchange_delete(f"{args.prefix}.requests")
    await connection.close()
    complete = counts.get("complete", 0)
    print(json.dumps({
        "lane": "seed-py",
        "in_flight": args.in_flight,
        "requests": args.requests,
        "complete": complete,
        "lost": counts.get("lost", 0),
        "errors": counts.get("errors", 0),
        "elapsed_s": elapsed,
        "rps": complete / elapsed if elapsed > 0 else 0.0,
        "p50_us": percentile(latencies, 0.50),
        "p90_us": percentile(latencies, 0.90),
        "p99_us": percentile(latencies, 0.99),
        "max_us": latencies[-1] if latencies else 0,
    }))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="The Python seed design (aio-pika), a benchmark peer lane.")
    modes = parser.add_subparsers(dest="mode", required=True)
    for mode in ("respond", "request"):
        sub = modes.add_parser(mode)
        sub.add_argument("--amqp-url", required=True)
        sub.add_argument("--prefix", required=True)
    respond_args = modes.choices["respond"]
    respond_args.add_argument("--word", required=True)
    request_args = modes.choices["request"]
    request_args.add_argument("--requests", type=int, required=True)
    request_args.add_argument("--warmup", type=int, default=0)
    request_args.add_argument("--in-flight", type=int, default=1)
    request_args.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    request_args.add_argument("--transient", action="store_true")
    request_args.add_argument("--words", default="hello,goodbye")
    request_args.add_argument("--cleanup", action="store_true")
    args = parser.parse_args()
    if args.mode == "request" and (args.requests < 1 or args.in_flight < 1 or args.timeout <= 0):
        parser.error("--requests and --in-flight must be >= 1 and --timeout > 0")
    if uvloop is not None:
        uvloop.install()
    return asyncio.run(respond(args) if args.mode == "respond" else request(args))


if __name__ == "__main__":
    sys.exit(main())
