//! Reply bodies: `{"consumer", "<reply_field>" | "error"}` for a single
//! request, `{"consumer", "offset"?, "results": [...]}` for a batch (or one
//! part of its answer), and `{"consumer"}` alone for a roll call.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{
    contract::Contract,
    fields::Fields,
    json::{Json, write_str},
    names,
};

/// What one responder answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<T = Json> {
    /// The name of the responder that answered (its word).
    pub consumer: String,
    /// The answer, or why there is none.
    pub outcome: Outcome<T>,
}

/// The two kinds of result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T = Json> {
    /// The answer (for greetings, `hello Ada`).
    Ok(T),
    /// The responder refused the request, or its handler failed.
    Error {
        /// Machine-readable code, e.g. [`INVALID_REQUEST`](names::INVALID_REQUEST).
        code: String,
        /// Human-readable reason.
        message: String,
    },
}

impl<T> Outcome<T> {
    /// The answer, if there is one.
    #[must_use]
    pub fn ok(&self) -> Option<&T> {
        match self {
            Self::Ok(answer) => Some(answer),
            Self::Error { .. } => None,
        }
    }
}

impl Outcome {
    /// Decodes the answer as a `T`; an answer that does not decode becomes
    /// a [`MALFORMED_REPLY`](names::MALFORMED_REPLY) error.
    #[must_use]
    pub fn decode<T: serde::de::DeserializeOwned>(self) -> Outcome<T> {
        match self {
            Self::Ok(json) => match json.decode() {
                Ok(answer) => Outcome::Ok(answer),
                Err(message) => Outcome::Error {
                    code: names::MALFORMED_REPLY.to_owned(),
                    message: format!("the answer does not decode: {message}"),
                },
            },
            Self::Error { code, message } => Outcome::Error { code, message },
        }
    }
}

/// What a responder answered to a batch: one outcome per item, in the
/// request's order; or, when that would be larger than the broker accepts in
/// one message, one part of it (contract v1.2): the outcomes of the items
/// from `offset` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReply {
    /// The name of the responder that answered.
    pub consumer: String,
    /// For a part, the index of the item its first result is for; `None`
    /// for a whole reply (one result per item).
    pub offset: Option<usize>,
    /// One answer or error per item of the request (from `offset`).
    pub results: Vec<Outcome>,
}

/// A reply in any form, as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyReply {
    /// A reply to a single request, or refusing a whole request.
    Single(Reply),
    /// A reply to a batch, whole or one part.
    Batch(BatchReply),
    /// An answer to a roll call: only the responder's name.
    Present(String),
}

