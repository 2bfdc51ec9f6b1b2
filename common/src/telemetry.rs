//! Logging for both binaries: human-readable lines on stderr (stdout carries
//! the program's output), filtered by `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber. `default_filter` applies when `RUST_LOG` is
/// unset or invalid. Calling it twice is harmless (the second call is ignored).
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Err only means a subscriber is already installed (tests, a second call).
    let _already_set = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
