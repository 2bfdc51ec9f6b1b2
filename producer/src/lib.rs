//! The `producer` binary's logic: stream names, call every consumer for each
//! with bounded concurrency, print the replies in input order.
//!
//! `main.rs` only parses flags, builds the input and maps the [`Summary`] to an
//! exit code; tests call [`run`] directly.

pub mod attached;
pub mod cli;
pub mod dead_letters;
mod error;
pub mod exit;
pub mod input;
mod latency;
pub mod output;
pub mod progress;
mod run;
mod sinks;
mod summary;

pub use cli::Cli;
pub use error::ProducerError;
pub use exit::exit_now;
pub use input::{InputError, Names};
pub use latency::Latency;
pub use output::Format;
pub use run::{EXPECT_ALL, print_responders, run};
pub use sinks::Sinks;
pub use summary::Summary;
