//! The `consumer` binary's logic: flags, settings, and the service for one word.
//!
//! `main.rs` only parses flags and calls [`serve`]; tests call [`run`] with a
//! shutdown token of their own, or [`serve`] with another handler (the
//! `gated-consumer` test binary).

use std::process::ExitCode;

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
    shutdown: common::shutdown::CancellationToken,
) -> Result<(), ServiceError> {
    service::run(settings, word, shutdown).await
}

/// The whole `consumer` program after flag parsing: logs, settings, the
/// service for the word (which `customize` may change, e.g. its handler),
/// run until SIGINT or SIGTERM, and the documented exit code. A binary of
/// your own with another handler is `serve(Cli::parse(), |s| s.with_handler(h))`.
pub async fn serve(
    cli: Cli,
    customize: impl FnOnce(service::ConsumerService) -> service::ConsumerService,
) -> ExitCode {
    common::telemetry::init(tracing::Level::INFO);
    let (settings, word) = match cli.settings() {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::error!("{}", common::report::one_line(error.as_ref()));
            return ExitCode::from(exit::USAGE);
        }
    };
    let service = customize(service::ConsumerService::new(&settings, word));
    match service.run(common::shutdown::on_signal()).await {
        Ok(()) => ExitCode::from(exit::OK),
        Err(error) => {
            let code = exit_code(&error);
            tracing::error!("consumer stopped: {}", common::report::one_line(&error));
            code
        }
    }
}

/// Maps a service failure to the documented exit code.
#[must_use]
pub fn exit_code(error: &ServiceError) -> ExitCode {
    ExitCode::from(match error {
        ServiceError::Connect(
            common::amqp::ConnectError::InvalidUrl(_)
            | common::amqp::ConnectError::TlsFile { .. }
            | common::amqp::ConnectError::PasswordFile { .. }
            | common::amqp::ConnectError::TlsWithoutAmqps,
        ) => exit::USAGE,
        ServiceError::Connect(_)
        | ServiceError::ConsumerEnded
        | ServiceError::Broker { .. }
        | ServiceError::ConnectionClosed { .. }
        | ServiceError::OpenTimedOut(_) => exit::BROKER,
    })
}
