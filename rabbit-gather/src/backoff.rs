//! The wait between two reconnection attempts, for the client
//! ([`rpc::ReconnectingClient`](crate::rpc::ReconnectingClient)) and the
//! service ([`service::ConsumerService`](crate::service::ConsumerService)):
//! capped exponential, with jitter so that the replicas a broker restart
//! disconnected together do not all come back at the same instant.
//!
//! Both start at [`RECONNECT_MIN_DELAY`]; their caps differ. A client's
//! calls wait for its reconnection within their own deadline (a second by
//! default), so it tries again at least every
//! [`CLIENT_RECONNECT_MAX_DELAY`]. A service has no caller waiting on it,
//! and each of its attempts opens two connections and declares its
//! topology, so it eases off further, to [`SERVICE_RECONNECT_MAX_DELAY`].

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// First wait between two reconnection attempts; it doubles up to half of
/// the cap, and a random jitter of up to as much again is added to each
/// wait.
pub const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
/// Longest wait between two reconnection attempts of a client, jitter
/// included.
pub const CLIENT_RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);
/// Longest wait between two reconnection attempts of a service, jitter
/// included.
pub const SERVICE_RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);

/// The waits between reconnection attempts, without end: from
/// [`RECONNECT_MIN_DELAY`] doubling, each with a jitter of up to 100%,
/// never longer than its cap. Start a new one to start again from the
/// shortest wait.
#[derive(Debug)]
pub(crate) struct ReconnectBackoff {
    delays: ExponentialBackoff,
    max: Duration,
}

impl ReconnectBackoff {
    /// Waits capped at `max`, jitter included.
    pub(crate) fn new(max: Duration) -> Self {
        let delays = ExponentialBuilder::default()
            .with_min_delay(RECONNECT_MIN_DELAY.min(max))
            // backon's jitter adds up to 100% of the delay: cap at half.
            .with_max_delay(max / 2)
            .with_jitter()
            .without_max_times()
            .build();
        Self { delays, max }
    }
}

impl Iterator for ReconnectBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.delays.next().unwrap_or(self.max).min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_the_minimum_with_jitter_up_to_as_much_again() {
        for max in [CLIENT_RECONNECT_MAX_DELAY, SERVICE_RECONNECT_MAX_DELAY] {
            let mut base = RECONNECT_MIN_DELAY;
            for (attempt, wait) in ReconnectBackoff::new(max).take(40).enumerate() {
                assert!(
                    wait >= base && wait <= base * 2 && wait <= max,
                    "attempt {attempt}: {wait:?} outside {base:?}..={:?} (cap {max:?})",
                    base * 2
                );
                base = (base * 2).min(max / 2);
            }
        }
    }

    #[test]
    fn waits_reach_the_cap_and_never_pass_it() {
        let waits: Vec<Duration> = ReconnectBackoff::new(CLIENT_RECONNECT_MAX_DELAY)
            .skip(10)
            .take(200)
            .collect();
        assert!(
            waits
                .iter()
                .all(|wait| *wait >= CLIENT_RECONNECT_MAX_DELAY / 2
                    && *wait <= CLIENT_RECONNECT_MAX_DELAY),
            "{waits:?}"
        );
    }

    #[test]
    fn waits_are_jittered() {
        let firsts: Vec<Duration> = (0..50)
            .filter_map(|_| ReconnectBackoff::new(SERVICE_RECONNECT_MAX_DELAY).next())
            .collect();
        assert!(
            firsts.iter().any(|wait| *wait != firsts[0]),
            "50 first waits all {:?}",
            firsts[0]
        );
    }
}
