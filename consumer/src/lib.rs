//! The `consumer` binary's logic: flags, settings, and the service for one word.
//!
//! `main.rs` only parses flags and maps the outcome to an exit code; tests call
//! [`run`] with their own shutdown future.

use std::{future::Future, process::ExitCode};

use clap::Parser;
use common::{
    Settings,
    cli::SharedArgs,
    service::{self, ServiceError},
    topology::Word,
};

/// Exit codes of the `consumer` binary.
pub mod exit {
    /// Stopped by SIGINT or SIGTERM after finishing the message in hand.
    pub const OK: u8 = 0;
    /// Any other failure.
    pub const FAILURE: u8 = 1;
    /// Bad flags or configuration.
    pub const USAGE: u8 = 2;
    /// The broker refused the service for good: credentials, permissions, or
    /// a queue or exchange that exists with other arguments. (An unreachable
    /// broker is retried forever, never an exit.)
    pub const BROKER: u8 = 4;
}

/// Answers greeting requests for one word: `consumer hello` prints and replies
/// `hello <NAME>` for every request published to the greetings exchange.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The greeting word this service answers with (hello, goodbye, bonjour...).
    pub word: String,
    /// Config file, broker URL and prefix.
    #[command(flatten)]
    pub shared: SharedArgs,
    /// Unacknowledged deliveries at once [default: 1].
    #[arg(long)]
    pub prefetch: Option<u16>,
    /// Deliveries handled at once, at most the prefetch [default: 1].
    #[arg(long)]
    pub concurrency: Option<u16>,
}

impl Cli {
    /// Loads the layered settings and applies the flags on top.
    ///
    /// # Errors
    /// A message naming the bad setting or word.
    pub fn settings(&self) -> anyhow::Result<(Settings, Word)> {
        let mut settings = self.shared.load()?;
        if let Some(prefetch) = self.prefetch {
            settings.consumer.prefetch = prefetch;
        }
        if let Some(concurrency) = self.concurrency {
            settings.consumer.concurrency = concurrency;
        }
        settings.validate()?;
        Ok((settings, Word::parse(&self.word)?))
    }
}

/// Runs the service for `word` until `shutdown` completes.
///
/// # Errors
/// The service's failure; see [`ServiceError`].
pub async fn run(
    settings: &Settings,
    word: Word,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    service::run(settings, word, shutdown).await
}

/// Maps a service failure to the documented exit code.
#[must_use]
pub fn exit_code(error: &ServiceError) -> ExitCode {
    ExitCode::from(match error {
        ServiceError::Connect(common::amqp::ConnectError::InvalidUrl(_)) => exit::USAGE,
        ServiceError::Connect(_) | ServiceError::ConsumerEnded | ServiceError::Broker { .. } => {
            exit::BROKER
        }
    })
}
