//! The consumer runtime: one service per greeting word, answering requests
//! from its queue (wire contract v1, points 2 and 4 to 8).
//!
//! Prefetch is configurable (default 1) and acks are manual: a request is
//! acked only after its reply has been confirmed by the broker, so a crash at
//! any point leaves it to be redelivered, never lost. Shutdown stops taking new
//! deliveries, finishes the one in hand, cancels the consumer and closes the
//! channel and connection; anything prefetched but not started goes back to the
//! queue when the channel closes.

mod plan;

use std::{future::Future, io::Write, time::Duration};

use futures::StreamExt;
use lapin::{
    Channel, Connection, Consumer,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions,
        BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    },
    types::FieldTable,
};

use crate::{
    Settings,
    amqp::{self, ConnectError},
    protocol::{self, Outcome, Reply, ReplyToPolicy, ReturnAddress},
    topology::{Topology, Word},
};
use plan::Plan;

/// Why the service stopped other than by a shutdown signal.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No connection could be made.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A broker operation failed.
    #[error("broker operation failed while {doing}")]
    Broker {
        /// What the service was doing.
        doing: &'static str,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// The broker cancelled the consumer or the connection closed.
    #[error("the broker stopped delivering to this consumer (queue deleted or connection closed)")]
    ConsumerEnded,
}

fn broker(doing: &'static str) -> impl FnOnce(lapin::Error) -> ServiceError {
    move |source| ServiceError::Broker { doing, source }
}

/// Where a service writes its `W NAME` lines (stdout unless replaced).
pub type Printer = Box<dyn Fn(&str) + Send + Sync>;

/// A connected consumer service for one word, ready to [`run`](Self::run).
pub struct ConsumerService {
    connection: Connection,
    channel: Channel,
    consumer: Consumer,
    word: Word,
    queue: String,
    policy: ReplyToPolicy,
    handler_delay: Duration,
    printer: Printer,
}

