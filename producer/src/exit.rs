//! Exit codes of the `producer` binary (also in `producer --help`), and
//! how its binaries leave.

use std::io::Write;

/// Every name got a greeting from every expected consumer.
pub const OK: u8 = 0;
/// Unexpected failure, such as a closed stdout.
pub const FAILURE: u8 = 1;
/// Bad usage (flags, settings, a broker URL that does not parse) or an
/// invalid name.
pub const USAGE: u8 = 2;
/// A reply missing by the deadline, or an error reply.
pub const INCOMPLETE: u8 = 3;
/// Broker unreachable or connection lost.
pub const BROKER: u8 = 4;
/// No queue bound to the exchange, or (`--expect all`, `--responders`)
/// no consumer answered a roll call: no consumer is running.
pub const NO_ROUTE: u8 = 5;
/// The broker refused some names because a consumer's queue was full
/// (overloaded); each is reported, none silently dropped.
pub const OVERLOADED: u8 = 6;
/// Stopped by Ctrl+C or SIGTERM.
pub const INTERRUPTED: u8 = 130;

/// Exits with `code` at once, output flushed. Returning from `main` would
/// drop the runtime while lapin's I/O thread may still wait on a task of it,
/// and that thread then prints a panic ("task was cancelled") after our one
/// line about a lost connection (seen once in a CI run). For the binaries of
/// this package.
pub fn exit_now(code: u8) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(i32::from(code))
}