impl AnyReply {
    /// The name of the responder that answered.
    #[must_use]
    pub fn consumer(&self) -> &str {
        match self {
            Self::Single(reply) => &reply.consumer,
            Self::Batch(reply) => &reply.consumer,
            Self::Present(consumer) => consumer,
        }
    }
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

/// Appends one result: `{"<reply_field>": ...}` or `{"error": {...}}`.
pub(super) fn write_result(contract: &Contract, out: &mut Vec<u8>, outcome: &Outcome) {
    out.push(b'{');
    write_outcome(contract, out, outcome);
    out.push(b'}');
}

/// Appends an outcome's field, without braces.
fn write_outcome(contract: &Contract, out: &mut Vec<u8>, outcome: &Outcome) {
    match outcome {
        Outcome::Ok(answer) => {
            write_str(out, contract.reply_field);
            out.push(b':');
            out.extend_from_slice(answer.as_str().as_bytes());
        }
        Outcome::Error { code, message } => {
            out.extend_from_slice(br#""error":"#);
            // A struct of strings always serialises.
            let _infallible = serde_json::to_writer(
                &mut *out,
                &ErrorWire {
                    code: Cow::Borrowed(code),
                    message: Cow::Borrowed(message),
                },
            );
        }
    }
}

/// Reads one result: exactly one of the answer and `error`.
pub(super) fn decode_result(
    contract: &Contract,
    fields: &Fields<'_>,
) -> Result<Outcome, MalformedReply> {
    // `error: null` counts as absent (clients that write empty optional
    // fields send it); an answer may be `null` (a unit value).
    match (fields.get(contract.reply_field), fields.present("error")) {
        (Some(answer), None) => Ok(Outcome::Ok(Json::from_raw(answer))),
        (None, Some(error)) => {
            let ErrorWire { code, message } = serde_json::from_str(error.get())
                .map_err(|e| MalformedReply(format!("\"error\": {e}")))?;
            Ok(Outcome::Error {
                code: code.into_owned(),
                message: message.into_owned(),
            })
        }
        _ => Err(MalformedReply(format!(
            "exactly one of {:?} and \"error\" must be present",
            contract.reply_field
        ))),
    }
}

impl Reply {
    /// Encodes the reply body.
    #[must_use]
    pub fn encode(&self, contract: &Contract) -> Vec<u8> {
        let mut body = envelope(&self.consumer);
        body.push(b',');
        write_outcome(contract, &mut body, &self.outcome);
        body.push(b'}');
        body
    }

    /// Encodes the reply body, at most `limit` bytes: an answer that would
    /// be larger is replaced by a [`REPLY_TOO_LARGE`](names::REPLY_TOO_LARGE)
    /// error saying its size.
    #[must_use]
    pub fn encode_within(&self, contract: &Contract, limit: usize) -> Vec<u8> {
        let body = self.encode(contract);
        if body.len() <= limit {
            return body;
        }
        Self {
            consumer: self.consumer.clone(),
            outcome: too_large(body.len(), limit),
        }
        .encode(contract)
    }

    /// Decodes a reply to a single request.
    ///
    /// # Errors
    /// [`MalformedReply`] for anything else, a batch reply included.
    pub fn decode(contract: &Contract, body: &[u8]) -> Result<Self, MalformedReply> {
        match decode_reply(contract, body)? {
            AnyReply::Single(reply) => Ok(reply),
            AnyReply::Batch(_) | AnyReply::Present(_) => Err(MalformedReply(
                "a batch reply or a roll-call answer where one result was expected".to_owned(),
            )),
        }
    }
}

/// The body of an answer to a roll call: `{"consumer": "<responder>"}`.
#[must_use]
pub fn encode_presence(consumer: &str) -> Vec<u8> {
    let mut body = envelope(consumer);
    body.push(b'}');
    body
}

/// `{"consumer":"<consumer>"`, the start of every reply.
fn envelope(consumer: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(br#"{"consumer":"#);
    write_str(&mut body, consumer);
    body
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
    pub fn encode(&self, contract: &Contract) -> Vec<u8> {
        encode_part(contract, &self.consumer, self.offset, &self.results)
    }

    /// Encodes the reply as bodies of at most `limit` bytes each: the whole
    /// reply when it fits, else consecutive parts (contract v1.2), each
    /// naming the `offset` of its first result. An answer too large even
    /// alone in a part is replaced by a
    /// [`REPLY_TOO_LARGE`](names::REPLY_TOO_LARGE) error. `limit` is at
    /// least [`MIN_MESSAGE_SIZE`](super::contract::MIN_MESSAGE_SIZE).
    #[must_use]
    pub fn encode_within(&self, contract: &Contract, limit: usize) -> Vec<Vec<u8>> {
        let whole = self.encode(contract);
        if whole.len() <= limit {
            return vec![whole];
        }
        let first = self.offset.unwrap_or(0);
        // The envelope of a part with the largest offset it can have.
        let envelope = encode_part::<Outcome>(
            contract,
            &self.consumer,
            Some(first + self.results.len()),
            &[],
        )
        .len();
        let room = limit.saturating_sub(envelope);
        let mut parts = Vec::new();
        let mut start = 0;
        let mut bytes = 0;
        let mut results: Vec<Cow<'_, Outcome>> = Vec::with_capacity(self.results.len());
        for outcome in &self.results {
            // Its JSON, and a comma after the first of a part.
            let mut size = result_bytes(contract, outcome);
            let outcome = if size > room {
                let replaced = too_large(size, limit);
                size = result_bytes(contract, &replaced);
                Cow::Owned(replaced)
            } else {
                Cow::Borrowed(outcome)
            };
            if results.len() > start && bytes + 1 + size > room {
                parts.push(encode_part(
                    contract,
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
                contract,
                &self.consumer,
                Some(first + start),
                &results[start..],
            ));
        }
        parts
    }
}

fn result_bytes(contract: &Contract, outcome: &Outcome) -> usize {
    let mut out = Vec::new();
    write_result(contract, &mut out, outcome);
    out.len()
}

fn encode_part<O: std::borrow::Borrow<Outcome>>(
    contract: &Contract,
    consumer: &str,
    offset: Option<usize>,
    results: &[O],
) -> Vec<u8> {
    let mut body = envelope(consumer);
    if let Some(offset) = offset {
        body.extend_from_slice(format!(r#","offset":{offset}"#).as_bytes());
    }
    body.extend_from_slice(br#","results":["#);
    for (index, outcome) in results.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        write_result(contract, &mut body, outcome.borrow());
    }
    body.extend_from_slice(b"]}");
    body
}

/// Decodes a reply body in any form: exactly one of the answer, `error`
/// and `results` must be present, or none for a roll-call answer; each
/// result holds exactly one of the answer and `error`.
///
/// # Errors
/// [`MalformedReply`] for anything else.
pub fn decode_reply(contract: &Contract, body: &[u8]) -> Result<AnyReply, MalformedReply> {
    let fields: Fields<'_> =
        serde_json::from_slice(body).map_err(|e| MalformedReply(e.to_string()))?;
    let consumer: String = fields
        .get("consumer")
        .ok_or_else(|| MalformedReply("missing field `consumer`".to_owned()))
        .and_then(|c| {
            serde_json::from_str(c.get()).map_err(|e| MalformedReply(format!("\"consumer\": {e}")))
        })?;
    let answer = fields.get(contract.reply_field).is_some() || fields.present("error").is_some();
    match (answer, fields.present("results")) {
        (true, None) => Ok(AnyReply::Single(Reply {
            consumer,
            outcome: decode_result(contract, &fields)?,
        })),
        (false, Some(results)) => {
            let results: Vec<Fields<'_>> = serde_json::from_str(results.get())
                .map_err(|e| MalformedReply(format!("\"results\": {e}")))?;
            let offset = fields
                .present("offset")
                .map(|o| serde_json::from_str(o.get()))
                .transpose()
                .map_err(|e| MalformedReply(format!("\"offset\": {e}")))?;
            Ok(AnyReply::Batch(BatchReply {
                consumer,
                offset,
                results: results
                    .iter()
                    .map(|r| decode_result(contract, r))
                    .collect::<Result<_, _>>()?,
            }))
        }
        (false, None) => Ok(AnyReply::Present(consumer)),
        (true, Some(_)) => Err(MalformedReply(format!(
            "exactly one of {:?}, \"error\" and \"results\" must be present",
            contract.reply_field
        ))),
    }
}
