//! An RPC client that survives a lost connection, and whose calls still end by
//! their own deadline.
//!
//! One background task reconnects (capped exponential backoff with jitter) and
//! publishes each new [`RpcClient`] through a `watch` channel, `None` while it
//! reconnects; no lock is ever held across an await, so nothing a call waits
//! for can outlast its deadline. The task is started by the first call that
//! sees the loss and ends once connected, or when the client is closed.
//!
//! A call computes its deadline once. A call that finds no connection waits
//! for one, until that deadline. A call whose connection is lost under it is
//! sent again (keeping its correlation id) up to `retries` times, each time
//! with the time left as its timeout, so the request's `expiration` is the
//! time left too. Resending is safe because consumers are idempotent and the
//! caller keeps one reply per consumer: should both attempts be answered, the
//! second answer is counted as a duplicate, never shown twice.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{sync::watch, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use serde::{Serialize, de::DeserializeOwned};

use super::{
    client::RpcClient,
    correlation::CorrelationId,
    error::RpcError,
    gathered::Gathered,
    stats::{Counters, Stats},
    typed::{encode_item, encode_items, only_decoded},
    until::Until,
};
use crate::{
    backoff::{CLIENT_RECONNECT_MAX_DELAY, ReconnectBackoff},
    protocol::{self, Contract, Json},
    report::one_line,
    settings::Settings,
};

/// Pause before resending a request the broker nacked (on a new
/// connection), within the call's deadline.
pub const NACK_RETRY_DELAY: Duration = Duration::from_millis(50);

/// How often a retired connection is checked for calls still in flight.
const DRAIN_CHECK: Duration = Duration::from_millis(50);

/// Whether a connection taken out of use still carries calls to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Lost: its calls have failed already; close it at once.
    No,
    /// Retired after a nack: its calls in flight end on it first.
    Yes,
}

/// See the module docs.
#[derive(Debug)]
pub struct ReconnectingClient {
    shared: Arc<Shared>,
}

/// What the calls and the reconnection task share.
#[derive(Debug)]
struct Shared {
    settings: Settings,
    contract: Contract,
    /// The client calls use; `None` while reconnecting and once closed.
    current: watch::Sender<Option<Arc<RpcClient>>>,
    /// Shared by every connection this client makes.
    counters: Arc<Counters>,
    retries: AtomicU64,
    reconnects: AtomicU64,
    /// Connections lost so far, and how many of those losses were logged:
    /// a loss is logged once, however many calls it makes resend.
    losses: AtomicU64,
    reported: AtomicU64,
    /// Cancelled by [`ReconnectingClient::close`].
    closed: CancellationToken,
    /// The reconnection task, when one runs.
    reconnector: TaskTracker,
}

impl ReconnectingClient {
    /// The largest batch body this client sends: the smaller of the
    /// contract's limit and the broker's (`amqp.max_message_size`).
    #[must_use]
    pub fn max_batch_bytes(&self) -> usize {
        protocol::max_batch_bytes(
            &self.shared.contract,
            self.shared.settings.amqp.max_message_size,
        )
    }

    /// The contract this client encodes requests and decodes replies with.
    #[must_use]
    pub fn contract(&self) -> &Contract {
        &self.shared.contract
    }

    /// Connects the first client, on the envelope's default [`Contract`].
    ///
    /// # Errors
    /// As [`RpcClient::connect`]: the first connection is not retried, so a
    /// wrong URL or an unreachable broker fails at once.
    pub async fn connect(settings: &Settings) -> Result<Self, RpcError> {
        Self::connect_with(settings, Contract::DEFAULT).await
    }

