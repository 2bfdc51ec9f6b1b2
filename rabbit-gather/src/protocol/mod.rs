//! Wire contract v1.1: request and reply bodies and their AMQP properties.
//! A request names one person (`{"name": ...}`, v1) or several
//! (`{"names": [...]}`, v1.1); a reply answers in the request's form.
//!
//! This module is the only place where protocol types meet `BasicProperties`;
//! the README's "Wire contract" section documents the same rules for clients
//! in other languages.

mod name;
pub mod names;
mod reply_to;
mod utf8;

use std::{
    borrow::Cow,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use lapin::BasicProperties;
use serde::{Deserialize, Serialize};

pub use name::{MAX_NAME_CHARS, Name, NameError};
pub use reply_to::{
    DIRECT_REPLY_TO, ForbiddenReplyTo, ReplyRoute, ReplyToPolicy, SERVER_NAMED_PREFIX,
};
pub use utf8::{NotUtf8, not_utf8};

/// Content type of every request and reply body.
pub const CONTENT_TYPE: &str = "application/json";
/// Largest single-name (v1) request body a consumer accepts, in bytes.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// Most names in one batch request (v1.1).
pub const MAX_BATCH_NAMES: usize = 1000;
/// Largest batch request body a consumer accepts, in bytes.
pub const MAX_BATCH_BYTES: usize = 128 * 1024;
pub use names::INVALID_REQUEST;

#[derive(Serialize)]
struct RequestBody<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct BatchBody<'a> {
    names: &'a [Name],
}

/// Either form of request body, as read: which fields it has is checked
/// after parsing.
#[derive(Deserialize)]
struct RequestWire<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(default)]
    names: Option<Vec<String>>,
}

/// A decoded request: one name (v1) or a batch (v1.1) whose names were
/// each validated on their own, so that one bad name fails only itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `{"name": "Ada"}`.
    Single(Name),
    /// `{"names": ["Ada", "Bob"]}`: one result per name, in order.
    Batch(Vec<Result<Name, NameError>>),
}

/// Why a request body was refused. Every variant maps to the error code
/// [`INVALID_REQUEST`]; the Display text is the reply's `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    /// Body longer than [`MAX_REQUEST_BYTES`] (single name) or
    /// [`MAX_BATCH_BYTES`] (batch).
    #[error("body is {bytes} bytes, more than the {limit} allowed")]
    TooLarge {
        /// Size of the body.
        bytes: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// Body is not UTF-8.
    #[error("body is not UTF-8: {0}")]
    NotUtf8(String),
    /// Body is not a JSON object with a string field `name` or an array
    /// of strings `names`.
    #[error(
        "body is not a JSON object with a string \"name\" or an array \"names\" of strings: {0}"
    )]
    NotJson(String),
    /// Body has both `name` and `names`.
    #[error("body has both \"name\" and \"names\"; send one")]
    NameAndNames,
    /// A batch with no names, or more than [`MAX_BATCH_NAMES`].
    #[error("a batch has {count} names; 1 to {MAX_BATCH_NAMES} are allowed")]
    BatchSize {
        /// Names in the batch.
        count: usize,
    },
    /// The name breaks a rule.
    #[error("{0}")]
    Name(#[from] NameError),
    /// A short-string property or header held bytes that are not UTF-8.
    #[error("{0} is not UTF-8")]
    PropertyNotUtf8(NotUtf8),
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
        name: name.as_str(),
    })
    .unwrap_or_default()
}

/// Why a batch cannot be sent: the limits a consumer enforces, checked by
/// the sender before anything is published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// No names, or more than [`MAX_BATCH_NAMES`].
    #[error("a batch has {count} names; 1 to {MAX_BATCH_NAMES} are allowed")]
    Size {
        /// Names in the batch.
        count: usize,
    },
    /// The encoded body is longer than [`MAX_BATCH_BYTES`], or than the
    /// broker accepts (`amqp.max_message_size`).
    #[error("a batch body is {bytes} bytes, more than the {limit} allowed")]
    TooLarge {
        /// Size of the encoded body.
        bytes: usize,
        /// The limit it breaks.
        limit: usize,
    },
}

