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
//! Shutdown stops taking new deliveries, finishes the one in hand, cancels the
//! consumer and closes channels and connections.

mod failures;
mod handler;
mod plan;
mod session;

use std::{
    future::Future,
    io::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::{
    ErrorKind,
    protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError},
};
use tokio::sync::watch;

pub use handler::{Greeter, Handler, HandlerError};
pub use session::{INTERNAL_ERROR, REASON_HEADER};

use crate::{
    Settings,
    amqp::ConnectError,
    protocol::ReplyToPolicy,
    topology::{Topology, Word},
};
use failures::Failures;
use session::Session;

/// First reconnection delay; it doubles up to half of [`MAX_BACKOFF`], and a
/// random jitter of up to as much again is added to each delay.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two reconnection attempts, jitter included.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A session that lasted this long resets the backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);

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
}

impl ServiceError {
    /// Errors that retrying cannot fix: an invalid URL, refused credentials or
    /// permissions, a queue or exchange that exists with other arguments.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        let source = match self {
            Self::Connect(ConnectError::InvalidUrl(_)) => return true,
            Self::Connect(ConnectError::Unreachable { source, .. }) => source,
            Self::Broker { source, .. } => source,
            Self::Connect(ConnectError::TimedOut { .. }) | Self::ConsumerEnded => return false,
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

/// Where a service writes its `W NAME` lines (stdout unless replaced).
pub type Printer = Arc<dyn Fn(&str) + Send + Sync>;

/// What every session of one service shares.
pub(crate) struct Shared {
    settings: Settings,
    word: Word,
    topology: Topology,
    queue: String,
    policy: ReplyToPolicy,
    handler: Arc<dyn Handler>,
    printer: Printer,
    failures: Mutex<Failures>,
}

/// A consumer service for one word. Build it, optionally replace its handler
/// or printer, then [`run`](Self::run) it.
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
    /// A service answering for `word` with the [`Greeter`], printing to stdout.
    #[must_use]
    pub fn new(settings: &Settings, word: Word) -> Self {
        let topology = Topology::new(&settings.topology.prefix);
        Self {
            shared: Shared {
                queue: topology.queue(&word),
                policy: ReplyToPolicy::new(&settings.reply_prefix()),
                settings: settings.clone(),
                word,
                topology,
                handler: Arc::new(Greeter),
                printer: Arc::new(print_line),
                failures: Mutex::new(Failures::default()),
            },
            sessions: watch::Sender::new(0),
            losses: watch::Sender::new(0),
        }
    }

    /// Replaces the handler that turns a name into a greeting.
    #[must_use]
    pub fn with_handler(mut self, handler: impl Handler) -> Self {
        self.shared.handler = Arc::new(handler);
        self
    }

    /// Sends the `W NAME` lines to `printer` instead of stdout.
    #[must_use]
    pub fn with_printer(mut self, printer: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.shared.printer = Arc::new(printer);
        self
    }

    /// How many sessions have started consuming so far: 1 once the service is
    /// up, one more after each recovery.
    #[must_use]
    pub fn sessions(&self) -> watch::Receiver<u64> {
        self.sessions.subscribe()
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
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServiceError> {
        tokio::pin!(shutdown);
        let builder = ExponentialBuilder::default()
            .with_min_delay(MIN_BACKOFF)
            // backon's jitter adds up to 100% of the delay: cap at half.
            .with_max_delay(MAX_BACKOFF / 2)
            .with_jitter()
            .without_max_times();
        let mut backoff = builder.build();
        loop {
            let opened = tokio::select! {
                opened = Session::open(&self.shared) => opened,
                () = &mut shutdown => return Ok(()),
            };
            let error = match opened {
                Ok(session) => {
                    self.sessions.send_modify(|n| *n += 1);
                    let started = Instant::now();
                    match session.serve(&self.shared, &mut shutdown).await {
                        Ok(()) => {
                            tracing::info!(queue = %self.shared.queue, "stopped");
                            return Ok(());
                        }
                        Err(error) => {
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
                return Err(error);
            }
            let delay = backoff.next().unwrap_or(MAX_BACKOFF);
            tracing::warn!(
                error = %error,
                error.chain = ?anyhow_chain(&error),
                retry_in_ms = delay.as_millis(),
                queue = %self.shared.queue,
                "broker session lost; reconnecting"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = &mut shutdown => return Ok(()),
            }
        }
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

/// Runs a consumer service for `word` until `shutdown`.
///
/// # Errors
/// As [`ConsumerService::run`].
pub async fn run(
    settings: &Settings,
    word: Word,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    ConsumerService::new(settings, word).run(shutdown).await
}
