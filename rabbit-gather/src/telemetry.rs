//! Logging for the binaries: human-readable lines (or one JSON object per
//! line, see [`LogFormat`]) on stderr (stdout carries the program's output),
//! filtered by `RUST_LOG`.
//!
//! Without `RUST_LOG` only this workspace's own crates log, at the level the
//! binary chooses: lapin and its dependencies log every failure themselves
//! (raw `Debug` dumps of frames and returned messages, and retries that are
//! not ours), which the user would see on top of our one line about the same
//! problem. `RUST_LOG=debug` shows everything.
//!
//! Behind the `telemetry` feature: installing a global subscriber is the
//! binary's choice, and an embedder keeps its own (the library only emits
//! `tracing` events and spans, which need no subscriber).

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::{EnvFilter, fmt};

pub use crate::settings::LogFormat;

/// The crates whose events the default filter lets through (library and
/// binary names of this workspace).
const OUR_TARGETS: &[&str] = &["rabbit_gather", "producer", "consumer", "bench"];

/// The filter used when `RUST_LOG` is unset or invalid: `level` for our own
/// crates, nothing from anyone else.
#[must_use]
pub fn default_filter(level: Level) -> String {
    let level = level.as_str().to_ascii_lowercase();
    std::iter::once("off".to_owned())
        .chain(OUR_TARGETS.iter().map(|target| format!("{target}={level}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Installs the global subscriber for text lines: see [`init_with`].
pub fn init(level: Level) {
    init_with(level, LogFormat::Text);
}

/// Installs the global subscriber: `RUST_LOG` when set and valid, else
/// [`default_filter`]`(level)`; lines in `format`. In JSON, each line is one
/// object with `timestamp`, `level`, `fields` (the message and its fields)
/// and `span` (the fields of the innermost span, such as a request's
/// `correlation_id` and `trace_id`). Calling it twice is harmless (the second
/// call is ignored).
pub fn init_with(level: Level, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter(level)));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // Err only means a subscriber is already installed (tests, a second call).
    let _already_set = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use super::*;

    /// Captures what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_default_filter_shows_our_crates_at_the_level_and_silences_lapin() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = fmt()
            .with_env_filter(EnvFilter::new(default_filter(Level::WARN)))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "lapin::io_loop", "raw dump from lapin");
            tracing::warn!(target: "amq_protocol::frame", "raw dump from a dependency");
            tracing::warn!(target: "rabbit_gather::rpc", "our warning");
            tracing::warn!(target: "producer", "the producer's warning");
            tracing::info!(target: "rabbit_gather::rpc", "our info");
        });
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
        assert!(text.contains("our warning"), "{text}");
        assert!(text.contains("the producer's warning"), "{text}");
        assert!(!text.contains("raw dump"), "{text}");
        assert!(!text.contains("our info"), "below the level: {text}");
    }
}