/// Encodes a request for `names`: v1 (`{"name": ...}`) for one name, as
/// the contract asks, else v1.1 (`{"names": [...]}`).
///
/// # Errors
/// [`BatchError`] when the batch breaks a limit of the contract.
pub fn encode_names(names: &[Name]) -> Result<Vec<u8>, BatchError> {
    encode_names_within(names, MAX_BATCH_BYTES)
}

/// [`encode_names`] for a broker that accepts bodies of at most
/// `max_message_size` bytes (`amqp.max_message_size`).
///
/// # Errors
/// [`BatchError`] when the batch breaks a limit of the contract or the
/// broker's.
pub fn encode_names_within(names: &[Name], max_message_size: usize) -> Result<Vec<u8>, BatchError> {
    check_batch_within(names, max_message_size)?;
    match names {
        [one] => Ok(encode_request(one)),
        // A struct holding strings always serialises.
        _ => Ok(serde_json::to_vec(&BatchBody { names }).unwrap_or_default()),
    }
}

/// Checks `names` against the limits of a batch without encoding it: 1 to
/// [`MAX_BATCH_NAMES`] names, and a body within [`MAX_BATCH_BYTES`] (one
/// name is always within the v1 limit).
///
/// # Errors
/// The limit the batch breaks.
pub fn check_batch(names: &[Name]) -> Result<(), BatchError> {
    check_batch_within(names, MAX_BATCH_BYTES)
}

/// [`check_batch`] for a broker that accepts bodies of at most
/// `max_message_size` bytes.
///
/// # Errors
/// The limit the batch breaks.
pub fn check_batch_within(names: &[Name], max_message_size: usize) -> Result<(), BatchError> {
    if names.is_empty() || names.len() > MAX_BATCH_NAMES {
        return Err(BatchError::Size { count: names.len() });
    }
    let limit = max_batch_bytes(max_message_size);
    if names.len() > 1 {
        let bytes = BATCH_OVERHEAD_BYTES - 1 + names.iter().map(batch_bytes_of).sum::<usize>();
        if bytes > limit {
            return Err(BatchError::TooLarge { bytes, limit });
        }
    }
    Ok(())
}

/// The largest batch body a client sends to a broker that accepts bodies
/// of at most `max_message_size` bytes: the smaller of that and
/// [`MAX_BATCH_BYTES`].
#[must_use]
pub fn max_batch_bytes(max_message_size: usize) -> usize {
    MAX_BATCH_BYTES.min(max_message_size)
}

/// Bytes `name` adds to a batch body: its JSON string and a comma. A
/// sender filling batches up to [`MAX_BATCH_BYTES`] sums these over
/// [`BATCH_OVERHEAD_BYTES`].
#[must_use]
pub fn batch_bytes_of(name: &Name) -> usize {
    let escaped: usize = name
        .as_str()
        .chars()
        .map(|c| match c {
            '"' | '\\' => 2,
            // Control characters never pass `Name::parse`.
            c => c.len_utf8(),
        })
        .sum();
    escaped + 3
}

/// Bytes of a batch body besides its names: `{"names":[]}`.
pub const BATCH_OVERHEAD_BYTES: usize = 12;

/// The results a consumer already has for a batch it retries, carried in its
/// own retry copy (field `done`: one per name, `null` where the name is
/// still to be handled), so that a retry handles only the names that failed.
#[derive(Deserialize)]
struct DoneWire<'a> {
    #[serde(borrow, default)]
    done: Option<Vec<Option<ResultWire<'a>>>>,
}

