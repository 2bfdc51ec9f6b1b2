//! How work waiting on the broker notices that lapin reports its connection
//! closed.

use std::time::Duration;

/// How often work waiting on the broker (a delivery in hand, a publisher
/// confirm) checks that lapin still reports its connection open.
pub const LIVENESS_CHECK: Duration = Duration::from_millis(250);

/// Resolves once `connected` turns false, checking every [`LIVENESS_CHECK`].
pub(crate) async fn closed(connected: impl Fn() -> bool) {
    let mut every = tokio::time::interval(LIVENESS_CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while connected() {
        every.tick().await;
    }
}
