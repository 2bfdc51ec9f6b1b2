//! Every publish a service makes (replies, delayed-retry copies, dead-letter
//! copies) goes through one [`Publisher`]: its own connection (RabbitMQ
//! blocks publishing connections under a memory or disk alarm; the consuming
//! connection stays free), a confirm-mode channel, and three rules.
//!
//! - **A publish is done when the broker acks it.** A nack is retried with
//!   backoff ([`NACK_DELAYS`]); still nacked, it is an error the caller must
//!   answer by returning the delivery to the broker, never by acking it.
//! - **A refusal is the message's problem, not an outage.** When the broker
//!   closes the publishing channel or connection with an error of its own
//!   (not a shutdown), the publish is [`PublishError::Refused`]; the next
//!   publish opens a new connection, and the session goes on consuming.
//! - **The culprit is known.** A refusal says whether the refused publish
//!   was the only one in flight (`alone`); when it was not, the caller
//!   retries it with [`Publisher::publish_alone`], which waits for the
//!   others to finish, so a second refusal names the culprit for sure.

use std::{
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use lapin::{
    BasicProperties, Channel, Confirmation, Connection,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    protocol::{AMQPErrorKind, AMQPHardError},
};
use tokio::sync::RwLock;

use super::{
    counters::ServiceCounters,
    error::{ServiceError, broker},
    liveness::closed,
};
use crate::{amqp, settings::AmqpSettings, timing::SERVICE_CLOSE_TIMEOUT};

/// Waits before each new attempt of a nacked publish: four attempts in all,
/// 0.7 s of waiting at most.
pub(crate) const NACK_DELAYS: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
];

/// One message to publish.
#[derive(Debug, Clone)]
pub(crate) struct Message<'a> {
    pub(crate) exchange: &'a str,
    pub(crate) routing_key: &'a str,
    pub(crate) body: &'a [u8],
    pub(crate) properties: BasicProperties,
    /// Ask the broker to return it if no queue takes it.
    pub(crate) mandatory: bool,
}

/// Why a publish did not end with the broker's ack.
#[derive(Debug)]
pub(crate) enum PublishError {
    /// Nacked on every attempt.
    Nacked,
    /// Mandatory, and no queue took it.
    Unroutable,
    /// The broker closed the publishing channel or connection with an
    /// error while this publish was in flight. `alone`: it was the only
    /// publish in flight, so it caused the refusal.
    Refused { error: lapin::Error, alone: bool },
    /// The broker is unreachable or went away: the session must end.
    Lost(ServiceError),
}

/// A publishing connection and its confirm-mode channel.
struct Link {
    connection: Connection,
    channel: Channel,
    /// Publishes sent on this link and not yet answered.
    in_flight: AtomicUsize,
    /// `in_flight` when the link first failed (the publishes that failed with
    /// it, the culprit among them).
    in_flight_at_failure: OnceLock<usize>,
}

/// See the module docs.
pub(crate) struct Publisher {
    amqp: AmqpSettings,
    name: String,
    counters: Arc<ServiceCounters>,
    link: Mutex<Option<Arc<Link>>>,
    /// One reconnection at a time.
    reopening: tokio::sync::Mutex<()>,
    /// Publishes share it; a publish that must be alone holds it exclusively.
    lanes: RwLock<()>,
}

impl Publisher {
    /// Connects the first link.
    pub(crate) async fn open(
        amqp: &AmqpSettings,
        name: String,
        counters: Arc<ServiceCounters>,
    ) -> Result<Self, ServiceError> {
        let link = Link::open(amqp, &name).await?;
        Ok(Self {
            amqp: amqp.clone(),
            name,
            counters,
            link: Mutex::new(Some(Arc::new(link))),
            reopening: tokio::sync::Mutex::new(()),
            lanes: RwLock::new(()),
        })
    }

    /// Publishes and waits for the broker's confirm, retrying nacks.
    pub(crate) async fn publish(&self, message: &Message<'_>) -> Result<(), PublishError> {
        let _shared = self.lanes.read().await;
        // Boxed: its state (lapin's publish and confirm futures, the liveness
        // timer) is 1.5 KB, and every future awaiting a publish would carry it
        // inline, several times over: a delivery's future was 8 KB, copied
        // twice per delivery (about a fifth of the consumer's instructions).
        Box::pin(self.publish_confirmed(message)).await
    }

    /// As [`publish`](Self::publish), once every other publish in flight has
    /// finished and with none starting meanwhile: a refusal now is this
    /// message's own.
    pub(crate) async fn publish_alone(&self, message: &Message<'_>) -> Result<(), PublishError> {
        let _exclusive = self.lanes.write().await;
        Box::pin(self.publish_confirmed(message)).await
    }