/// The results carried in a batch retry copy's body, one per name (`None`
/// where the name is still to be handled); `None` when the body carries
/// none, or not one per name of a `names`-long batch.
#[must_use]
pub fn decode_done(body: &[u8], names: usize) -> Option<Vec<Option<Outcome>>> {
    let wire: DoneWire<'_> = serde_json::from_slice(body).ok()?;
    let done = wire.done?;
    if done.len() != names {
        return None;
    }
    Some(
        done.into_iter()
            .map(|result| result.and_then(|r| r.into_outcome().ok()))
            .collect(),
    )
}

/// The body of a batch's retry copy: the request `body` with the results
/// already known (`done`, one per name, `None` for a name to handle again),
/// if it stays within `limit` bytes (at most [`MAX_BATCH_BYTES`]); else
/// `None`, and the copy carries the request as it was (every name handled
/// again).
#[must_use]
pub fn encode_retry_batch(body: &[u8], done: &[Option<Outcome>], limit: usize) -> Option<Vec<u8>> {
    let mut request: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).ok()?;
    let done: Vec<Option<ResultWire<'_>>> = done
        .iter()
        .map(|result| result.as_ref().map(ResultWire::borrow))
        .collect();
    request.insert("done".to_owned(), serde_json::to_value(done).ok()?);
    let encoded = serde_json::to_vec(&request).ok()?;
    (encoded.len() <= limit.min(MAX_BATCH_BYTES)).then_some(encoded)
}

/// Decodes and validates a request body, in either form. Never panics,
/// whatever the bytes.
///
/// Whole-body problems (size, encoding, shape, batch size) refuse the whole
/// request. In a batch each name is validated on its own.
///
/// # Errors
/// [`InvalidRequest`] saying what is wrong with the body.
pub fn decode_request(body: &[u8]) -> Result<Request, InvalidRequest> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(InvalidRequest::TooLarge {
            bytes: body.len(),
            limit: MAX_BATCH_BYTES,
        });
    }
    // A body over the v1 limit that is not a well-formed batch is refused
    // as too large, exactly as in v1.
    let v1_refusal = |error: InvalidRequest| {
        if body.len() > MAX_REQUEST_BYTES {
            InvalidRequest::TooLarge {
                bytes: body.len(),
                limit: MAX_REQUEST_BYTES,
            }
        } else {
            error
        }
    };
    let text = std::str::from_utf8(body)
        .map_err(|e| v1_refusal(InvalidRequest::NotUtf8(e.to_string())))?;
    // serde would also read a struct from a JSON array; the contract says object.
    if !text.trim_start().starts_with('{') {
        return Err(v1_refusal(InvalidRequest::NotJson(
            "expected a JSON object".to_owned(),
        )));
    }
    let request: RequestWire<'_> = serde_json::from_str(text)
        .map_err(|e| v1_refusal(InvalidRequest::NotJson(e.to_string())))?;
    match (request.name, request.names) {
        (Some(name), None) => {
            if body.len() > MAX_REQUEST_BYTES {
                return Err(InvalidRequest::TooLarge {
                    bytes: body.len(),
                    limit: MAX_REQUEST_BYTES,
                });
            }
            Ok(Request::Single(Name::parse(&name)?))
        }
        (None, Some(names)) => {
            if names.is_empty() || names.len() > MAX_BATCH_NAMES {
                return Err(InvalidRequest::BatchSize { count: names.len() });
            }
            Ok(Request::Batch(
                names.iter().map(|name| Name::parse(name)).collect(),
            ))
        }
        (Some(_), Some(_)) => Err(InvalidRequest::NameAndNames),
        (None, None) => Err(v1_refusal(InvalidRequest::NotJson(
            "expected a string \"name\" or an array \"names\"".to_owned(),
        ))),
    }
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

/// What a consumer answered to a batch: one outcome per name, in the
/// request's order; or, when that would be larger than the broker accepts in
/// one message, one part of it (contract v1.2): the outcomes of the names
/// from `offset` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReply {
    /// The word of the consumer that answered.
    pub consumer: String,
    /// For a part, the index of the name its first result is for; `None`
    /// for a whole reply (one result per name).
    pub offset: Option<usize>,
    /// One greeting or error per name of the request (from `offset`).
    pub results: Vec<Outcome>,
}

