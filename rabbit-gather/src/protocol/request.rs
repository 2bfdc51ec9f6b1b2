//! Request bodies: one request (`{"<request_field>": ...}`) or a batch
//! (`{"<batch_field>": [...]}`), encoded by clients and decoded, never
//! trusting a byte of it, by services.

use serde_json::value::RawValue;

/// Error code of a request the service could not understand (bad body).
pub use super::names::INVALID_REQUEST;
use super::{
    contract::Contract,
    fields::Fields,
    json::{Json, write_str},
    reply::{Outcome, decode_result, write_result},
    utf8::NotUtf8,
};

/// A decoded request: one item, or a batch of them. Each item is decoded to
/// the service's request type only when it is handled, so that one bad item
/// of a batch fails only itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `{"<request_field>": ...}`.
    Single(Json),
    /// `{"<batch_field>": [...]}`: one result per item, in order.
    Batch(Vec<Json>),
}

/// Why a request body was refused. Every variant maps to the error code
/// [`INVALID_REQUEST`]; the Display text is the reply's `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    /// Body longer than the contract's limit for its form.
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
    /// Body is not a JSON object with the request field or an array in the
    /// batch field.
    #[error("body is not a JSON object with a {request:?} or an array {batch:?}: {detail}")]
    NotJson {
        /// The contract's request field.
        request: &'static str,
        /// The contract's batch field.
        batch: &'static str,
        /// What the parser found.
        detail: String,
    },
    /// Body has both the request field and the batch field.
    #[error("body has both {request:?} and {batch:?}; send one")]
    Both {
        /// The contract's request field.
        request: &'static str,
        /// The contract's batch field.
        batch: &'static str,
    },
    /// A batch with no items, or more than the contract allows.
    #[error("a batch has {count} items; 1 to {max} are allowed")]
    BatchSize {
        /// Items in the batch.
        count: usize,
        /// The contract's most.
        max: usize,
    },
    /// The request does not decode as the service's request type (a name
    /// that breaks a rule, a field of the wrong type).
    #[error("{0}")]
    Payload(String),
    /// A short-string property or header held bytes that are not UTF-8.
    #[error("{0} is not UTF-8")]
    PropertyNotUtf8(NotUtf8),
    /// The request's `content_type` is set to something other than JSON.
    #[error("content_type is {0:?}; requests are application/json")]
    ContentType(String),
}

impl InvalidRequest {
    /// The error code sent in the reply.
    #[must_use]
    pub fn code(&self) -> &'static str {
        INVALID_REQUEST
    }
}

/// Why a batch cannot be sent: the limits a service enforces, checked by
/// the sender before anything is published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// No items, or more than the contract allows.
    #[error("a batch has {count} items; 1 to {max} are allowed")]
    Size {
        /// Items in the batch.
        count: usize,
        /// The contract's most.
        max: usize,
    },
    /// The encoded body is longer than the contract's limit, or than the
    /// broker accepts (`amqp.max_message_size`).
    #[error("a request body is {bytes} bytes, more than the {limit} allowed")]
    TooLarge {
        /// Size of the encoded body.
        bytes: usize,
        /// The limit it breaks.
        limit: usize,
    },
    /// A request could not be encoded as JSON.
    #[error("a request cannot be encoded as JSON: {0}")]
    Encode(String),
}

/// Encodes the body of a single request.
#[must_use]
pub fn encode_request(contract: &Contract, request: &Json) -> Vec<u8> {
    let mut body = Vec::with_capacity(request.as_str().len() + contract.request_field.len() + 5);
    body.push(b'{');
    write_str(&mut body, contract.request_field);
    body.push(b':');
    body.extend_from_slice(request.as_str().as_bytes());
    body.push(b'}');
    body
}

/// Encodes a request for `items`: the single form for one item, as the
/// contract asks, else a batch, for a broker that accepts bodies of at most
/// `max_message_size` bytes (`amqp.max_message_size`).
///
/// # Errors
/// [`BatchError`] when the batch breaks a limit of the contract or the
/// broker's.
pub fn encode_batch_within(
    contract: &Contract,
    items: &[Json],
    max_message_size: usize,
) -> Result<Vec<u8>, BatchError> {
    check_batch_within(contract, items, max_message_size)?;
    if let [one] = items {
        return Ok(encode_request(contract, one));
    }
    let mut body =
        Vec::with_capacity(contract.batch_overhead() + items.iter().map(item_bytes).sum::<usize>());
    body.push(b'{');
    write_str(&mut body, contract.batch_field);
    body.extend_from_slice(b":[");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item.as_str().as_bytes());
    }
    body.extend_from_slice(b"]}");
    Ok(body)
}

/// Checks `items` against the limits of a request without encoding it: 1 to
/// the contract's most items, and a body within the contract's limit for its
/// form and `max_message_size`.
///
/// # Errors
/// The limit the batch breaks.
pub fn check_batch_within(
    contract: &Contract,
    items: &[Json],
    max_message_size: usize,
) -> Result<(), BatchError> {
    if items.is_empty() || items.len() > contract.max_batch_items {
        return Err(BatchError::Size {
            count: items.len(),
            max: contract.max_batch_items,
        });
    }
    let (bytes, limit) = match items {
        [one] => (
            one.as_str().len() + contract.request_field.len() + 5,
            contract.max_request_bytes.min(max_message_size),
        ),
        _ => (
            contract.batch_overhead() - 1 + items.iter().map(item_bytes).sum::<usize>(),
            max_batch_bytes(contract, max_message_size),
        ),
    };
    if bytes > limit {
        return Err(BatchError::TooLarge { bytes, limit });
    }
    Ok(())
}

