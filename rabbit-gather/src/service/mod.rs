//! The consumer runtime: one service per greeting word, answering requests
//! from its queue (wire contract v1), and healing itself after broker faults.
//!
//! Prefetch is configurable (default 1) and acks are manual: a request is
//! acked only after its reply has been confirmed by the broker, so a crash at
//! any point leaves it to be redelivered, never lost.
//!
//! The service is a supervisor loop around [`session::Session`]s: when the
//! connection or a channel drops (broker restart, network cut, channel closed
//! by the broker) the session ends, and a new one is opened after a capped
//! exponential backoff with jitter, re-declaring the topology. The service
//! never exits on a broker outage, only on shutdown or on an error that
//! retrying cannot fix (bad URL, refused credentials, conflicting topology).
//!
//! Shutdown stops taking new deliveries, finishes the ones in hand, cancels
//! the consumer and closes channels and connections. A broker failure while
//! draining ends the service too (the deliveries in hand go back to their
//! queue with the connection): shutdown is asked after every session.

mod counters;
mod delivery;
mod handler;
mod health;
mod plan;
mod publisher;
mod returns;
mod session;

use std::{
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::{
    ErrorKind,
    protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError},
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use counters::{ServiceCounters, ServiceStats};
pub use handler::{Context, Greeter, Handler, HandlerError, Retry};
pub use health::{Health, Phase};

use crate::{
    Settings,
    amqp::ConnectError,
    protocol::{Contract, Json, ReplyToPolicy},
    topology::{Topology, Word},
};
use handler::{DynHandler, Typed};
use session::Session;

/// First reconnection delay; it doubles up to half of [`MAX_BACKOFF`], and a
/// random jitter of up to as much again is added to each delay.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two reconnection attempts, jitter included.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A session that lasted this long resets the backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);
/// How often work waiting on the broker (a delivery in hand, a publisher
/// confirm) checks that lapin still reports its connection open.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(250);
/// How often a session proves its consuming connection alive with a round
/// trip (a `basic.qos` with the same prefetch), and how long the broker has
/// to answer. lapin can lose a connection without reporting it (seen after a
/// broker `stop_app` or restart: its I/O thread gone, the connection still
/// "connected", the consumer stream never ending, 1 time in 10 to 15); the
/// probe ends such a session within [`PROBE_INTERVAL`] + [`PROBE_TIMEOUT`].
/// The consuming connection never publishes, so a memory alarm does not
/// block it and cannot fail the probe.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// See [`PROBE_INTERVAL`].
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the broker to answer a session's close (cancel, channel
/// and connection closes); then the connections are dropped. Without it a
/// session whose connection lapin lost silently, or whose publishing
/// connection an alarm blocks, would never end.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest time opening a session may take (connections, topology,
/// consumer) before it is abandoned and retried.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the service stopped other than by a shutdown signal, or why a session
/// ended (logged, then retried unless [`ServiceError::is_fatal`]).
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
    /// A connection was found closed while work on it was still waiting for
    /// the broker (see [`LIVENESS_CHECK`]).
    #[error("the {which} connection closed while {doing}")]
    ConnectionClosed {
        /// `consuming` or `publishing`.
        which: &'static str,
        /// What was waiting on it.
        doing: &'static str,
    },
    /// Opening a session (connections, topology, consumer) took longer than
    /// [`OPEN_TIMEOUT`].
    #[error("opening a session took longer than {0:?}")]
    OpenTimedOut(Duration),
}

impl ServiceError {
    /// Errors that retrying cannot fix: an invalid URL, refused credentials or
    /// permissions, a queue or exchange that exists with other arguments.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        let source = match self {
            Self::Connect(
                ConnectError::InvalidUrl(_)
                | ConnectError::TlsFile { .. }
                | ConnectError::PasswordFile { .. }
                | ConnectError::TlsWithoutAmqps,
            ) => return true,
            Self::Connect(ConnectError::Unreachable { source, .. }) => source,
            Self::Broker { source, .. } => source,
            Self::Connect(ConnectError::TimedOut { .. })
            | Self::ConsumerEnded
            | Self::ConnectionClosed { .. }
            | Self::OpenTimedOut(_) => return false,
        };
        match source.kind() {
            ErrorKind::ProtocolError(error) => matches!(
                error.kind(),
                AMQPErrorKind::Soft(
                    AMQPSoftError::ACCESSREFUSED | AMQPSoftError::PRECONDITIONFAILED
                ) | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED)
            ),
            _ => false,
        }
    }
}