/// A reply in either form, as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyReply {
    /// A v1 reply: to a single-name request, or refusing a whole request.
    Single(Reply),
    /// A v1.1 reply to a batch.
    Batch(BatchReply),
}

impl AnyReply {
    /// The word of the consumer that answered.
    #[must_use]
    pub fn consumer(&self) -> &str {
        match self {
            Self::Single(reply) => &reply.consumer,
            Self::Batch(reply) => &reply.consumer,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ReplyWire<'a> {
    #[serde(borrow)]
    consumer: Cow<'a, str>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    greeting: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    error: Option<ErrorWire<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offset: Option<usize>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    results: Option<Vec<ResultWire<'a>>>,
}

/// One name's result in a batch reply: exactly one of the two.
#[derive(Serialize, Deserialize)]
struct ResultWire<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    greeting: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    error: Option<ErrorWire<'a>>,
}

#[derive(Serialize, Deserialize)]
struct ErrorWire<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

impl<'a> ResultWire<'a> {
    fn borrow(outcome: &'a Outcome) -> Self {
        match outcome {
            Outcome::Greeting(g) => Self {
                greeting: Some(Cow::Borrowed(g)),
                error: None,
            },
            Outcome::Error { code, message } => Self {
                greeting: None,
                error: Some(ErrorWire {
                    code: Cow::Borrowed(code),
                    message: Cow::Borrowed(message),
                }),
            },
        }
    }

    fn into_outcome(self) -> Result<Outcome, MalformedReply> {
        match (self.greeting, self.error) {
            (Some(greeting), None) => Ok(Outcome::Greeting(greeting.into_owned())),
            (None, Some(ErrorWire { code, message })) => Ok(Outcome::Error {
                code: code.into_owned(),
                message: message.into_owned(),
            }),
            _ => Err(MalformedReply(
                "exactly one of \"greeting\" and \"error\" must be present".to_owned(),
            )),
        }
    }
}

/// A reply body that does not follow the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed reply: {0}")]
pub struct MalformedReply(String);

impl Reply {
    /// Encodes the reply body.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let ResultWire { greeting, error } = ResultWire::borrow(&self.outcome);
        let wire = ReplyWire {
            consumer: Cow::Borrowed(self.consumer.as_str()),
            greeting,
            error,
            offset: None,
            results: None,
        };
        // A struct of strings always serialises.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Encodes the reply body, at most `limit` bytes: an answer that would
    /// be larger is replaced by a [`REPLY_TOO_LARGE`](names::REPLY_TOO_LARGE)
    /// error saying its size.
    #[must_use]
    pub fn encode_within(&self, limit: usize) -> Vec<u8> {
        let body = self.encode();
        if body.len() <= limit {
            return body;
        }
        Self {
            consumer: self.consumer.clone(),
            outcome: too_large(body.len(), limit),
        }
        .encode()
    }

    /// Decodes a v1 reply body: exactly one of `greeting` and `error` must
    /// be present.
    ///
    /// # Errors
    /// [`MalformedReply`] for anything else, a batch reply included.
    pub fn decode(body: &[u8]) -> Result<Self, MalformedReply> {
        match decode_reply(body)? {
            AnyReply::Single(reply) => Ok(reply),
            AnyReply::Batch(_) => Err(MalformedReply(
                "a batch reply (\"results\") where one result was expected".to_owned(),
            )),
        }
    }
}

/// The outcome that replaces an answer of `bytes` bytes, over `limit`.
fn too_large(bytes: usize, limit: usize) -> Outcome {
    Outcome::Error {
        code: names::REPLY_TOO_LARGE.to_owned(),
        message: format!(
            "the answer is {bytes} bytes, more than the {limit} the broker accepts in a message"
        ),
    }
}

impl BatchReply {
    /// Encodes the reply body.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        encode_part(&self.consumer, self.offset, &self.results)
    }

