//! One connected session of a consumer service: a consuming connection and a
//! publishing connection (RabbitMQ blocks publishing connections under a
//! memory or disk alarm; keeping deliveries, acks and heartbeats on their own
//! connection keeps the consumer alive meanwhile), the topology declared, and
//! the delivery loop. A session ends on shutdown or on the first broker
//! failure; the supervisor in `mod.rs` then opens a new one.

use std::{future::Future, pin::Pin, sync::PoisonError, time::SystemTime};

use futures::{StreamExt, stream::FuturesUnordered};
use lapin::{
    BasicProperties, Channel, Connection, Consumer,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
        BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    },
    types::{AMQPValue, FieldTable},
};

use super::{
    ServiceError, Shared, broker,
    handler::handle_contained,
    plan::{self, Plan},
};
use crate::{
    amqp,
    protocol::{self, Outcome, Reply, ReturnAddress},
};

/// Header naming why the service itself dead-lettered a message.
pub const REASON_HEADER: &str = "x-greetings-reason";
/// Error code of a request whose handler kept failing.
pub const INTERNAL_ERROR: &str = "internal_error";

pub(crate) struct Session {
    consumer: Consumer,
    io: SessionIo,
}

/// Everything a session handles deliveries with; borrowed by every handler in
/// flight while the delivery stream is polled for more.
struct SessionIo {
    consume_connection: Connection,
    publish_connection: Connection,
    consume_channel: Channel,
    publish_channel: Channel,
}

impl Session {
    /// Connects both connections, declares the topology and starts consuming.
    pub(crate) async fn open(shared: &Shared) -> Result<Self, ServiceError> {
        let name = format!(
            "greetings-consumer {} {}",
            shared.settings.topology.prefix, shared.word
        );
        let consume_connection =
            amqp::connect(&shared.settings.amqp, &format!("{name} consume")).await?;
        let publish_connection =
            amqp::connect(&shared.settings.amqp, &format!("{name} publish")).await?;
        let publish_channel = publish_connection
            .create_channel()
            .await
            .map_err(broker("opening the publishing channel"))?;
        shared
            .topology
            .declare_for_consumer(&publish_channel, &shared.word)
            .await
            .map_err(broker("declaring the topology"))?;
        publish_channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broker("enabling publisher confirms"))?;
        let consume_channel = consume_connection
            .create_channel()
            .await
            .map_err(broker("opening the consuming channel"))?;
        consume_channel
            .basic_qos(
                shared.settings.consumer.prefetch,
                BasicQosOptions::default(),
            )
            .await
            .map_err(broker("setting prefetch"))?;
        let consumer = consume_channel
            .basic_consume(
                shared.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker("starting to consume"))?;
        tracing::info!(queue = %shared.queue, prefetch = shared.settings.consumer.prefetch, "consuming");
        Ok(Self {
            consumer,
            io: SessionIo {
                consume_connection,
                publish_connection,
                consume_channel,
                publish_channel,
            },
        })
    }

    /// Handles deliveries, up to `consumer.concurrency` at once, until
    /// `shutdown` completes (`Ok`) or the broker fails (`Err`). On shutdown no
    /// new delivery is taken and the ones in hand are finished and acked.
    /// Either way the session is closed on return.
    pub(crate) async fn serve(
        self,
        shared: &Shared,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), ServiceError> {
        let Self { mut consumer, io } = self;
        let concurrency = usize::from(shared.settings.consumer.concurrency.max(1));
        let mut in_hand = FuturesUnordered::new();
        let mut stopping = false;
        let result = loop {
            tokio::select! {
                biased;
                () = shutdown.as_mut(), if !stopping => stopping = true,
                Some(handled) = in_hand.next(), if !in_hand.is_empty() => {
                    if let Err(error) = handled {
                        break Err(error);
                    }
                }
                delivery = consumer.next(), if !stopping && in_hand.len() < concurrency => match delivery {
                    Some(Ok(delivery)) => in_hand.push(io.handle(shared, delivery)),
                    Some(Err(source)) => break Err(ServiceError::Broker { doing: "consuming", source }),
                    None => break Err(ServiceError::ConsumerEnded),
                },
                else => break Ok(()),
            }
        };
        drop(in_hand);
        io.close(&consumer, result.is_ok()).await;
        result
    }
}

impl SessionIo {
    async fn handle(&self, shared: &Shared, delivery: Delivery) -> Result<(), ServiceError> {
        let now = SystemTime::now();
        match plan::plan(&delivery.properties, &delivery.data, &shared.policy, now) {
            Plan::Answer { name, reply_to } => {
                if !shared.settings.consumer.handler_delay.is_zero() {
                    tokio::time::sleep(shared.settings.consumer.handler_delay).await;
                }
                match handle_contained(&*shared.handler, &shared.word, &name) {
                    Ok(greeting) => {
                        (shared.printer)(&greeting);
                        if let Some(address) = reply_to {
                            self.reply(shared, &address, Outcome::Greeting(greeting))
                                .await?;
                        }
                        self.forget_failures(shared, &delivery);
                        delivery
                            .ack(BasicAckOptions::default())
                            .await
                            .map_err(broker("acking a request"))?;
                    }
                    Err(error) => self.failed(shared, delivery, reply_to, &error.0).await?,
                }
            }
            Plan::Refuse { why, reply_to } => {
                tracing::warn!(reason = %why, queue = %shared.queue, "invalid request; dead-lettering it");
                if let Some(address) = reply_to {
                    let outcome = Outcome::Error {
                        code: why.code().to_owned(),
                        message: why.to_string(),
                    };
                    self.reply(shared, &address, outcome).await?;
                }
                reject(&delivery).await?;
            }
            Plan::Forbidden(why) => {
                tracing::warn!(reason = %why, queue = %shared.queue, "refusing to reply; dead-lettering the request");
                reject(&delivery).await?;
            }
            Plan::Expired { age } => {
                tracing::info!(age_ms = age.as_millis(), queue = %shared.queue, "request expired before processing; dead-lettering it");
                reject(&delivery).await?;
            }
        }
        Ok(())
    }

