//! How often this process has handed each request back to its queue because
//! a copy it needed (a delayed retry, a dead letter) was not stored.
//!
//! Such a request cannot be acked (that would lose it) and its own failure
//! count cannot grow (it travels in the copy that failed), so handing it back
//! at once made a hot loop: redelivered, failed, handed back, thousands of
//! times a second, until the copy's target was repaired. The count here
//! spaces those returns out (the retry delays, doubling) and shows in the
//! logs. It is per process and best-effort: keyed by a hash of what
//! identifies a request (correlation id, message id, body), bounded in size,
//! and forgotten on restart. On quorum queues the broker counts as well, and
//! its delivery limit ends the loop.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Mutex, PoisonError},
};

use lapin::message::Delivery;

/// Most requests remembered; past it the memory starts again (a flood of
/// distinct requests must not grow it).
const CAPACITY: usize = 10_000;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Returns {
    counts: Mutex<HashMap<u64, u32>>,
}

impl Returns {
    /// Counts one more return of `delivery`'s request; the count so far.
    pub(crate) fn record(&self, delivery: &Delivery) -> u32 {
        let mut hasher = DefaultHasher::new();
        delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(|id| id.as_str())
            .hash(&mut hasher);
        delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str())
            .hash(&mut hasher);
        delivery.data.hash(&mut hasher);
        let key = hasher.finish();
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.len() >= CAPACITY && !counts.contains_key(&key) {
            counts.clear();
        }
        let count = counts.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }
}
