//! An RPC client that survives a lost connection: calls that fail with
//! [`RpcError::ConnectionLost`] are retried (keeping their correlation id) on
//! a new connection, up to a given number of times.
//!
//! Retrying is safe because consumers are idempotent and the caller keeps one
//! reply per consumer: should both the first attempt and the retry be
//! answered, the second answer is counted as a duplicate, never shown twice.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::{sync::Mutex, time::Instant};

use super::{CorrelationId, Gathered, RpcClient, RpcError, Stats};
use crate::{Settings, protocol::Name};

/// How long one reconnection may keep trying before the retried call fails.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(60);

/// See the module docs.
#[derive(Debug)]
pub struct ReconnectingClient {
    settings: Settings,
    current: Mutex<Arc<RpcClient>>,
    /// Counters of the clients already replaced.
    retired: std::sync::Mutex<Stats>,
    retries: AtomicU64,
    reconnects: AtomicU64,
}

impl ReconnectingClient {
    /// Connects the first client.
    ///
    /// # Errors
    /// As [`RpcClient::connect`]: the first connection is not retried, so a
    /// wrong URL fails at once.
    pub async fn connect(settings: &Settings) -> Result<Self, RpcError> {
        let client = RpcClient::connect(settings).await?;
        Ok(Self {
            settings: settings.clone(),
            current: Mutex::new(Arc::new(client)),
            retired: std::sync::Mutex::new(Stats::default()),
            retries: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        })
    }

    /// Like [`RpcClient::call`], retrying up to `retries` times after a lost
    /// connection. Each attempt has the full `timeout`.
    ///
    /// # Errors
    /// As [`RpcClient::call`]; [`RpcError::ConnectionLost`] once the retries
    /// are used up or no new connection could be made within [`RECONNECT_WINDOW`].
    pub async fn call(
        &self,
        name: &Name,
        expect: &[String],
        timeout: Duration,
        retries: u32,
    ) -> Result<Gathered, RpcError> {
        let correlation_id = CorrelationId::new();
        let mut attempt = 0;
        loop {
            let client = Arc::clone(&*self.current.lock().await);
            match client
                .call_with_id(correlation_id, name, expect, timeout)
                .await
            {
                Err(RpcError::ConnectionLost(cause)) if attempt < retries => {
                    attempt += 1;
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        %correlation_id, attempt, retries,
                        cause = cause.as_ref().map(ToString::to_string),
                        "connection lost during a call; retrying"
                    );
                    self.reconnect(&client).await?;
                }
                other => return other,
            }
        }
    }

    /// Replaces `failed` with a new client, unless another call already did.
    async fn reconnect(&self, failed: &Arc<RpcClient>) -> Result<(), RpcError> {
        let mut current = self.current.lock().await;
        if !Arc::ptr_eq(&current, failed) {
            return Ok(());
        }
        let deadline = Instant::now() + RECONNECT_WINDOW;
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(2))
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            match RpcClient::connect(&self.settings).await {
                Ok(client) => {
                    let old = std::mem::replace(&mut *current, Arc::new(client));
                    self.retire(&old);
                    old.close().await;
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("reconnected to the broker");
                    return Ok(());
                }
                Err(error) if error.is_connection_error() && Instant::now() < deadline => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(2));
                    tracing::warn!(%error, retry_in_ms = delay.as_millis(), "cannot reconnect yet");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => {
                    tracing::error!(%error, "giving up reconnecting");
                    return Err(RpcError::ConnectionLost(None));
                }
            }
        }
    }

    fn retire(&self, client: &RpcClient) {
        let old = client.stats();
        let mut retired = self
            .retired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        retired.stray += old.stray;
        retired.duplicates += old.duplicates;
        retired.malformed += old.malformed;
    }

    /// Counters over every connection this client has used.
    pub async fn stats(&self) -> Stats {
        let now = self.current.lock().await.stats();
        let retired = *self
            .retired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Stats {
            retries: self.retries.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            stray: retired.stray + now.stray,
            duplicates: retired.duplicates + now.duplicates,
            malformed: retired.malformed + now.malformed,
            in_flight: now.in_flight,
            blocked: now.blocked,
        }
    }

    /// Closes the current connection.
    pub async fn close(&self) {
        self.current.lock().await.close().await;
    }
}
