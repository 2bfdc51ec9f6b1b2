//! The scatter-gather RPC client: one connection, one confirm-mode channel, one
//! reply consumer, and a map of calls in flight.
//!
//! Replies come back to one of two places (`rpc.reply_queue`):
//!
//! - **exclusive** (default): a queue of the connection's own, named under
//!   `topology.reply_prefix`, bound to the reply exchange by its name and
//!   deleted by the broker with the connection (a new connection makes a new
//!   one). A real queue buffers replies and never drops them, and consumers
//!   publish to it mandatory, so a reply to a client that has gone is
//!   returned to them rather than lost unseen. RabbitMQ's documentation
//!   advises it over direct reply-to when one requester receives hundreds of
//!   replies a second or needs every one, as a producer gathering from
//!   several consumers at 64 in flight does.
//! - **direct**: RabbitMQ's direct reply-to: no queue to declare, one hop
//!   fewer. At-most-once, and from RabbitMQ 4.2 a "volatile" queue type that
//!   may drop replies; what contract v1 clients use.
//!
//! Either way, replies are exactly as durable as the call: lost with the
//! connection, but so are the callers waiting for them, which then fail at
//! once with [`RpcError::ConnectionLost`].
//!
//! Files: `client.rs` ([`RpcClient`]), `dispatch.rs` (its reply router and
//! liveness probe), `pending.rs` and `gather.rs` (the calls in flight and
//! one call's wait), `reconnecting.rs` ([`ReconnectingClient`]),
//! `batching.rs` ([`call_each`]), `typed.rs` (typed requests and answers),
//! `until.rs`, `gathered.rs`, `stats.rs`, `correlation.rs`, `error.rs` (the
//! types named after them). This file only declares and re-exports.

mod batching;
mod chunks;
mod client;
mod correlation;
mod dispatch;
mod error;
mod gather;
mod gathered;
mod pending;
mod reconnecting;
mod stats;
mod typed;
mod until;

pub use crate::backoff::RECONNECT_MIN_DELAY;
pub use batching::{CallOptions, Called, call_each};
pub use client::RpcClient;
pub use correlation::CorrelationId;
pub use error::RpcError;
pub use gathered::Gathered;
pub use reconnecting::{NACK_RETRY_DELAY, ReconnectingClient};
pub use stats::Stats;
pub use until::{ROLL_CALL_STALL, Until};
