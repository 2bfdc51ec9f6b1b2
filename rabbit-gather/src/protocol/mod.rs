//! The wire contract: request and reply bodies and their AMQP properties.
//!
//! The general envelope ([`Contract`]) carries any application's JSON
//! payloads: a request in one field or a batch of them in another, a reply
//! naming its responder with an answer, an error or a batch's results.
//! Greetings is one application of it ([`Contract::GREETINGS`], with
//! [`Name`] as its request), wire-compatible with contract v1 to v1.2.
//!
//! This module is the only place where protocol types meet `BasicProperties`;
//! the README's "Wire contract" section documents the same rules for clients
//! in other languages.

mod contract;
mod fields;
mod name;
pub mod names;
mod properties;
mod reply;
mod reply_to;
mod request;
mod utf8;

pub use contract::{Contract, Json};
pub use name::{MAX_NAME_CHARS, Name, NameError};
pub use properties::{
    ReturnAddress, is_json, is_roll_call, reply_properties, request_properties,
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

/// Content type of every request and reply body.
pub const CONTENT_TYPE: &str = "application/json";

/// Largest greetings single-name request body a service accepts, in bytes.
pub const MAX_REQUEST_BYTES: usize = Contract::GREETINGS.max_request_bytes;
/// Most items in one batch request, in greetings and by default.
pub const MAX_BATCH_NAMES: usize = Contract::GREETINGS.max_batch_items;
/// Largest batch request body a service accepts, in greetings and by
/// default, in bytes.
pub const MAX_BATCH_BYTES: usize = Contract::GREETINGS.max_batch_bytes;

/// The smallest `amqp.max_message_size` the services accept: a greetings
/// single request (at most 4 KiB) and any error reply fit, with room.
pub const MIN_MESSAGE_SIZE: usize = 8 * 1024;

#[cfg(test)]
mod tests;
