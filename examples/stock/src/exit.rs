//! Exit codes of the `stock` binary, so that a script can tell a partial
//! answer from a broker that is down.

/// Every live warehouse answered with a level.
pub const OK: u8 = 0;
/// Anything else: bad flags or item name (a broker URL that does not parse,
/// an unreadable TLS or password file included), a warehouse answering with
/// an error, no live warehouse at all, a refused request.
pub const FAILURE: u8 = 1;
/// The broker is unreachable, or the connection to it was lost.
pub const UNREACHABLE: u8 = 2;
/// A warehouse that answered the roll call did not answer the query by the
/// deadline (the total covers the others).
pub const MISSING: u8 = 3;