impl std::fmt::Debug for ConsumerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerService")
            .field("word", &self.word)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl ConsumerService {
    /// Connects, declares the topology for `word`, sets prefetch and starts
    /// consuming. When this returns, the queue has a consumer.
    ///
    /// # Errors
    /// [`ServiceError::Connect`] or [`ServiceError::Broker`].
    pub async fn start(settings: &Settings, word: Word) -> Result<Self, ServiceError> {
        let connection = amqp::connect(
            &settings.amqp,
            &format!("greetings-consumer {} {word}", settings.topology.prefix),
        )
        .await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(broker("opening a channel"))?;
        let topology = Topology::new(&settings.topology.prefix);
        topology
            .declare_for_consumer(&channel, &word)
            .await
            .map_err(broker("declaring the topology"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broker("enabling publisher confirms"))?;
        channel
            .basic_qos(settings.consumer.prefetch, BasicQosOptions::default())
            .await
            .map_err(broker("setting prefetch"))?;
        let queue = topology.queue(&word);
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker("starting to consume"))?;
        tracing::info!(%queue, prefetch = settings.consumer.prefetch, "consuming");
        Ok(Self {
            connection,
            channel,
            consumer,
            word,
            queue,
            policy: ReplyToPolicy::new(&settings.reply_prefix()),
            handler_delay: settings.consumer.handler_delay,
            printer: Box::new(print_line),
        })
    }

    /// Sends the `W NAME` lines to `printer` instead of stdout (used by tests
    /// and embedders).
    #[must_use]
    pub fn with_printer(mut self, printer: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.printer = Box::new(printer);
        self
    }

    /// Answers requests until `shutdown` completes, then stops gracefully.
    ///
    /// # Errors
    /// [`ServiceError`] when the broker fails or stops delivering.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ServiceError> {
        tokio::pin!(shutdown);
        let result = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break Ok(()),
                delivery = self.consumer.next() => match delivery {
                    // Handling is not raced against `shutdown`: the message in
                    // hand is always finished and acked.
                    Some(Ok(delivery)) => {
                        if let Err(error) = self.handle(delivery).await {
                            break Err(error);
                        }
                    }
                    Some(Err(source)) => break Err(ServiceError::Broker { doing: "consuming", source }),
                    None => break Err(ServiceError::ConsumerEnded),
                },
            }
        };
        self.close().await;
        result
    }

    async fn handle(&self, delivery: Delivery) -> Result<(), ServiceError> {
        match plan::plan(&delivery.properties, &delivery.data, &self.policy) {
            Plan::Answer { name, reply_to } => {
                if !self.handler_delay.is_zero() {
                    tokio::time::sleep(self.handler_delay).await;
                }
                let greeting = format!("{} {name}", self.word);
                (self.printer)(&greeting);
                if let Some(address) = reply_to {
                    self.reply(&address, Outcome::Greeting(greeting)).await?;
                }
                delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(broker("acking a request"))?;
            }
            Plan::Refuse { why, reply_to } => {
                tracing::warn!(reason = %why, queue = %self.queue, "invalid request; dead-lettering it");
                if let Some(address) = reply_to {
                    let outcome = Outcome::Error {
                        code: why.code().to_owned(),
                        message: why.to_string(),
                    };
                    self.reply(&address, outcome).await?;
                }
                dead_letter(&delivery).await?;
            }
            Plan::Forbidden(why) => {
                tracing::warn!(reason = %why, queue = %self.queue, "refusing to reply; dead-lettering the request");
                dead_letter(&delivery).await?;
            }
        }
        Ok(())
    }

    /// Publishes a reply and waits for the broker's confirm.
    async fn reply(&self, address: &ReturnAddress, outcome: Outcome) -> Result<(), ServiceError> {
        let reply = Reply {
            consumer: self.word.to_string(),
            outcome,
        };
        let confirmation = self
            .channel
            .basic_publish(
                "".into(),
                address.reply_to.as_str().into(),
                BasicPublishOptions::default(),
                &reply.encode(),
                protocol::reply_properties(&address.correlation_id),
            )
            .await
            .map_err(broker("publishing a reply"))?
            .await
            .map_err(broker("waiting for a reply's confirm"))?;
        if confirmation.is_nack() {
            tracing::warn!(reply_to = %address.reply_to, "the broker refused a reply (nack)");
        }
        Ok(())
    }

    async fn close(self) {
        if let Err(error) = self
            .channel
            .basic_cancel(self.consumer.tag(), BasicCancelOptions::default())
            .await
        {
            tracing::debug!(%error, "cancelling the consumer");
        }
        if let Err(error) = self.channel.close(200, "shutting down".into()).await {
            tracing::debug!(%error, "closing the channel");
        }
        if let Err(error) = self.connection.close(200, "shutting down".into()).await {
            tracing::debug!(%error, "closing the connection");
        }
        tracing::info!(queue = %self.queue, "stopped");
    }
}

/// Rejects without requeue, so the broker moves the message to the dead-letter
/// exchange instead of redelivering it in a loop.
async fn dead_letter(delivery: &Delivery) -> Result<(), ServiceError> {
    delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .map(drop)
        .map_err(broker("dead-lettering a request"))
}

/// Prints `W NAME` on stdout, one whole line per request. A closed stdout is
/// logged, not fatal: the reply matters more than the print.
fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(error) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        tracing::warn!(%error, "cannot write to stdout");
    }
}

/// Starts a consumer service for `word` and runs it until `shutdown`.
///
/// # Errors
/// As [`ConsumerService::start`] and [`ConsumerService::run`].
pub async fn run(
    settings: &Settings,
    word: Word,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    tokio::pin!(shutdown);
    let service = tokio::select! {
        service = ConsumerService::start(settings, word) => service?,
        () = &mut shutdown => return Ok(()),
    };
    service.run(shutdown).await
}
