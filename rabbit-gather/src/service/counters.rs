//! What a service has done, counted as it goes: tests and operators read a
//! [`ServiceStats`] snapshot; the service logs one when it stops.

use std::{
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
    time::Duration,
};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Live counters of one service (all its sessions).
#[derive(Debug)]
pub struct ServiceCounters {
    pub(crate) ok: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) forbidden_reply_to: AtomicU64,
    pub(crate) redeliveries: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) in_hand: AtomicI64,
    /// Seconds from a delivery's arrival to its settlement.
    handling: Histogram,
    pub(crate) handled: AtomicU64,
    pub(crate) batch_names: AtomicU64,
    pub(crate) replies: AtomicU64,
    pub(crate) retries_scheduled: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) publish_nacks: AtomicU64,
    pub(crate) requeued_after_nack: AtomicU64,
    pub(crate) replies_refused: AtomicU64,
    pub(crate) replies_returned: AtomicU64,
    pub(crate) publisher_reopened: AtomicU64,
}

/// A snapshot of [`ServiceCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Requests answered with a greeting and acked.
    pub ok: u64,
    /// Requests that broke the wire contract, dead-lettered.
    pub invalid: u64,
    /// Requests past their deadline on arrival, dead-lettered.
    pub expired: u64,
    /// Requests with a `reply_to` the service refuses to answer, dead-lettered.
    pub forbidden_reply_to: u64,
    /// Deliveries the broker marked as redelivered.
    pub redeliveries: u64,
    /// Sessions opened again after a broker fault.
    pub reconnects: u64,
    /// Deliveries being handled now.
    pub in_hand: i64,
    /// Names whose handler returned a greeting (printed), in single and
    /// batch requests.
    pub handled: u64,
    /// Names that came in batch requests (contract v1.1) and were answered.
    pub batch_names: u64,
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
    /// Replies to a reply queue that no longer exists, returned by the broker
    /// (the caller's connection is gone); their requests are acked.
    pub replies_returned: u64,
    /// Times the publishing connection was opened again after the broker
    /// closed it, without ending the session.
    pub publisher_reopened: u64,
}

/// Upper bounds of the handling-time histogram: 0.5 ms doubling to about 16 s.
fn handling_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_5, 2.0, 16)
}

impl Default for ServiceCounters {
    fn default() -> Self {
        let zero = || AtomicU64::new(0);
        Self {
            ok: zero(),
            invalid: zero(),
            expired: zero(),
            forbidden_reply_to: zero(),
            redeliveries: zero(),
            reconnects: zero(),
            in_hand: AtomicI64::new(0),
            handling: Histogram::new(handling_buckets()),
            handled: zero(),
            batch_names: zero(),
            replies: zero(),
            retries_scheduled: zero(),
            dead_lettered: zero(),
            rejected: zero(),
            publish_nacks: zero(),
            requeued_after_nack: zero(),
            replies_refused: zero(),
            replies_returned: zero(),
            publisher_reopened: zero(),
        }
    }
}

impl ServiceCounters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_n(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The handling-time histogram (seconds), for a metrics exporter.
    #[must_use]
    pub fn handling_seconds(&self) -> &Histogram {
        &self.handling
    }

    /// Counts a delivery taken in hand; the guard counts it out and records
    /// its handling time when dropped.
    pub(crate) fn take_in_hand(&self, redelivered: bool) -> InHand<'_> {
        if redelivered {
            Self::add(&self.redeliveries);
        }
        self.in_hand.fetch_add(1, Ordering::Relaxed);
        InHand {
            counters: self,
            since: std::time::Instant::now(),
        }
    }

    /// The counters now.
    #[must_use]
    pub fn snapshot(&self) -> ServiceStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServiceStats {
            ok: get(&self.ok),
            invalid: get(&self.invalid),
            expired: get(&self.expired),
            forbidden_reply_to: get(&self.forbidden_reply_to),
            redeliveries: get(&self.redeliveries),
            reconnects: get(&self.reconnects),
            in_hand: self.in_hand.load(Ordering::Relaxed),
            handled: get(&self.handled),
            batch_names: get(&self.batch_names),
            replies: get(&self.replies),
            retries_scheduled: get(&self.retries_scheduled),
            dead_lettered: get(&self.dead_lettered),
            rejected: get(&self.rejected),
            publish_nacks: get(&self.publish_nacks),
            requeued_after_nack: get(&self.requeued_after_nack),
            replies_refused: get(&self.replies_refused),
            replies_returned: get(&self.replies_returned),
            publisher_reopened: get(&self.publisher_reopened),
        }
    }
}

/// A delivery in hand (see [`ServiceCounters::take_in_hand`]).
pub(crate) struct InHand<'a> {
    counters: &'a ServiceCounters,
    since: std::time::Instant,
}

impl Drop for InHand<'_> {
    fn drop(&mut self) {
        self.counters.in_hand.fetch_sub(1, Ordering::Relaxed);
        let took: Duration = self.since.elapsed();
        self.counters.handling.observe(took.as_secs_f64());
    }
}
