//! An RPC client's background task: routes each reply to the call waiting
//! for it, watches the connection (lapin's events and a liveness probe),
//! and fails every call in flight at once when the connection is lost.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use futures::StreamExt;
use lapin::{Channel, Consumer, Event, message::Delivery};

use super::{
    correlation::CorrelationId,
    pending::{Delivered, Pending},
    stats::Counters,
};
use crate::{
    protocol::{self, Contract},
    timing::{LIVENESS_PROBE_INTERVAL, LIVENESS_PROBE_TIMEOUT},
};

/// Proves the connection alive with a round trip (a `basic.qos`, which
/// changes nothing for a no-ack consumer) every
/// [`LIVENESS_PROBE_INTERVAL`], as the consumers do:
/// lapin can lose a connection without reporting it, and a long-lived client
/// then failed every call by its deadline, for ever, without ever seeing the
/// loss. Resolves when a probe fails or is not answered within
/// [`LIVENESS_PROBE_TIMEOUT`]. Skipped while the
/// broker blocks the connection (an alarm): it does not read from a blocked
/// connection, and that is no loss.
pub(super) async fn probe(channel: Channel, blocked: Arc<AtomicBool>) -> Option<lapin::Error> {
    let mut every = tokio::time::interval(LIVENESS_PROBE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        if blocked.load(Ordering::Relaxed) {
            continue;
        }
        let answered = tokio::time::timeout(
            LIVENESS_PROBE_TIMEOUT,
            channel.basic_qos(0, lapin::options::BasicQosOptions::default()),
        )
        .await;
        match answered {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Some(error),
            Err(_) if blocked.load(Ordering::Relaxed) => {}
            Err(_) => return None,
        }
    }
}

/// Routes replies to their calls until the reply stream or the connection
/// ends (or the liveness probe fails), then fails every call still waiting.
pub(super) async fn dispatch(
    contract: Contract,
    mut replies: Consumer,
    events: impl futures::Stream<Item = Event> + Unpin,
    probe: impl std::future::Future<Output = Option<lapin::Error>>,
    pending: Arc<Pending>,
    counters: Arc<Counters>,
    blocked: Arc<AtomicBool>,
) {
    let mut events = events.fuse();
    tokio::pin!(probe);
    // Logged at debug only: every call that fails because of it reports the
    // cause (RpcError::ConnectionLost), and the caller says it once.
    let cause = loop {
        tokio::select! {
            delivery = replies.next() => match delivery {
                Some(Ok(delivery)) => route(&delivery, &contract, &pending, &counters),
                Some(Err(error)) => {
                    tracing::debug!(%error, "reply consumer failed; failing calls in flight");
                    break Some(error);
                }
                None => {
                    tracing::debug!("reply consumer ended; failing calls in flight");
                    break None;
                }
            },
            cause = &mut probe => {
                tracing::debug!(cause = cause.as_ref().map(ToString::to_string), "the connection did not answer a liveness probe; failing calls in flight");
                break cause;
            }
            Some(event) = events.next() => match event {
                Event::Error(error) => {
                    tracing::debug!(%error, "connection to the broker lost; failing calls in flight");
                    break Some(error);
                }
                Event::ConnectionBlocked(reason) => {
                    blocked.store(true, Ordering::Relaxed);
                    tracing::warn!(%reason, "the broker is blocking publishes from this connection");
                }
                Event::ConnectionUnblocked => {
                    blocked.store(false, Ordering::Relaxed);
                    tracing::info!("the broker unblocked this connection");
                }
                _ => {}
            },
        }
    };
    pending.close(cause);
}

fn route(delivery: &Delivery, contract: &Contract, pending: &Pending, counters: &Counters) {
    let Some(correlation_id) = delivery.properties.correlation_id().as_ref() else {
        counters.stray.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("dropped a reply without correlation_id");
        return;
    };
    if !protocol::is_json(&delivery.properties) {
        counters.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%correlation_id, "dropped a reply whose content_type is not JSON");
        return;
    }
    let reply = match protocol::decode_reply(contract, &delivery.data) {
        Ok(reply) => reply,
        Err(error) => {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, %correlation_id, "dropped a malformed reply");
            return;
        }
    };
    let delivered = CorrelationId::parse(correlation_id.as_str())
        .map_or(Delivered::Unknown, |id| pending.deliver(id, reply));
    match delivered {
        Delivered::Taken => {
            tracing::trace!(%correlation_id, "reply in");
        }
        Delivered::Unknown => {
            counters.stray.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%correlation_id, "dropped a late or unknown reply");
        }
        Delivered::Mismatched => {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%correlation_id, "dropped a reply that does not fit its request (wrong number of results)");
        }
    }
}