    /// A handler failure: requeue for another attempt, or after
    /// `consumer.max_failures` attempts dead-letter with the reason (and tell
    /// the caller, who would otherwise only see a timeout).
    async fn failed(
        &self,
        shared: &Shared,
        delivery: Delivery,
        reply_to: Option<ReturnAddress>,
        error: &str,
    ) -> Result<(), ServiceError> {
        let attempts = shared
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(&delivery.properties, &delivery.data);
        let limit = shared.settings.consumer.max_failures;
        if attempts < limit {
            tracing::warn!(%error, attempts, limit, queue = %shared.queue, "handler failed; requeueing the request");
            return delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await
                .map(drop)
                .map_err(broker("requeueing a failed request"));
        }
        let reason = format!("handler failed {attempts} times: {error}");
        tracing::error!(%reason, queue = %shared.queue, "poison message; dead-lettering it");
        if let Some(address) = reply_to {
            let outcome = Outcome::Error {
                code: INTERNAL_ERROR.to_owned(),
                message: reason.clone(),
            };
            self.reply(shared, &address, outcome).await?;
        }
        self.dead_letter_with_reason(shared, &delivery, &reason)
            .await?;
        self.forget_failures(shared, &delivery);
        delivery
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(broker("acking a dead-lettered request"))
    }

    fn forget_failures(&self, shared: &Shared, delivery: &Delivery) {
        shared
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .forget(&delivery.properties, &delivery.data);
    }

    /// Publishes a copy to the dead-letter exchange with a reason header (a
    /// broker-side reject cannot carry one) and waits for the confirm. The copy
    /// drops `expiration`, as the broker does when it dead-letters.
    async fn dead_letter_with_reason(
        &self,
        shared: &Shared,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<(), ServiceError> {
        let original = &delivery.properties;
        let mut headers = original.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
        headers.insert(
            "x-greetings-queue".into(),
            AMQPValue::LongString(shared.queue.as_str().into()),
        );
        let mut properties = BasicProperties::default()
            .with_headers(headers)
            .with_delivery_mode(2);
        if let Some(v) = original.content_type() {
            properties = properties.with_content_type(v.clone());
        }
        if let Some(v) = original.correlation_id() {
            properties = properties.with_correlation_id(v.clone());
        }
        if let Some(v) = original.message_id() {
            properties = properties.with_message_id(v.clone());
        }
        if let Some(v) = original.reply_to() {
            properties = properties.with_reply_to(v.clone());
        }
        if let Some(v) = original.timestamp() {
            properties = properties.with_timestamp(*v);
        }
        self.publish_confirmed(
            shared.topology.dead_letter_exchange().as_str(),
            shared.queue.as_str(),
            &delivery.data,
            properties,
        )
        .await
    }

    /// Publishes a reply and waits for the broker's confirm.
    async fn reply(
        &self,
        shared: &Shared,
        address: &ReturnAddress,
        outcome: Outcome,
    ) -> Result<(), ServiceError> {
        let reply = Reply {
            consumer: shared.word.to_string(),
            outcome,
        };
        self.publish_confirmed(
            "",
            &address.reply_to,
            &reply.encode(),
            protocol::reply_properties(&address.correlation_id),
        )
        .await
    }

    async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), ServiceError> {
        let confirmation = self
            .publish_channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .map_err(broker("publishing"))?
            .await
            .map_err(broker("waiting for a publisher confirm"))?;
        if confirmation.is_nack() {
            tracing::warn!(%exchange, %routing_key, "the broker refused a publish (nack)");
        }
        Ok(())
    }

    /// Cancels the consumer (on a clean stop) and closes both channels and
    /// connections. Prefetched deliveries not yet handled are requeued by the
    /// broker when the channel closes.
    async fn close(self, consumer: &Consumer, clean: bool) {
        if clean
            && let Err(error) = self
                .consume_channel
                .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                .await
        {
            tracing::debug!(%error, "cancelling the consumer");
        }
        for channel in [&self.consume_channel, &self.publish_channel] {
            if let Err(error) = channel.close(200, "shutting down".into()).await {
                tracing::debug!(%error, "closing a channel");
            }
        }
        for connection in [&self.consume_connection, &self.publish_connection] {
            if let Err(error) = connection.close(200, "shutting down".into()).await {
                tracing::debug!(%error, "closing a connection");
            }
        }
    }
}

/// Rejects without requeue, so the broker moves the message to the dead-letter
/// exchange instead of redelivering it in a loop.
async fn reject(delivery: &Delivery) -> Result<(), ServiceError> {
    delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .map(drop)
        .map_err(broker("dead-lettering a request"))
}