    /// [`connect`](Self::connect) for a route whose services use `contract`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(settings: &Settings, contract: Contract) -> Result<Self, RpcError> {
        let counters = Arc::new(Counters::default());
        let client = RpcClient::connect_counting(settings, contract, Arc::clone(&counters)).await?;
        let (current, _) = watch::channel(Some(Arc::new(client)));
        Ok(Self {
            shared: Arc::new(Shared {
                settings: settings.clone(),
                contract,
                current,
                counters,
                retries: AtomicU64::new(0),
                reconnects: AtomicU64::new(0),
                losses: AtomicU64::new(0),
                reported: AtomicU64::new(0),
                closed: CancellationToken::new(),
                reconnector: TaskTracker::new(),
            }),
        })
    }

    /// Like [`RpcClient::call`], but every attempt ends by one deadline,
    /// `timeout` from now: waiting for a connection (when a reconnection is
    /// under way) and each resend after a lost connection or a nack (up to
    /// `retries` times in all; after a nack, on a new connection after
    /// [`NACK_RETRY_DELAY`]) happen within it, each resend with the time left as its
    /// timeout.
    ///
    /// # Errors
    /// As [`RpcClient::call`]; [`RpcError::ConnectionLost`] or
    /// [`RpcError::Nacked`] once the retries are used up, when the deadline
    /// passes with no connection, or once the client is closed.
    pub async fn call<Q, R>(
        &self,
        request: &Q,
        until: impl Into<Until>,
        timeout: Duration,
        retries: u32,
    ) -> Result<Gathered<R>, RpcError>
    where
        Q: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let item = encode_item(request)?;
        let until = until.into();
        let gathered = self
            .call_json(std::slice::from_ref(&item), &until, timeout, retries)
            .await?;
        Ok(only_decoded(gathered, &until))
    }

    /// [`RpcClient::call_batch`] with the reconnection, deadline and
    /// retries of [`call`](Self::call): a batch is resent whole, keeping
    /// its correlation id, so each request still gets exactly one result (a
    /// responder answering both attempts is counted as a duplicate).
    ///
    /// # Errors
    /// [`RpcError::InvalidBatch`] at once, before anything is sent or any
    /// connection awaited; else as [`call`](Self::call).
    pub async fn call_batch<Q, R>(
        &self,
        requests: &[Q],
        until: impl Into<Until>,
        timeout: Duration,
        retries: u32,
    ) -> Result<Vec<Gathered<R>>, RpcError>
    where
        Q: Serialize,
        R: DeserializeOwned,
    {
        let items = encode_items(requests)?;
        let gathered = self
            .call_json(&items, &until.into(), timeout, retries)
            .await?;
        Ok(gathered.into_iter().map(Gathered::decode).collect())
    }

    /// [`call_batch`](Self::call_batch) of requests already encoded, the
    /// answers left as JSON.
    ///
    /// # Errors
    /// As [`call_batch`](Self::call_batch).
    pub async fn call_json(
        &self,
        items: &[Json],
        until: &Until,
        timeout: Duration,
        retries: u32,
    ) -> Result<Vec<Gathered>, RpcError> {
        protocol::check_batch_within(
            &self.shared.contract,
            items,
            self.shared.settings.amqp.max_message_size,
        )?;
        let deadline = Instant::now() + timeout;
        let correlation_id = CorrelationId::new();
        let mut attempt = 0;
        loop {
            let client = self.connected(deadline).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            match client.call_json(correlation_id, items, until, left).await {
                Err(RpcError::ConnectionLost(cause)) => {
                    self.shared.lost(&client);
                    if attempt >= retries || Instant::now() >= deadline {
                        return Err(RpcError::ConnectionLost(cause));
                    }
                    attempt += 1;
                    self.shared.retries.fetch_add(1, Ordering::Relaxed);
                    self.shared.report_loss(cause.as_ref());
                    tracing::debug!(
                        %correlation_id, attempt, retries,
                        cause = cause.as_ref().map(ToString::to_string),
                        "connection lost during a call; retrying"
                    );
                }
                // Not stored by every queue: a full one, or a quorum queue
                // that lost its leader, after which RabbitMQ 3.10 went on
                // nacking every publish on that channel (seen in the cluster
                // tests). Resent on a new connection; the nacking one is
                // retired, not failed: the other calls in flight on it were
                // stored, and end there (resending them would duplicate them,
                // and fail those with no retry left as "connection lost").
                Err(RpcError::Nacked) => {
                    if attempt >= retries || Instant::now() >= deadline {
                        return Err(RpcError::Nacked);
                    }
                    attempt += 1;
                    self.shared.retries.fetch_add(1, Ordering::Relaxed);
                    self.shared.retire(&client);
                    tracing::debug!(%correlation_id, attempt, retries, "the broker nacked the request; resending it on a new connection");
                    tokio::time::sleep(
                        NACK_RETRY_DELAY.min(deadline.saturating_duration_since(Instant::now())),
                    )
                    .await;
                }
                other => return other,
            }
        }
    }

    /// A usable client, waiting for the reconnection until `deadline` if there
    /// is none; starts the reconnection if this call is the first to see the
    /// loss.
    async fn connected(&self, deadline: Instant) -> Result<Arc<RpcClient>, RpcError> {
        if let Some(client) = self.shared.current.borrow().as_ref()
            && !client.is_connection_lost()
        {
            return Ok(Arc::clone(client));
        }
        let mut current = self.shared.current.subscribe();
        loop {
            // Cloned out, so that the watch is not borrowed while `lost`
            // replaces its value.
            let client = current.borrow_and_update().clone();
            match client {
                Some(client) if !client.is_connection_lost() => return Ok(client),
                Some(client) => self.shared.lost(&client),
                None => {}
            }
            tokio::select! {
                () = self.shared.closed.cancelled() => return Err(RpcError::ConnectionLost(None)),
                () = tokio::time::sleep_until(deadline) => return Err(RpcError::ConnectionLost(None)),
                // The sender lives as long as `self`: this cannot fail.
                _ = current.changed() => {}
            }
        }
    }

    /// The responders live now, as [`RpcClient::responders`] says, on the
    /// current connection (waited for until `timeout` when a reconnection
    /// is under way).
    ///
    /// # Errors
    /// As [`RpcClient::responders`].
    pub async fn responders(
        &self,
        timeout: Duration,
        stall: Duration,
    ) -> Result<Vec<String>, RpcError> {
        let deadline = Instant::now() + timeout;
        let client = self.connected(deadline).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        let live = client.responders(left, stall).await;
        if let Err(RpcError::ConnectionLost(_)) = &live {
            self.shared.lost(&client);
        }
        live
    }

    /// Counters over every connection this client has used.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let current = self.shared.current.borrow().clone();
        let now = current.map(|c| c.stats()).unwrap_or_default();
        let counters = &self.shared.counters;
        Stats {
            retries: self.shared.retries.load(Ordering::Relaxed),
            reconnects: self.shared.reconnects.load(Ordering::Relaxed),
            stray: counters.stray.load(Ordering::Relaxed),
            duplicates: counters.duplicates.load(Ordering::Relaxed),
            malformed: counters.malformed.load(Ordering::Relaxed),
            in_flight: now.in_flight,
            blocked: now.blocked,
        }
    }

    /// Whether the background reconnection task is running (a loss was seen
    /// and no new connection is made yet).
    #[must_use]
    pub fn is_reconnecting(&self) -> bool {
        !self.shared.reconnector.is_empty()
    }

    /// Stops the reconnection task, if one runs, then closes the current
    /// connection. Calls waiting for a connection fail at once with
    /// [`RpcError::ConnectionLost`], and so do later calls.
    pub async fn close(&self) {
        self.shared.closed.cancel();
        self.shared.reconnector.close();
        // Bounded: the task stops connecting at once, and closing the lost
        // connection is bounded by `CLIENT_CLOSE_TIMEOUT`.
        self.shared.reconnector.wait().await;
        if let Some(client) = self.shared.current.send_replace(None) {
            client.close().await;
        }
    }
}

