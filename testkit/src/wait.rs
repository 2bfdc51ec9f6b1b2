//! Waiting on the event a test expects, with a bound: a timeout is a failed
//! test, never a success.

use std::{
    future::Future,
    time::{Duration, Instant},
};

/// Longest any single expected event may take before a test fails.
/// A failure bound, not a speed target: generous, since the machines are
/// shared and the suites boot private nodes in parallel.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `condition` until it holds, failing the test after [`EVENT_TIMEOUT`].
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        // A poll interval, not synchronisation: the condition decides.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits `future`, failing the test with "`what` did not happen within
/// [`EVENT_TIMEOUT`]" when it takes longer.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(EVENT_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {EVENT_TIMEOUT:?}"))
}
