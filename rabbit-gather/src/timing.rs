//! The bounds the client and the service share on waiting for the broker:
//! the liveness probe both run on a connection, and how long each waits for
//! the broker to answer its close.
//!
//! The two close timeouts differ on purpose. A client closes one channel
//! and one connection, usually as its program ends, so it gives up after
//! [`CLIENT_CLOSE_TIMEOUT`]. A service cancels its consumer and closes two
//! connections (consuming and publishing) while requests may still be
//! draining, so it allows [`SERVICE_CLOSE_TIMEOUT`].

use std::time::Duration;

/// How often a connection is proved alive with a round trip (a `basic.qos`
/// with the same prefetch), by a service on its consuming connection and by
/// a client on its own. lapin can lose a connection without reporting it
/// (seen after a broker `stop_app` or restart: its I/O thread gone, the
/// connection still "connected", the consumer stream never ending, 1 time
/// in 10 to 15); the probe ends such a session within
/// [`LIVENESS_PROBE_INTERVAL`] + [`LIVENESS_PROBE_TIMEOUT`]. A service's
/// consuming connection never publishes, so a memory alarm does not block
/// it and cannot fail the probe; a client skips the probe while blocked.
pub const LIVENESS_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long the broker has to answer a liveness probe (see
/// [`LIVENESS_PROBE_INTERVAL`]).
pub const LIVENESS_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a client (an `RpcClient`, or a short-lived tool's connection)
/// waits for the broker to answer its close; then the connection is
/// dropped. A blocked or dead broker may never answer.
pub const CLIENT_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest a service waits for the broker to answer a session's close
/// (consumer cancel, channel and connection closes); then the connections
/// are dropped. Without it a session whose connection lapin lost silently,
/// or whose publishing connection an alarm blocks, would never end.
pub const SERVICE_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