impl Shared {
    /// Takes `failed` out of use and starts the reconnection task, unless
    /// another call already did.
    fn lost(self: &Arc<Self>, failed: &Arc<RpcClient>) {
        self.replace(failed, Drain::No);
    }

    /// Takes `client` out of use for new calls (a new connection is made for
    /// them) and closes it once the calls in flight on it have ended.
    fn retire(self: &Arc<Self>, client: &Arc<RpcClient>) {
        self.replace(client, Drain::Yes);
    }

    fn replace(self: &Arc<Self>, failed: &Arc<RpcClient>, drain: Drain) {
        let taken = self.current.send_if_modified(|current| {
            let ours = current.as_ref().is_some_and(|c| Arc::ptr_eq(c, failed));
            if ours {
                *current = None;
            }
            ours
        });
        if taken {
            let shared = Arc::clone(self);
            let failed = Arc::clone(failed);
            match drain {
                Drain::No => {
                    self.losses.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("reconnecting to the broker in the background");
                }
                Drain::Yes => tracing::info!(
                    "the broker nacked a request; new calls go to a new connection while the \
                     calls in flight end on this one"
                ),
            }
            self.reconnector.spawn(shared.reconnect(failed, drain));
        }
    }

    /// Logs the loss that made a call resend, once per loss (a line per call
    /// would flood stderr with many calls in flight). A loss no call resends
    /// after is for the caller to report, with the call's error.
    fn report_loss(&self, cause: Option<&lapin::Error>) {
        let loss = self.losses.load(Ordering::Relaxed);
        if self.reported.swap(loss, Ordering::Relaxed) != loss {
            let cause = cause.map_or_else(|| "no cause given".to_owned(), |e| one_line(e));
            tracing::warn!(
                "the connection to the broker was lost ({cause}); \
                 resending the calls in flight on a new connection"
            );
        }
    }