/// The largest batch body a client sends to a broker that accepts bodies
/// of at most `max_message_size` bytes: the smaller of that and the
/// contract's limit.
#[must_use]
pub fn max_batch_bytes(contract: &Contract, max_message_size: usize) -> usize {
    contract.max_batch_bytes.min(max_message_size)
}

/// Bytes `item` adds to a batch body: its JSON and a comma. A sender filling
/// batches sums these over [`Contract::batch_overhead`].
#[must_use]
pub fn item_bytes(item: &Json) -> usize {
    item.as_str().len() + 1
}

/// Decodes a request body, in either form. Never panics, whatever the
/// bytes.
///
/// Whole-body problems (size, encoding, shape, batch size) refuse the whole
/// request; each item is decoded to the service's type when it is handled.
///
/// # Errors
/// [`InvalidRequest`] saying what is wrong with the body.
pub fn decode_request(contract: &Contract, body: &[u8]) -> Result<Request, InvalidRequest> {
    let largest = contract.max_batch_bytes.max(contract.max_request_bytes);
    if body.len() > largest {
        return Err(InvalidRequest::TooLarge {
            bytes: body.len(),
            limit: largest,
        });
    }
    // A body over the single-request limit that is not a well-formed batch
    // is refused as too large.
    let single_refusal = |error: InvalidRequest| {
        if body.len() > contract.max_request_bytes {
            InvalidRequest::TooLarge {
                bytes: body.len(),
                limit: contract.max_request_bytes,
            }
        } else {
            error
        }
    };
    let not_json = |detail: String| InvalidRequest::NotJson {
        request: contract.request_field,
        batch: contract.batch_field,
        detail,
    };
    let text = std::str::from_utf8(body)
        .map_err(|e| single_refusal(InvalidRequest::NotUtf8(e.to_string())))?;
    if !text.trim_start().starts_with('{') {
        return Err(single_refusal(not_json(
            "expected a JSON object".to_owned(),
        )));
    }
    let fields: Fields<'_> =
        serde_json::from_str(text).map_err(|e| single_refusal(not_json(e.to_string())))?;
    // A batch field that is `null` counts as absent, as clients that write
    // empty optional fields send it; a request may be `null` (a unit value).
    match (
        fields.get(contract.request_field),
        fields.present(contract.batch_field),
    ) {
        (Some(request), None) => {
            if body.len() > contract.max_request_bytes {
                return Err(InvalidRequest::TooLarge {
                    bytes: body.len(),
                    limit: contract.max_request_bytes,
                });
            }
            Ok(Request::Single(Json::from_raw(request)))
        }
        (None, Some(batch)) => {
            if body.len() > contract.max_batch_bytes {
                return Err(InvalidRequest::TooLarge {
                    bytes: body.len(),
                    limit: contract.max_batch_bytes,
                });
            }
            let items: Vec<&RawValue> =
                serde_json::from_str(batch.get()).map_err(|e| not_json(e.to_string()))?;
            if items.is_empty() || items.len() > contract.max_batch_items {
                return Err(InvalidRequest::BatchSize {
                    count: items.len(),
                    max: contract.max_batch_items,
                });
            }
            Ok(Request::Batch(
                items.into_iter().map(Json::from_raw).collect(),
            ))
        }
        (Some(_), Some(_)) => Err(InvalidRequest::Both {
            request: contract.request_field,
            batch: contract.batch_field,
        }),
        (None, None) => Err(single_refusal(not_json(format!(
            "expected {:?} or an array {:?}",
            contract.request_field, contract.batch_field
        )))),
    }
}

/// The results carried in a batch retry copy's body (field `done`), one per
/// item (`None` where the item is still to be handled); `None` when the body
/// carries none, or not one per item of an `items`-long batch.
#[must_use]
pub fn decode_done(contract: &Contract, body: &[u8], items: usize) -> Option<Vec<Option<Outcome>>> {
    let fields: Fields<'_> = serde_json::from_slice(body).ok()?;
    let done: Vec<Option<Fields<'_>>> = serde_json::from_str(fields.get("done")?.get()).ok()?;
    if done.len() != items {
        return None;
    }
    Some(
        done.into_iter()
            .map(|result| result.and_then(|r| decode_result(contract, &r).ok()))
            .collect(),
    )
}

/// The body of a batch's retry copy: the request `body` with the results
/// already known (`done`, one per item, `None` for an item to handle again),
/// if it stays within `limit` bytes (and the contract's batch limit); else
/// `None`, and the copy carries the request as it was (every item handled
/// again).
#[must_use]
pub fn encode_retry_batch(
    contract: &Contract,
    body: &[u8],
    done: &[Option<Outcome>],
    limit: usize,
) -> Option<Vec<u8>> {
    let fields: Fields<'_> = serde_json::from_slice(body).ok()?;
    let mut encoded = Vec::with_capacity(body.len() * 2);
    encoded.push(b'{');
    for (key, value) in fields.iter().filter(|(key, _)| *key != "done") {
        write_str(&mut encoded, key);
        encoded.push(b':');
        encoded.extend_from_slice(value.get().as_bytes());
        encoded.push(b',');
    }
    encoded.extend_from_slice(br#""done":["#);
    for (index, result) in done.iter().enumerate() {
        if index > 0 {
            encoded.push(b',');
        }
        match result {
            Some(outcome) => write_result(contract, &mut encoded, outcome),
            None => encoded.extend_from_slice(b"null"),
        }
    }
    encoded.extend_from_slice(b"]}");
    (encoded.len() <= limit.min(contract.max_batch_bytes)).then_some(encoded)
}
