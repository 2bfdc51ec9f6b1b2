//! Raw AMQP access, for requests the library's client would never send and
//! for looking at queues from outside: publish with confirms, read replies
//! and dead letters, passive declares.

use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, Consumer,
    message::Delivery,
    options::{
        BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::FieldTable,
};

use crate::{broker::connect_raw, wait::EVENT_TIMEOUT};

/// Raw AMQP access, for requests the RPC client would never send.
pub struct Raw {
    /// The connection.
    pub connection: Connection,
    /// A channel in confirm mode, consuming direct reply-to.
    pub channel: Channel,
    replies: Consumer,
    prefix: String,
}

impl Raw {
    /// Opens a connection to `url` for requests to `prefix`'s exchange.
    pub async fn open(url: &str, prefix: &str) -> Self {
        let connection = connect_raw(url).await;
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let replies = consume_no_ack(&channel, "amq.rabbitmq.reply-to").await;
        Self {
            connection,
            channel,
            replies,
            prefix: prefix.to_owned(),
        }
    }

    /// Publishes `body` to the request exchange and waits for the confirm.
    pub async fn publish(&self, body: &[u8], properties: BasicProperties) {
        publish_routed(&self.channel, &self.prefix, "", body, properties).await;
    }

    /// The next reply on direct reply-to, failing the test after [`EVENT_TIMEOUT`].
    pub async fn next_reply(&mut self) -> Delivery {
        tokio::time::timeout(EVENT_TIMEOUT, self.replies.next())
            .await
            .expect("a reply arrives in time")
            .expect("reply stream open")
            .expect("reply delivery")
    }

    /// A consumer of this test's dead-letter queue.
    pub async fn dead_letters(&self) -> DeadLetters {
        let channel = self.connection.create_channel().await.expect("channel");
        let consumer = consume_no_ack(&channel, &format!("{}.dead", self.prefix)).await;
        DeadLetters {
            _channel: channel,
            consumer,
        }
    }

    /// Ready messages and consumers of `queue` (passive declare).
    pub async fn queue_counts(&self, queue: &str) -> (u32, u32) {
        queue_counts(&self.connection, queue).await
    }
}

/// Publishes `body` to `exchange` with `routing_key` (mandatory) on a
/// channel in confirm mode, failing the test unless the broker acks it as
/// routed.
pub async fn publish_routed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) {
    let confirmation = publish_mandatory(channel, exchange, routing_key, body, properties).await;
    assert!(
        matches!(confirmation, Confirmation::Ack(None)),
        "not routed to {exchange:?} {routing_key:?}: {confirmation:?}"
    );
}

/// Whether a mandatory publish of `body` to `exchange` with `routing_key`
/// reaches a queue (publishing, unlike a passive declare, does not renew a
/// queue's `x-expires` lease). The channel must be in confirm mode.
pub async fn routes(channel: &Channel, exchange: &str, routing_key: &str, body: &[u8]) -> bool {
    let confirmation = publish_mandatory(
        channel,
        exchange,
        routing_key,
        body,
        BasicProperties::default(),
    )
    .await;
    matches!(confirmation, Confirmation::Ack(None))
}

/// A mandatory publish and the broker's confirm of it.
async fn publish_mandatory(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Confirmation {
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            properties,
        )
        .await
        .expect("publish")
        .await
        .expect("confirm")
}

/// Ready messages and consumers of `queue` (passive declare on a channel of
/// its own, as a missing queue closes the channel), failing when it is missing.
pub async fn queue_counts(connection: &Connection, queue: &str) -> (u32, u32) {
    passive_declare(connection, queue)
        .await
        .unwrap_or_else(|e| panic!("queue {queue} exists: {e}"))
}

/// Whether `queue` exists. A declare, even passive, renews an `x-expires`
/// lease: to watch a queue expire, publish to it instead.
pub async fn queue_exists(connection: &Connection, queue: &str) -> bool {
    passive_declare(connection, queue).await.is_ok()
}

async fn passive_declare(connection: &Connection, queue: &str) -> lapin::Result<(u32, u32)> {
    let channel = connection.create_channel().await.expect("channel");
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map(|q| (q.message_count(), q.consumer_count()));
    let _ = channel.close(200, "done".into()).await;
    declared
}

/// Declares a durable queue with `arguments` (as an earlier version, or a
/// test, would have).
pub async fn declare_durable(channel: &Channel, queue: &str, arguments: FieldTable) {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .unwrap_or_else(|e| panic!("declare {queue}: {e}"));
}

/// Binds `queue` to `exchange` with routing key `key`.
pub async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("bind {queue} to {exchange} with key {key:?}: {e}"));
}

/// The `x-greetings-reason` header of a dead letter the service published.
pub fn reason(letter: &Delivery) -> Option<String> {
    match letter
        .properties
        .headers()
        .as_ref()?
        .inner()
        .get(rabbit_gather::protocol::names::REASON_HEADER)?
    {
        lapin::types::AMQPValue::LongString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// An auto-acked consumer of `queue`.
pub async fn consume_no_ack(channel: &Channel, queue: &str) -> Consumer {
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("consume {queue}: {e}"))
}

/// A consumer of a test's dead-letter queue.
pub struct DeadLetters {
    _channel: Channel,
    consumer: Consumer,
}

impl DeadLetters {
    /// The next dead letter, failing the test after [`EVENT_TIMEOUT`].
    pub async fn next(&mut self) -> Delivery {
        tokio::time::timeout(EVENT_TIMEOUT, self.consumer.next())
            .await
            .expect("a dead letter arrives in time")
            .expect("dead-letter stream open")
            .expect("dead-letter delivery")
    }
}

/// A delivery's `correlation_id`, if any.
pub fn correlation_id(delivery: &Delivery) -> Option<String> {
    delivery
        .properties
        .correlation_id()
        .as_ref()
        .map(ToString::to_string)
}

/// Request properties with a reply address (`amq.rabbitmq.reply-to`).
pub fn answerable(correlation_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_correlation_id(correlation_id.into())
        .with_reply_to("amq.rabbitmq.reply-to".into())
}
