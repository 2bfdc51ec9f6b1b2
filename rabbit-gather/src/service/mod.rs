//! The consumer runtime: one service per greeting word, answering requests
//! from its queue (wire contract v1), and healing itself after broker faults.
//!
//! Prefetch is configurable (default 1) and acks are manual: a request is
//! acked only after its reply has been confirmed by the broker, so a crash at
//! any point leaves it to be redelivered, never lost.
//!
//! The service is a supervisor loop around sessions (`session.rs`): when the
//! connection or a channel drops (broker restart, network cut, channel closed
//! by the broker) the session ends, and a new one is opened after a capped
//! exponential backoff with jitter, re-declaring the topology. The service
//! never exits on a broker outage, only on shutdown or on an error that
//! retrying cannot fix (bad URL, refused credentials, conflicting topology).
//!
//! Shutdown stops taking new deliveries, finishes the ones in hand, cancels
//! the consumer and closes channels and connections. A broker failure while
//! draining ends the service too (the deliveries in hand go back to their
//! queue with the connection): shutdown is asked after every session.
//!
//! Files: `runtime.rs` ([`ConsumerService`] and its supervisor loop),
//! `session.rs` (one connected session), `delivery.rs` (what happens to one
//! delivery), `plan.rs` (its decisions, pure), `publisher.rs` (replies and
//! copies, confirmed), `handler.rs` ([`Handler`]), `shared.rs` (what every
//! session shares), `liveness.rs`, `returns.rs`, `counters.rs`,
//! `health.rs`, `error.rs` ([`ServiceError`]). This file only declares and
//! re-exports.

mod counters;
mod delivery;
mod error;
mod handler;
mod health;
mod liveness;
mod plan;
mod publisher;
mod returns;
mod runtime;
mod session;
mod shared;

pub use counters::{ServiceCounters, ServiceStats};
pub use error::ServiceError;
pub use handler::{Context, Greeter, Handler, HandlerError, Retry};
pub use health::{Health, Phase};
pub use liveness::LIVENESS_CHECK;
pub use runtime::{ConsumerService, OPEN_TIMEOUT, run};