    /// Encodes the reply as bodies of at most `limit` bytes each: the whole
    /// reply when it fits, else consecutive parts (contract v1.2), each
    /// naming the `offset` of its first result. An answer too large even
    /// alone in a part is replaced by a
    /// [`REPLY_TOO_LARGE`](names::REPLY_TOO_LARGE) error. `limit` is at
    /// least [`MIN_MESSAGE_SIZE`].
    #[must_use]
    pub fn encode_within(&self, limit: usize) -> Vec<Vec<u8>> {
        let whole = self.encode();
        if whole.len() <= limit {
            return vec![whole];
        }
        let first = self.offset.unwrap_or(0);
        // The envelope of a part with the largest offset it can have.
        let envelope =
            encode_part::<Outcome>(&self.consumer, Some(first + self.results.len()), &[]).len();
        let room = limit.saturating_sub(envelope);
        let mut parts = Vec::new();
        let mut start = 0;
        let mut bytes = 0;
        let mut results: Vec<Cow<'_, Outcome>> = Vec::with_capacity(self.results.len());
        for outcome in &self.results {
            // Its JSON, and a comma after the first of a part.
            let mut size = result_bytes(outcome);
            let outcome = if size > room {
                let replaced = too_large(size, limit);
                size = result_bytes(&replaced);
                Cow::Owned(replaced)
            } else {
                Cow::Borrowed(outcome)
            };
            if results.len() > start && bytes + 1 + size > room {
                parts.push(encode_part(
                    &self.consumer,
                    Some(first + start),
                    &results[start..],
                ));
                start = results.len();
                bytes = 0;
            }
            bytes += size + usize::from(results.len() > start);
            results.push(outcome);
        }
        if start < results.len() || parts.is_empty() {
            parts.push(encode_part(
                &self.consumer,
                Some(first + start),
                &results[start..],
            ));
        }
        parts
    }
}

/// The smallest `amqp.max_message_size` the services accept: a single-name
/// request (at most [`MAX_REQUEST_BYTES`]) and any error reply fit, with room.
pub const MIN_MESSAGE_SIZE: usize = 8 * 1024;

fn result_bytes(outcome: &Outcome) -> usize {
    serde_json::to_vec(&ResultWire::borrow(outcome)).map_or(0, |v| v.len())
}

fn encode_part<O: std::borrow::Borrow<Outcome>>(
    consumer: &str,
    offset: Option<usize>,
    results: &[O],
) -> Vec<u8> {
    let wire = ReplyWire {
        consumer: Cow::Borrowed(consumer),
        greeting: None,
        error: None,
        offset,
        results: Some(
            results
                .iter()
                .map(|r| ResultWire::borrow(r.borrow()))
                .collect(),
        ),
    };
    // A struct of strings always serialises.
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// Decodes a reply body in either form: exactly one of `greeting`, `error`
/// and `results` must be present, and each result holds exactly one of
/// `greeting` and `error`.
///
/// # Errors
/// [`MalformedReply`] for anything else.
pub fn decode_reply(body: &[u8]) -> Result<AnyReply, MalformedReply> {
    let wire: ReplyWire =
        serde_json::from_slice(body).map_err(|e| MalformedReply(e.to_string()))?;
    let consumer = wire.consumer.into_owned();
    match (wire.greeting, wire.error, wire.results) {
        (greeting, error, None) => Ok(AnyReply::Single(Reply {
            consumer,
            outcome: ResultWire { greeting, error }.into_outcome()?,
        })),
        (None, None, Some(results)) => Ok(AnyReply::Batch(BatchReply {
            consumer,
            offset: wire.offset,
            results: results
                .into_iter()
                .map(ResultWire::into_outcome)
                .collect::<Result<_, _>>()?,
        })),
        _ => Err(MalformedReply(
            "exactly one of \"greeting\", \"error\" and \"results\" must be present".to_owned(),
        )),
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
