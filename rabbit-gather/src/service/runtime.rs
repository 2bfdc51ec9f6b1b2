//! [`ConsumerService`]: a service for one responder name, built with its
//! handler, and its supervisor loop: open a session, serve until it ends,
//! reconnect after a backoff, until shutdown or an error no retry can fix.

use std::{
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    counters::ServiceCounters,
    error::ServiceError,
    handler::{Greeter, Handler, Typed},
    health::{Health, Phase},
    returns::Returns,
    session::Session,
    shared::Shared,
};
use crate::{
    backoff::{ReconnectBackoff, SERVICE_RECONNECT_MAX_DELAY},
    protocol::{Contract, Json, ReplyToPolicy},
    settings::Settings,
    topology::{Topology, Word},
};

/// A session that lasted this long resets the backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);
/// Longest time opening a session may take (connections, topology,
/// consumer) before it is abandoned and retried.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

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
                returns: Returns::default(),
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
        let mut backoff = ReconnectBackoff::new(SERVICE_RECONNECT_MAX_DELAY);
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
                                backoff = ReconnectBackoff::new(SERVICE_RECONNECT_MAX_DELAY);
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
            let delay = backoff.next().unwrap_or(SERVICE_RECONNECT_MAX_DELAY);
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
            tracing::info!(
                queue = %self.shared.queue,
                answered = stats.ok,
                dead_lettered = stats.dead_lettered,
                retries_scheduled = stats.retries_scheduled,
                redeliveries = stats.redeliveries,
                reconnects = stats.reconnects,
                "stopped"
            );
        } else {
            // Never connected: the caller reports why, in one line.
            tracing::debug!(queue = %self.shared.queue, "stopped before connecting");
        }
        result
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
