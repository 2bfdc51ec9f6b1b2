//! What the `warehouse` and `stock` binaries share on the command line: the
//! route and broker flags, parsing with stock's exit codes, and log setup.

use std::process::ExitCode;

use clap::{Args, Parser};
use rabbit_gather::{Settings, settings::SettingsError};
use tracing_subscriber::EnvFilter;

use crate::{ROUTE, exit, load_settings};

/// The flags that say where to meet: the route and the broker.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The route (exchange and queue prefix) warehouses and clients share.
    #[arg(long, env = "STOCK_ROUTE", default_value = ROUTE)]
    pub route: String,
    /// Broker URL [default: AMQP_URL, else the local broker].
    #[arg(long, value_name = "URL")]
    pub amqp_url: Option<String>,
}

impl Connection {
    /// The settings these flags select, over the environment's.
    ///
    /// # Errors
    /// As [`load_settings`].
    pub fn settings(&self) -> Result<Settings, SettingsError> {
        load_settings(&self.route, self.amqp_url.as_deref())
    }
}

/// The parsed command line, or the exit code to end with: `--help` and
/// `--version` are printed and are no failure, bad flags print their error
/// and exit [`exit::FAILURE`] (2 means an unreachable broker here, not bad
/// usage).
///
/// # Errors
/// The exit code when the program should stop at once.
pub fn parse_or_exit<T: Parser>() -> Result<T, ExitCode> {
    T::try_parse().map_err(|error| {
        let _ = error.print();
        ExitCode::from(if error.use_stderr() {
            exit::FAILURE
        } else {
            exit::OK
        })
    })
}

/// Log lines on stderr, without targets: `RUST_LOG` when set, else
/// `default_filter`.
pub fn init_logs(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