    async fn publish_confirmed(&self, message: &Message<'_>) -> Result<(), PublishError> {
        let mut delays = NACK_DELAYS.iter();
        loop {
            let link = self.link().await?;
            link.in_flight.fetch_add(1, Ordering::SeqCst);
            let publishing = async {
                link.channel
                    .basic_publish(
                        message.exchange.into(),
                        message.routing_key.into(),
                        BasicPublishOptions {
                            mandatory: message.mandatory,
                            ..BasicPublishOptions::default()
                        },
                        message.body,
                        message.properties.clone(),
                    )
                    .await?
                    .await
            };
            // A confirm registered in the instant the link closed may never be
            // settled by lapin: the link's state bounds the wait.
            let result = tokio::select! {
                biased;
                result = publishing => result,
                () = closed(|| link.channel.status().connected()) => {
                    link.in_flight.fetch_sub(1, Ordering::SeqCst);
                    self.retire(&link);
                    return Err(PublishError::Lost(ServiceError::ConnectionClosed {
                        which: "publishing",
                        doing: "waiting for a publisher confirm",
                    }));
                }
            };
            let confirmation = match result {
                Ok(confirmation) => {
                    link.in_flight.fetch_sub(1, Ordering::SeqCst);
                    confirmation
                }
                Err(error) => {
                    let in_flight = *link
                        .in_flight_at_failure
                        .get_or_init(|| link.in_flight.load(Ordering::SeqCst));
                    link.in_flight.fetch_sub(1, Ordering::SeqCst);
                    self.retire(&link);
                    return Err(if is_refusal(&error) {
                        PublishError::Refused {
                            error,
                            alone: in_flight == 1,
                        }
                    } else {
                        PublishError::Lost(broker("publishing")(error))
                    });
                }
            };
            match confirmation {
                Confirmation::Ack(None) | Confirmation::NotRequested => return Ok(()),
                Confirmation::Ack(Some(_returned)) => return Err(PublishError::Unroutable),
                Confirmation::Nack(_) => {
                    ServiceCounters::add(&self.counters.publish_nacks);
                    let Some(delay) = delays.next() else {
                        return Err(PublishError::Nacked);
                    };
                    tracing::warn!(
                        exchange = message.exchange,
                        routing_key = message.routing_key,
                        retry_in_ms = delay.as_millis(),
                        "the broker nacked a publish; retrying it"
                    );
                    tokio::time::sleep(*delay).await;
                }
            }
        }
    }

    /// The current link, or a new one when the broker closed the last.
    async fn link(&self) -> Result<Arc<Link>, PublishError> {
        if let Some(link) = self.usable() {
            return Ok(link);
        }
        let _one_at_a_time = self.reopening.lock().await;
        if let Some(link) = self.usable() {
            return Ok(link);
        }
        let link = Arc::new(
            Link::open(&self.amqp, &self.name)
                .await
                .map_err(PublishError::Lost)?,
        );
        ServiceCounters::add(&self.counters.publisher_reopened);
        tracing::info!(connection = %self.name, "publishing connection opened again");
        *self.slot() = Some(Arc::clone(&link));
        Ok(link)
    }

    fn usable(&self) -> Option<Arc<Link>> {
        self.slot()
            .as_ref()
            .filter(|link| link.channel.status().connected())
            .cloned()
    }

    /// Forgets a failed link (closing what the broker left open) so that the
    /// next publish opens a new one.
    fn retire(&self, failed: &Arc<Link>) {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|link| Arc::ptr_eq(link, failed)) {
            *slot = None;
            let link = Arc::clone(failed);
            tokio::spawn(async move { link.close().await });
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Link>>> {
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the broker is blocking the current publishing connection (a
    /// memory or disk alarm).
    pub(crate) fn blocked(&self) -> bool {
        self.slot()
            .as_ref()
            .is_some_and(|link| link.connection.status().blocked())
    }

    /// Closes the current link.
    pub(crate) async fn close(&self) {
        let link = self.slot().take();
        if let Some(link) = link {
            link.close().await;
        }
    }
}

impl Link {
    async fn open(amqp: &AmqpSettings, name: &str) -> Result<Self, ServiceError> {
        let connection = amqp::connect(amqp, name).await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(broker("opening the publishing channel"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broker("enabling publisher confirms"))?;
        Ok(Self {
            connection,
            channel,
            in_flight: AtomicUsize::new(0),
            in_flight_at_failure: OnceLock::new(),
        })
    }

    /// Closes the link, giving up after [`SERVICE_CLOSE_TIMEOUT`]
    /// (a blocked or lost connection never answers).
    async fn close(&self) {
        let closing = async {
            if let Err(error) = self.channel.close(200, "shutting down".into()).await {
                tracing::debug!(%error, "closing the publishing channel");
            }
            if let Err(error) = self.connection.close(200, "shutting down".into()).await {
                tracing::debug!(%error, "closing the publishing connection");
            }
        };
        if tokio::time::timeout(SERVICE_CLOSE_TIMEOUT, closing)
            .await
            .is_err()
        {
            tracing::debug!("the broker did not answer the publishing link's close in time");
        }
    }
}

/// The broker closed the channel or connection because of something sent on
/// it (any AMQP error of its own), as opposed to going away: a shutdown
/// (`CONNECTION_FORCED`), a lost socket or a missed heartbeat.
fn is_refusal(error: &lapin::Error) -> bool {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) => !matches!(
            e.kind(),
            AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED)
        ),
        _ => false,
    }
}
