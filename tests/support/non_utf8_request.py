#!/usr/bin/env python3
"""Send one greeting request with bytes that are not UTF-8 in one short
string, the way any client can (RabbitMQ passes the bytes through), and print
what came back on direct reply-to within WAIT seconds as one JSON object:
``{"reply": <the reply body, or null>}``.

Used by the integration tests (tests/integration/non_utf8.rs). WHERE is a
property name (reply_to, correlation_id, message_id, type, app_id,
content_type, content_encoding), ``header`` (a header's name),
``nested_header`` (a name inside a table-valued header) or ``routing_key``
(the publish's routing key, which the consumer receives in basic.deliver).

Usage: non_utf8_request.py URL PREFIX CORRELATION_ID WHERE WAIT
"""

import json
import sys
import time

import pika

BAD = b"bad\xff\xfe"


def main() -> int:
    url, prefix, correlation_id, where, wait = sys.argv[1:6]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    replies = []

    def on_reply(_channel, _method, properties, body):
        replies.append(json.loads(body))
        channel.stop_consuming()

    channel.basic_consume("amq.rabbitmq.reply-to", on_reply, auto_ack=True)
    fields = {
        "content_type": "application/json",
        "correlation_id": correlation_id,
        "reply_to": "amq.rabbitmq.reply-to",
        "timestamp": int(time.time()),
        "expiration": "30000",
    }
    if where == "header":
        fields["headers"] = {BAD: "x"}
    elif where == "nested_header":
        fields["headers"] = {"outer": {BAD: 1}}
    elif where != "routing_key":
        fields[where] = BAD
    channel.basic_publish(
        exchange=prefix,
        routing_key=BAD if where == "routing_key" else "",
        body=json.dumps({"name": "Eve"}).encode(),
        properties=pika.BasicProperties(**fields),
        mandatory=True,
    )
    connection.call_later(float(wait), channel.stop_consuming)
    channel.start_consuming()
    connection.close()
    print(json.dumps({"reply": replies[0] if replies else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
