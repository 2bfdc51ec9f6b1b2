//! Per-message failure counts, for dead-lettering poison messages.
//!
//! Quorum queues count deliveries themselves (`x-delivery-count`); classic
//! queues only flag `redelivered`, so the service keeps its own count keyed by
//! `message_id` (else `correlation_id`, else a hash of the body). The map is bounded: when full, the
//! oldest entry goes, which at worst grants a poison message a few more tries.

use std::{
    collections::{HashMap, VecDeque},
    hash::{DefaultHasher, Hash, Hasher},
};

use lapin::{BasicProperties, types::AMQPValue};

/// Most messages whose failures are remembered at once.
const CAPACITY: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct Failures {
    counts: HashMap<String, u32>,
    order: VecDeque<String>,
}

impl Failures {
    /// Records one failed attempt and returns how many attempts have failed,
    /// counting the broker's own delivery count when it has one.
    pub(crate) fn record(&mut self, properties: &BasicProperties, body: &[u8]) -> u32 {
        let broker_count = delivery_count(properties).map(|n| n + 1);
        let key = key(properties, body);
        if !self.counts.contains_key(&key) {
            if self.order.len() >= CAPACITY
                && let Some(oldest) = self.order.pop_front()
            {
                self.counts.remove(&oldest);
            }
            self.order.push_back(key.clone());
        }
        let count = self.counts.entry(key).or_insert(0);
        *count += 1;
        broker_count.map_or(*count, |b| b.max(*count))
    }

    /// Forgets a message (handled, or dead-lettered).
    pub(crate) fn forget(&mut self, properties: &BasicProperties, body: &[u8]) {
        // The common case, nothing has failed: no key to build or hash.
        if self.counts.is_empty() {
            return;
        }
        let key = key(properties, body);
        if self.counts.remove(&key).is_some() {
            self.order.retain(|k| *k != key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.counts.len()
    }
}

fn key(properties: &BasicProperties, body: &[u8]) -> String {
    properties
        .message_id()
        .as_ref()
        .or(properties.correlation_id().as_ref())
        .map(|id| format!("id:{id}"))
        .filter(|id| id.len() > 3)
        .unwrap_or_else(|| {
            let mut hasher = DefaultHasher::new();
            body.hash(&mut hasher);
            format!("body:{:016x}", hasher.finish())
        })
}

/// `x-delivery-count` (quorum queues): earlier deliveries of this message.
fn delivery_count(properties: &BasicProperties) -> Option<u32> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get("x-delivery-count")? {
        AMQPValue::LongUInt(n) => Some(*n),
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::FieldTable;

    use super::*;

    fn with_id(id: &str) -> BasicProperties {
        BasicProperties::default().with_message_id(id.into())
    }

    #[test]
    fn counts_per_message_and_forgets() {
        let mut f = Failures::default();
        assert_eq!(f.record(&with_id("a"), b"x"), 1);
        assert_eq!(f.record(&with_id("a"), b"y"), 2);
        assert_eq!(f.record(&with_id("b"), b"x"), 1);
        f.forget(&with_id("a"), b"x");
        assert_eq!(f.record(&with_id("a"), b"x"), 1);
    }

    #[test]
    fn the_broker_delivery_count_wins_when_higher() {
        let mut headers = FieldTable::default();
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(4));
        let p = with_id("q").with_headers(headers);
        assert_eq!(Failures::default().record(&p, b""), 5);
    }

    #[test]
    fn memory_is_bounded() {
        let mut f = Failures::default();
        for i in 0..(CAPACITY + 50) {
            f.record(&with_id(&i.to_string()), b"");
        }
        assert_eq!(f.len(), CAPACITY);
    }

    #[test]
    fn a_message_without_ids_is_counted_by_its_body() {
        let mut f = Failures::default();
        let none = BasicProperties::default();
        assert_eq!(f.record(&none, b"poison"), 1);
        assert_eq!(f.record(&none, b"poison"), 2);
        assert_eq!(f.record(&none, b"other"), 1);
    }
}
