//! The wire contract: request and reply bodies and their AMQP properties.
//!
//! The general envelope ([`Contract`]) carries any application's JSON
//! payloads: a request in one field or a batch of them in another, a reply
//! naming its responder with an answer, an error or a batch's results.
//! Greetings is one application of it ([`Contract::GREETINGS`], with
//! [`Name`] as its request), wire-compatible with contract v1 to v1.2.
//!
//! This module is the only place where protocol types meet `BasicProperties`;
//! docs/wire-contract.md specifies the same rules for clients
//! in other languages.
//!
//! Files: `request.rs` (request bodies, single and batch), `reply.rs` (reply
//! bodies), `properties.rs` (the AMQP properties of both), `reply_to.rs`
//! (where a reply may go), `contract.rs` ([`Contract`] and its limits),
//! `json.rs` ([`Json`]), `fields.rs` (reading an envelope's fields),
//! `greeting_name.rs` (greetings' [`Name`]), [`names`] (the wire contract's
//! error codes, headers and routing keys), `utf8.rs`. This file only
//! declares and re-exports.

mod contract;
mod fields;
mod greeting_name;
mod json;
pub mod names;
mod properties;
mod reply;
mod reply_to;
mod request;
mod utf8;

pub use contract::{
    Contract, MAX_BATCH_BYTES, MAX_BATCH_NAMES, MAX_REQUEST_BYTES, MIN_MESSAGE_SIZE,
};
pub use greeting_name::{MAX_NAME_CHARS, Name, NameError};
pub use json::Json;
pub use properties::{
    CONTENT_TYPE, ReturnAddress, is_json, is_roll_call, reply_properties, request_properties,
    roll_call_properties,
};
pub use reply::{
    AnyReply, BatchReply, MalformedReply, Outcome, Reply, decode_reply, encode_presence,
};
pub use reply_to::{
    DIRECT_REPLY_TO, ForbiddenReplyTo, ReplyRoute, ReplyToPolicy, SERVER_NAMED_PREFIX,
};
pub use request::{
    BatchError, INVALID_REQUEST, InvalidRequest, Request, check_batch_within, decode_done,
    decode_request, encode_batch_within, encode_request, encode_retry_batch, item_bytes,
    max_batch_bytes,
};
pub use utf8::{NotUtf8, not_utf8};

#[cfg(test)]
mod tests;
