//! A dead letter as a fresh attempt: which of its properties and headers a
//! replay carries, and which it must not.

use lapin::{BasicProperties, types::FieldTable};
use rabbit_gather::protocol::names::{
    DELIVERY_COUNT_HEADER, EXPIRATION_HEADER, FAILURES_HEADER, QUEUE_HEADER, REASON_HEADER,
};

use super::letter::X_DEATH;

/// Headers a fresh attempt must not carry: the broker's dead-lettering
/// history (RabbitMQ's names), the consumers' verdicts and attempt counts
/// (which would count a replay as already failed, or date it by the first
/// caller's deadline), and sender-selected distribution (`CC`/`BCC` would
/// route the replay to the queues they name). Compared ignoring case.
pub const STRIPPED_HEADERS: [&str; 14] = [
    X_DEATH,
    "x-first-death-queue",
    "x-first-death-reason",
    "x-first-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-last-death-exchange",
    REASON_HEADER,
    QUEUE_HEADER,
    FAILURES_HEADER,
    EXPIRATION_HEADER,
    DELIVERY_COUNT_HEADER,
    "CC",
    "BCC",
];

/// The properties of a letter's replay: the original's request properties
/// (`content_type`, `content_encoding`, `correlation_id`, `reply_to`,
/// `message_id`, `delivery_mode`, 2 when unset) and its headers minus
/// [`STRIPPED_HEADERS`]; `timestamp` is `now` (seconds since the epoch) and
/// there is no `expiration`: a replay is a new attempt, not the first
/// caller's, whose deadline has passed (a consumer would dead-letter it as
/// expired again). `user_id`, which the broker checks against the
/// publishing user, is never copied.
#[must_use]
pub fn replay_properties(original: &BasicProperties, now: u64) -> BasicProperties {
    let mut properties = BasicProperties::default()
        .with_timestamp(now)
        .with_delivery_mode(original.delivery_mode().unwrap_or(2));
    if let Some(headers) = original.headers() {
        let mut kept = FieldTable::default();
        for (key, value) in headers.inner() {
            let stripped = STRIPPED_HEADERS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(key.as_str()));
            if !stripped {
                kept.insert(key.clone(), value.clone());
            }
        }
        if !kept.inner().is_empty() {
            properties = properties.with_headers(kept);
        }
    }
    if let Some(v) = original.content_type() {
        properties = properties.with_content_type(v.clone());
    }
    if let Some(v) = original.content_encoding() {
        properties = properties.with_content_encoding(v.clone());
    }
    if let Some(v) = original.correlation_id() {
        properties = properties.with_correlation_id(v.clone());
    }
    if let Some(v) = original.reply_to() {
        properties = properties.with_reply_to(v.clone());
    }
    if let Some(v) = original.message_id() {
        properties = properties.with_message_id(v.clone());
    }
    properties
}

#[cfg(test)]
mod tests {
    use lapin::types::{AMQPValue, FieldArray};

    use super::*;

    #[test]
    fn a_replay_is_a_fresh_attempt_with_the_requests_own_properties() {
        let mut headers = FieldTable::default();
        for name in STRIPPED_HEADERS {
            headers.insert(name.into(), AMQPValue::LongString("x".into()));
        }
        headers.insert("cc".into(), AMQPValue::FieldArray(FieldArray::default()));
        headers.insert("traceparent".into(), AMQPValue::LongString("00-ab".into()));
        let original = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_correlation_id("c-1".into())
            .with_message_id("c-1".into())
            .with_reply_to("amq.rabbitmq.reply-to.abc".into())
            .with_expiration("5000".into())
            .with_timestamp(1)
            .with_user_id("guest".into())
            .with_delivery_mode(1)
            .with_headers(headers);

        let replay = replay_properties(&original, 42);

        assert_eq!(replay.timestamp(), &Some(42));
        assert_eq!(replay.expiration(), &None);
        assert_eq!(replay.user_id(), &None);
        assert_eq!(replay.delivery_mode(), &Some(1));
        assert_eq!(replay.content_type(), original.content_type());
        assert_eq!(replay.correlation_id(), original.correlation_id());
        assert_eq!(replay.message_id(), original.message_id());
        assert_eq!(replay.reply_to(), original.reply_to());
        let kept: Vec<&str> = replay
            .headers()
            .as_ref()
            .expect("headers")
            .inner()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(kept, ["traceparent"]);
    }

    #[test]
    fn a_replay_without_headers_or_delivery_mode_is_persistent_and_headerless() {
        let replay = replay_properties(&BasicProperties::default(), 7);
        assert_eq!(replay.headers(), &None);
        assert_eq!(replay.delivery_mode(), &Some(2));
    }
}
