//! Shared library of the greetings RPC system.
//!
//! A producer publishes a name to a fanout exchange; one consumer service per
//! greeting word (`hello`, `goodbye`, ...) answers on the request's `reply_to`
//! address with the same correlation id. This crate holds everything both sides
//! share, so that the binaries stay thin:
//!
//! - [`settings`]: layered configuration (defaults, file, environment, flags);
//! - [`amqp`]: connecting to the broker with a redacted URL and heartbeats;
//! - [`topology`]: exchange and queue names and their idempotent declaration;
//! - [`protocol`]: wire contract v1 (request and reply bodies and properties);
//! - [`rpc`]: the scatter-gather RPC client used by the producer;
//! - [`service`]: the consumer runtime that answers requests;
//! - [`shutdown`]: the Ctrl+C / SIGTERM future used by both binaries;
//! - [`trace`]: W3C trace context in message headers;
//! - [`telemetry`] and [`report`]: log lines and the one line a user reads
//!   about an error.

pub mod amqp;
pub mod cli;
pub mod duration;
pub mod protocol;
pub mod report;
pub mod rpc;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod topology;
pub mod trace;

pub use settings::Settings;
