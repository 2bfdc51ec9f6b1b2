//! What a service has done, counted as it goes: tests and operators read a
//! [`ServiceStats`] snapshot; the service logs one when it stops.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one service (all its sessions).
#[derive(Debug, Default)]
pub struct ServiceCounters {
    pub(crate) handled: AtomicU64,
    pub(crate) replies: AtomicU64,
    pub(crate) retries_scheduled: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) publish_nacks: AtomicU64,
    pub(crate) requeued_after_nack: AtomicU64,
    pub(crate) replies_refused: AtomicU64,
    pub(crate) publisher_reopened: AtomicU64,
}

/// A snapshot of [`ServiceCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Requests whose handler returned a greeting (printed).
    pub handled: u64,
    /// Replies confirmed by the broker (greetings and error replies).
    pub replies: u64,
    /// Requests sent to the retry queue to be tried again after a delay.
    pub retries_scheduled: u64,
    /// Requests the service dead-lettered itself, with a reason header.
    pub dead_lettered: u64,
    /// Requests rejected to the dead-letter exchange by the broker (invalid,
    /// forbidden `reply_to`, expired).
    pub rejected: u64,
    /// Publishes the broker nacked (each attempt counts).
    pub publish_nacks: u64,
    /// Deliveries returned to their queue because a publish they needed was
    /// still nacked after its retries.
    pub requeued_after_nack: u64,
    /// Replies the broker refused by closing the publishing channel or
    /// connection (a crafted `reply_to`); their requests are dead-lettered.
    pub replies_refused: u64,
    /// Times the publishing connection was opened again after the broker
    /// closed it, without ending the session.
    pub publisher_reopened: u64,
}

impl ServiceCounters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    #[must_use]
    pub fn snapshot(&self) -> ServiceStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServiceStats {
            handled: get(&self.handled),
            replies: get(&self.replies),
            retries_scheduled: get(&self.retries_scheduled),
            dead_lettered: get(&self.dead_lettered),
            rejected: get(&self.rejected),
            publish_nacks: get(&self.publish_nacks),
            requeued_after_nack: get(&self.requeued_after_nack),
            replies_refused: get(&self.replies_refused),
            publisher_reopened: get(&self.publisher_reopened),
        }
    }
}