pub(crate) fn broker(doing: &'static str) -> impl FnOnce(lapin::Error) -> ServiceError {
    move |source| ServiceError::Broker { doing, source }
}

/// Where a service writes a line per answer (greetings' `W NAME` lines on
/// stdout; none unless set).
type Printer = Arc<dyn Fn(&Json) + Send + Sync>;

/// What every session of one service shares.
pub(crate) struct Shared {
    settings: Settings,
    word: Word,
    topology: Topology,
    queue: String,
    /// Where the word's retries come back (consumed with `queue`).
    due_queue: String,
    retry_exchange: String,
    reply_exchange: String,
    policy: ReplyToPolicy,
    /// The envelope's fields and limits.
    contract: Contract,
    handler: Arc<dyn DynHandler>,
    printer: Option<Printer>,
    counters: Arc<ServiceCounters>,
    health: Arc<Health>,
    /// Requests handed back to their queue because a copy failed.
    returns: returns::Returns,
}

/// A service answering requests for one responder name (its word) on one
/// route (`topology.prefix`): build it with its handler, then
/// [`run`](Self::run) it.
pub struct ConsumerService {
    shared: Shared,
    sessions: watch::Sender<u64>,
    losses: watch::Sender<u64>,
}

impl std::fmt::Debug for ConsumerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerService")
            .field("word", &self.shared.word)
            .field("queue", &self.shared.queue)
            .finish_non_exhaustive()
    }
}

impl ConsumerService {
    /// A service answering for `word` with `handler`, on the envelope's
    /// default [`Contract`]. Requests that do not decode as `Q` get an
    /// `invalid_request` error; answers are encoded from `R`.
    #[must_use]
    pub fn new<Q, R>(settings: &Settings, word: Word, handler: impl Handler<Q, R>) -> Self
    where
        Q: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
    {
        let topology = Topology::from_settings(&settings.topology)
            .with_delivery_limit(settings.consumer.max_failures);
        Self {
            shared: Shared {
                queue: topology.queue(&word),
                due_queue: topology.due_queue(&word),
                retry_exchange: topology.retry_exchange(&word),
                reply_exchange: topology.reply_exchange(),
                policy: if settings.consumer.direct_reply_to {
                    ReplyToPolicy::new(&settings.reply_prefix())
                } else {
                    ReplyToPolicy::reply_queues_only(&settings.reply_prefix())
                },
                settings: settings.clone(),
                word,
                topology,
                contract: Contract::DEFAULT,
                handler: Arc::new(Typed::new(handler)),
                printer: None,
                counters: Arc::default(),
                health: Arc::default(),
                returns: returns::Returns::default(),
            },
            sessions: watch::Sender::new(0),
            losses: watch::Sender::new(0),
        }
    }

    /// Greetings' service for `word`: the [`Greeter`] on
    /// [`Contract::GREETINGS`], printing each greeting on stdout.
    #[must_use]
    pub fn greetings(settings: &Settings, word: Word) -> Self {
        Self::new(settings, word, Greeter)
            .with_contract(Contract::GREETINGS)
            .with_printer(print_line)
    }

    /// Replaces the handler, keeping the contract.
    #[must_use]
    pub fn with_handler<Q, R>(mut self, handler: impl Handler<Q, R>) -> Self
    where
        Q: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
    {
        // Stored type-erased: `Handler` returns `impl Future`.
        self.shared.handler = Arc::new(Typed::new(handler));
        self
    }

    /// Uses `contract`'s fields and limits (the clients of the route must
    /// use the same).
    ///
    /// # Panics
    /// When `contract` is not [valid](Contract::validate): it is written in
    /// code, so that is a programming error.
    #[must_use]
    pub fn with_contract(mut self, contract: Contract) -> Self {
        if let Err(why) = contract.validate() {
            panic!("{why}");
        }
        self.shared.contract = contract;
        self
    }

    /// Calls `printer` with each answer (a JSON string's text, or the JSON of
    /// any other answer), once handled and before it is sent.
    #[must_use]
    pub fn with_printer(mut self, printer: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.shared.printer = Some(Arc::new(move |answer: &Json| {
            match answer.decode::<String>() {
                Ok(text) => printer(&text),
                Err(_) => printer(answer.as_str()),
            }
        }));
        self
    }

    /// How many sessions have started consuming so far: 1 once the service is
    /// up, one more after each recovery.
    #[must_use]
    pub fn sessions(&self) -> watch::Receiver<u64> {
        self.sessions.subscribe()
    }

