//! The ceiling lane: the smallest possible echo over the same broker with the
//! same queue settings and the same delivery guarantees as the real system
//! (fanout to durable queues with a dead-letter exchange, confirmed mandatory
//! requests, direct reply-to or an exclusive reply queue as the system's
//! `rpc.reply_queue` says, replies confirmed before the ack, the same
//! prefetch and concurrency), but no JSON, no validation, no printing and no
//! abstractions. The ratio of the system lane to this lane is what the
//! system's own code costs.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use futures::{StreamExt, stream::FuturesUnordered};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions,
    },
    types::{FieldTable, ShortString},
};
use rabbit_gather::{settings::ReplyQueue, topology::Topology};
use tokio::sync::oneshot;

const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Runs one echo responder on `queue` until the process is killed.
pub(crate) async fn respond(
    url: &str,
    queue: &str,
    prefetch: u16,
    concurrency: u16,
    reply_exchange: &str,
) -> anyhow::Result<()> {
    let consume = Connection::connect(url, ConnectionProperties::default()).await?;
    let publish = Connection::connect(url, ConnectionProperties::default()).await?;
    let replies = publish.create_channel().await?;
    replies
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let channel = consume.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut in_hand = FuturesUnordered::new();
    loop {
        tokio::select! {
            Some(done) = in_hand.next(), if !in_hand.is_empty() => { let () = done?; }
            delivery = deliveries.next(), if in_hand.len() < usize::from(concurrency) => match delivery {
                Some(delivery) => in_hand.push(echo(&replies, reply_exchange, delivery?)),
                None => return Ok(()),
            },
        }
    }
}

/// Replies as the system's consumers do: to direct reply-to through the
/// default exchange, to a reply queue through the reply exchange, mandatory.
async fn echo(replies: &Channel, reply_exchange: &str, delivery: Delivery) -> anyhow::Result<()> {
    let properties = &delivery.properties;
    if let (Some(reply_to), Some(id)) = (properties.reply_to(), properties.correlation_id()) {
        let to_reply_queue = !reply_to.as_str().starts_with(DIRECT_REPLY_TO);
        replies
            .basic_publish(
                if to_reply_queue { reply_exchange } else { "" }.into(),
                reply_to.clone(),
                BasicPublishOptions {
                    mandatory: to_reply_queue,
                    ..BasicPublishOptions::default()
                },
                &delivery.data,
                BasicProperties::default().with_correlation_id(id.clone()),
            )
            .await?
            .await?;
    }
    delivery.ack(BasicAckOptions::default()).await?;
    Ok(())
}

/// Numbers the ceiling lane's reply queues within this process.
static NEXT_REPLY_QUEUE: AtomicU64 = AtomicU64::new(0);

/// Calls in flight: replies still expected, and whom to wake.
type Calls = HashMap<u64, (u8, oneshot::Sender<()>)>;

/// The ceiling lane's requester: a reply queue, a map of calls, nothing else.
/// Unless `confirmed` is false (the `ceiling-unconfirmed` lane, the
/// guarantees of a peer that does neither), each request is mandatory and
/// its confirm awaited before its replies.
pub(crate) struct EchoClient {
    connection: Connection,
    channel: Channel,
    exchange: String,
    reply_to: ShortString,
    responders: u8,
    persistent: bool,
    confirmed: bool,
    next: AtomicU64,
    pending: Arc<Mutex<Calls>>,
}

impl EchoClient {
    pub(crate) async fn connect(
        url: &str,
        topology: &Topology,
        responders: u8,
        persistent: bool,
        reply_queue: ReplyQueue,
        confirmed: bool,
    ) -> anyhow::Result<Self> {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        if confirmed {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
        }
        let reply_to: ShortString = match reply_queue {
            ReplyQueue::Direct => DIRECT_REPLY_TO.into(),
            // An exclusive queue bound to the reply exchange, gone with the
            // connection, as the system's client declares it.
            ReplyQueue::Exclusive => {
                let name = format!(
                    "{}.reply.echo.{}",
                    topology.exchange(),
                    NEXT_REPLY_QUEUE.fetch_add(1, Ordering::Relaxed)
                );
                topology.declare_reply_queue(&connection, &name).await?;
                name.into()
            }
        };
        let mut replies = channel
            .basic_consume(
                reply_to.clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let pending: Arc<Mutex<Calls>> = Arc::default();
        let routes = Arc::clone(&pending);
        tokio::spawn(async move {
            while let Some(Ok(reply)) = replies.next().await {
                let Some(id) = reply
                    .properties
                    .correlation_id()
                    .as_ref()
                    .and_then(|id| id.as_str().parse::<u64>().ok())
                else {
                    continue;
                };
                let mut pending = routes.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((left, _)) = pending.get_mut(&id) {
                    *left -= 1;
                    if *left == 0
                        && let Some((_, done)) = pending.remove(&id)
                    {
                        let _ = done.send(());
                    }
                }
            }
        });
        Ok(Self {
            connection,
            channel,
            exchange: topology.exchange(),
            reply_to,
            responders,
            persistent,
            confirmed,
            next: AtomicU64::new(0),
            pending,
        })
    }

    pub(crate) async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }

    /// One echo round trip; `Ok(false)` when not every responder answered in time.
    pub(crate) async fn call(&self, body: &[u8], timeout: Duration) -> anyhow::Result<bool> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (done, answered) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, (self.responders, done));
        let properties = BasicProperties::default()
            .with_correlation_id(id.to_string().into())
            .with_reply_to(self.reply_to.clone())
            .with_expiration(timeout.as_millis().to_string().into())
            .with_delivery_mode(if self.persistent { 2 } else { 1 });
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                "".into(),
                BasicPublishOptions {
                    mandatory: self.confirmed,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await?;
        if self.confirmed {
            anyhow::ensure!(
                matches!(confirm.await?, Confirmation::Ack(None)),
                "echo request not routed"
            );
        }
        let complete = tokio::time::timeout(timeout, answered)
            .await
            .is_ok_and(|r| r.is_ok());
        if !complete {
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        }
        Ok(complete)
    }
}

/// Declares the echo lane's topology (same shape as the system's, under its
/// own prefix) and returns its exchange name.
pub(crate) async fn declare(
    url: &str,
    topology: &Topology,
    words: &[rabbit_gather::topology::Word],
) -> anyhow::Result<String> {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .context("connecting to declare the echo lane")?;
    for word in words {
        topology.declare_for_consumer(&connection, word).await?;
    }
    let _ = connection.close(200, "declared".into()).await;
    Ok(topology.exchange())
}
