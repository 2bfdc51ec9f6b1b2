//! The AMQP properties of requests and replies, and what a service reads
//! from them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::BasicProperties;

use super::names::ROLL_CALL_TYPE;

/// Content type of every request and reply body.
pub const CONTENT_TYPE: &str = "application/json";

/// Properties of a request: JSON, correlated, answerable, timestamped, and
/// expiring after `timeout` so that nobody processes a request nobody awaits.
/// `message_id` repeats the correlation id: a retried call keeps both.
#[must_use]
pub fn request_properties(
    correlation_id: &str,
    reply_to: &str,
    timeout: Duration,
    persistent: bool,
) -> BasicProperties {
    let expiration_ms = timeout.as_millis().max(1);
    BasicProperties::default()
        .with_content_type(CONTENT_TYPE.into())
        .with_correlation_id(correlation_id.into())
        .with_message_id(correlation_id.into())
        .with_reply_to(reply_to.into())
        .with_timestamp(unix_seconds(SystemTime::now()))
        .with_expiration(expiration_ms.to_string().into())
        .with_delivery_mode(if persistent { 2 } else { 1 })
}

/// Properties of a reply to the request with `correlation_id`.
#[must_use]
pub fn reply_properties(correlation_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type(CONTENT_TYPE.into())
        .with_correlation_id(correlation_id.into())
}

/// Where and how to answer a request, read from its properties. Empty strings
/// count as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnAddress {
    /// The request's `reply_to`.
    pub reply_to: String,
    /// The request's `correlation_id`.
    pub correlation_id: String,
}

impl ReturnAddress {
    /// `Some` when the request carries both `reply_to` and `correlation_id`;
    /// `None` makes it a one-way request (docs/wire-contract.md, "Request properties").
    #[must_use]
    pub fn from_properties(properties: &BasicProperties) -> Option<Self> {
        let non_empty = |s: &Option<lapin::types::ShortString>| {
            s.as_ref()
                .map(|s| s.as_str().to_owned())
                .filter(|s| !s.is_empty())
        };
        Some(Self {
            reply_to: non_empty(properties.reply_to())?,
            correlation_id: non_empty(properties.correlation_id())?,
        })
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Properties of a roll call: a request of type
/// [`ROLL_CALL_TYPE`] that every live responder answers with its name.
#[must_use]
pub fn roll_call_properties(
    correlation_id: &str,
    reply_to: &str,
    timeout: Duration,
) -> BasicProperties {
    request_properties(correlation_id, reply_to, timeout, false).with_type(ROLL_CALL_TYPE.into())
}

/// Whether a request is a roll call.
#[must_use]
pub fn is_roll_call(properties: &BasicProperties) -> bool {
    properties
        .kind()
        .as_ref()
        .is_some_and(|kind| kind.as_str() == ROLL_CALL_TYPE)
}

/// Whether a request's `content_type` allows a JSON body: absent (contract
/// v1 clients may leave it out), or `application/json` with any parameters.
#[must_use]
pub fn is_json(properties: &BasicProperties) -> bool {
    properties.content_type().as_ref().is_none_or(|kind| {
        let kind = kind.as_str();
        let media = kind.split(';').next().unwrap_or(kind).trim();
        media.eq_ignore_ascii_case(CONTENT_TYPE)
    })
}