    /// The service's counters (live; take a
    /// [`snapshot`](ServiceCounters::snapshot)).
    #[must_use]
    pub fn counters(&self) -> Arc<ServiceCounters> {
        Arc::clone(&self.shared.counters)
    }

    /// The service's readiness (live), for a `/readyz` endpoint.
    #[must_use]
    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.shared.health)
    }

    /// The word this service answers for.
    #[must_use]
    pub fn word(&self) -> &Word {
        &self.shared.word
    }

    /// How many sessions have ended with a broker fault so far.
    #[must_use]
    pub fn losses(&self) -> watch::Receiver<u64> {
        self.losses.subscribe()
    }

    /// Answers requests until `shutdown` completes, reconnecting after broker
    /// faults, then stops gracefully.
    ///
    /// # Errors
    /// Only a [fatal](ServiceError::is_fatal) error ends the service.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServiceError> {
        let builder = ExponentialBuilder::default()
            .with_min_delay(MIN_BACKOFF)
            // backon's jitter adds up to 100% of the delay: cap at half.
            .with_max_delay(MAX_BACKOFF / 2)
            .with_jitter()
            .without_max_times();
        let mut backoff = builder.build();
        let mut connected_once = false;
        let health = &self.shared.health;
        let result = loop {
            let opened = tokio::select! {
                opened = tokio::time::timeout(OPEN_TIMEOUT, Session::open(&self.shared)) => {
                    opened.unwrap_or(Err(ServiceError::OpenTimedOut(OPEN_TIMEOUT)))
                }
                () = shutdown.cancelled() => break Ok(()),
            };
            let error = match opened {
                Ok(session) => {
                    if connected_once {
                        ServiceCounters::add(&self.shared.counters.reconnects);
                    }
                    connected_once = true;
                    health.set(Phase::Consuming);
                    self.sessions.send_modify(|n| *n += 1);
                    let started = Instant::now();
                    match session.serve(&self.shared, &shutdown).await {
                        Ok(()) => break Ok(()),
                        Err(error) => {
                            health.set(if shutdown.is_cancelled() {
                                Phase::Draining
                            } else {
                                Phase::Reconnecting
                            });
                            health.set_blocked(false);
                            self.losses.send_modify(|n| *n += 1);
                            if started.elapsed() >= HEALTHY_SESSION {
                                backoff = builder.build();
                            }
                            error
                        }
                    }
                }
                Err(error) => error,
            };
            if error.is_fatal() {
                break Err(error);
            }
            if shutdown.is_cancelled() {
                tracing::warn!(
                    error = %error,
                    queue = %self.shared.queue,
                    "broker lost while stopping; the requests in hand go back to their queue"
                );
                break Ok(());
            }
            let delay = backoff.next().unwrap_or(MAX_BACKOFF);
            let what = if connected_once {
                "broker session lost; reconnecting"
            } else {
                "cannot reach the broker yet; retrying"
            };
            tracing::warn!(
                error = %error,
                error.chain = ?anyhow_chain(&error),
                retry_in_ms = delay.as_millis(),
                queue = %self.shared.queue,
                "{what}"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => break Ok(()),
            }
        };
        health.set(Phase::Stopped);
        let stats = self.shared.counters.snapshot();
        if connected_once {
            tracing::info!(queue = %self.shared.queue, ?stats, "stopped");
        } else {
            // Never connected: the caller reports why, in one line.
            tracing::debug!(queue = %self.shared.queue, "stopped before connecting");
        }
        result
    }
}

/// Resolves once `connected` turns false, checking every [`LIVENESS_CHECK`].
pub(crate) async fn closed(connected: impl Fn() -> bool) {
    let mut every = tokio::time::interval(LIVENESS_CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while connected() {
        every.tick().await;
    }
}

/// The error's causes, innermost last, for structured logs.
fn anyhow_chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut chain = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    chain
}

/// Prints `W NAME` on stdout, one whole line per request. A closed stdout is
/// logged, not fatal: the reply matters more than the print.
fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(error) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        tracing::warn!(%error, "cannot write to stdout");
    }
}

/// Runs greetings' service for `word` until `shutdown`.
///
/// # Errors
/// As [`ConsumerService::run`].
pub async fn run(
    settings: &Settings,
    word: Word,
    shutdown: CancellationToken,
) -> Result<(), ServiceError> {
    ConsumerService::greetings(settings, word)
        .run(shutdown)
        .await
}