    /// Closes `failed` while connecting anew (until connected or closed),
    /// then publishes the new client. With [`Drain::Yes`] the close waits
    /// until no call is in flight on `failed` any more (each ends by its
    /// deadline, at most `rpc.timeout` from now).
    async fn reconnect(self: Arc<Self>, failed: Arc<RpcClient>, drain: Drain) {
        let replacement = async {
            tokio::select! {
                () = self.closed.cancelled() => None,
                client = self.connect_with_backoff() => Some(client),
            }
        };
        let retiring = async {
            if drain == Drain::Yes {
                let drained = async {
                    let mut every = tokio::time::interval(DRAIN_CHECK);
                    while failed.stats().in_flight > 0 && !failed.is_connection_lost() {
                        every.tick().await;
                    }
                };
                tokio::select! {
                    () = drained => {}
                    () = tokio::time::sleep(self.settings.rpc.timeout) => {}
                    () = self.closed.cancelled() => {}
                }
            }
            failed.close().await;
        };
        let (replacement, ()) = tokio::join!(replacement, retiring);
        let Some(client) = replacement else {
            return;
        };
        if self.closed.is_cancelled() {
            client.close().await;
            return;
        }
        self.current.send_replace(Some(Arc::new(client)));
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        tracing::info!("reconnected to the broker");
    }

    /// Connects, waiting a capped exponential backoff with jitter between
    /// attempts, for as long as it takes.
    async fn connect_with_backoff(&self) -> RpcClient {
        let mut backoff = ReconnectBackoff::new(CLIENT_RECONNECT_MAX_DELAY);
        let mut attempt: u64 = 0;
        loop {
            attempt += 1;
            match RpcClient::connect_counting(
                &self.settings,
                self.contract,
                Arc::clone(&self.counters),
            )
            .await
            {
                Ok(client) => return client,
                Err(error) => {
                    let delay = backoff.next().unwrap_or(CLIENT_RECONNECT_MAX_DELAY);
                    tracing::debug!(
                        error = %error, error.chain = ?error, attempt,
                        retry_in_ms = delay.as_millis(),
                        "cannot reconnect yet"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}
