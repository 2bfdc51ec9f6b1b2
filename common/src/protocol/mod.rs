//! Wire contract v1: request and reply bodies and their AMQP properties.
//!
//! This module is the only place where protocol types meet `BasicProperties`;
//! the README's "Wire contract" section documents the same rules for clients
//! in other languages.

mod name;
pub mod names;
mod reply_to;

use std::{
    borrow::Cow,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use lapin::BasicProperties;
use serde::{Deserialize, Serialize};

pub use name::{MAX_NAME_CHARS, Name, NameError};
pub use reply_to::{DIRECT_REPLY_TO, ForbiddenReplyTo, ReplyToPolicy, SERVER_NAMED_PREFIX};

/// Content type of every request and reply body.
pub const CONTENT_TYPE: &str = "application/json";
/// Largest request body a consumer accepts, in bytes.
pub const MAX_REQUEST_BYTES: usize = 4096;
pub use names::INVALID_REQUEST;

#[derive(Serialize, Deserialize)]
struct RequestBody<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

/// Why a request body was refused. Every variant maps to the error code
/// [`INVALID_REQUEST`]; the Display text is the reply's `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    /// Body longer than [`MAX_REQUEST_BYTES`].
    #[error("body is {bytes} bytes, more than the {MAX_REQUEST_BYTES} allowed")]
    TooLarge {
        /// Size of the body.
        bytes: usize,
    },
    /// Body is not UTF-8.
    #[error("body is not UTF-8: {0}")]
    NotUtf8(String),
    /// Body is not a JSON object with a string field `name`.
    #[error("body is not a JSON object with a string \"name\": {0}")]
    NotJson(String),
    /// The name breaks a rule.
    #[error("{0}")]
    Name(#[from] NameError),
}

impl InvalidRequest {
    /// The error code sent in the reply.
    #[must_use]
    pub fn code(&self) -> &'static str {
        INVALID_REQUEST
    }
}

/// Encodes the body of a request for `name`.
#[must_use]
pub fn encode_request(name: &Name) -> Vec<u8> {
    // Serialising a struct holding one string to a Vec cannot fail.
    serde_json::to_vec(&RequestBody {
        name: Cow::Borrowed(name.as_str()),
    })
    .unwrap_or_default()
}

/// Decodes and validates a request body. Never panics, whatever the bytes.
///
/// # Errors
/// [`InvalidRequest`] saying what is wrong with the body.
pub fn decode_request(body: &[u8]) -> Result<Name, InvalidRequest> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(InvalidRequest::TooLarge { bytes: body.len() });
    }
    let text = std::str::from_utf8(body).map_err(|e| InvalidRequest::NotUtf8(e.to_string()))?;
    // serde would also read a struct from a JSON array; the contract says object.
    if !text.trim_start().starts_with('{') {
        return Err(InvalidRequest::NotJson("expected a JSON object".to_owned()));
    }
    let request: RequestBody<'_> =
        serde_json::from_str(text).map_err(|e| InvalidRequest::NotJson(e.to_string()))?;
    Ok(Name::parse(&request.name)?)
}

/// What a consumer answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The word of the consumer that answered.
    pub consumer: String,
    /// The greeting, or why there is none.
    pub outcome: Outcome,
}

/// The two kinds of reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `hello Ada`.
    Greeting(String),
    /// The consumer refused the request.
    Error {
        /// Machine-readable code, e.g. [`INVALID_REQUEST`].
        code: String,
        /// Human-readable reason.
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
struct ReplyWire<'a> {
    #[serde(borrow)]
    consumer: Cow<'a, str>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    greeting: Option<Cow<'a, str>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    error: Option<ErrorWire<'a>>,
}

#[derive(Serialize, Deserialize)]
struct ErrorWire<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

/// A reply body that does not follow the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed reply: {0}")]
pub struct MalformedReply(String);

impl Reply {
    /// Encodes the reply body.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let (greeting, error) = match &self.outcome {
            Outcome::Greeting(g) => (Some(Cow::Borrowed(g.as_str())), None),
            Outcome::Error { code, message } => (
                None,
                Some(ErrorWire {
                    code: Cow::Borrowed(code.as_str()),
                    message: Cow::Borrowed(message.as_str()),
                }),
            ),
        };
        let wire = ReplyWire {
            consumer: Cow::Borrowed(self.consumer.as_str()),
            greeting,
            error,
        };
        // A struct of strings always serialises.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Decodes a reply body: exactly one of `greeting` and `error` must be present.
    ///
    /// # Errors
    /// [`MalformedReply`] for anything else.
    pub fn decode(body: &[u8]) -> Result<Self, MalformedReply> {
        let wire: ReplyWire =
            serde_json::from_slice(body).map_err(|e| MalformedReply(e.to_string()))?;
        let outcome = match (wire.greeting, wire.error) {
            (Some(greeting), None) => Outcome::Greeting(greeting.into_owned()),
            (None, Some(ErrorWire { code, message })) => Outcome::Error {
                code: code.into_owned(),
                message: message.into_owned(),
            },
            _ => {
                return Err(MalformedReply(
                    "exactly one of \"greeting\" and \"error\" must be present".to_owned(),
                ));
            }
        };
        Ok(Self {
            consumer: wire.consumer.into_owned(),
            outcome,
        })
    }
}

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
    /// `None` makes it a one-way request (contract point 6).
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

#[cfg(test)]
mod tests;
