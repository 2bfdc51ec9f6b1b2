#!/usr/bin/env python3
"""Send one greeting request with a given W3C ``traceparent`` header, the way
any pika client would, and print the reply as one JSON object on stdout:
``{"correlation_id", "body", "traceparent"}`` (the reply's ``traceparent``
header, or null).

Used by the integration tests (tests/interop/traceparent.rs) to check that a
foreign client's trace is continued by the consumer.

Usage: traced_request.py URL PREFIX CORRELATION_ID TRACEPARENT NAME
"""

import json
import sys
import time

import pika


def main() -> int:
    url, prefix, correlation_id, traceparent, name = sys.argv[1:6]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    reply = {}

    def on_reply(_channel, _method, properties, body):
        if properties.correlation_id == correlation_id:
            reply["correlation_id"] = properties.correlation_id
            reply["body"] = json.loads(body)
            reply["traceparent"] = (properties.headers or {}).get("traceparent")
            channel.stop_consuming()

    channel.basic_consume("amq.rabbitmq.reply-to", on_reply, auto_ack=True)
    channel.basic_publish(
        exchange=prefix,
        routing_key="",
        body=json.dumps({"name": name}).encode(),
        properties=pika.BasicProperties(
            content_type="application/json",
            correlation_id=correlation_id,
            reply_to="amq.rabbitmq.reply-to",
            timestamp=int(time.time()),
            expiration="30000",
            headers={"traceparent": traceparent},
        ),
        mandatory=True,
    )
    connection.call_later(30, channel.stop_consuming)
    channel.start_consuming()
    connection.close()
    if not reply:
        print("no reply within 30 s", file=sys.stderr)
        return 3
    if isinstance(reply["traceparent"], bytes):
        reply["traceparent"] = reply["traceparent"].decode()
    print(json.dumps(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
