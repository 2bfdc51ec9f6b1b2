//! Whether a service is ready to take requests, for operators (`/readyz`)
//! and tests: the supervisor sets the phase, the publishing connection's
//! events set `blocked`.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// Where a service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening its first session (connections, topology, consumer).
    Connecting,
    /// Its last session ended with a broker fault; opening a new one.
    Reconnecting,
    /// Connected and consuming its queue.
    Consuming,
    /// Asked to stop: takes no new delivery, finishes the ones in hand.
    Draining,
    /// Stopped.
    Stopped,
}

/// A service's readiness, shared by the supervisor, the publishing
/// connection and whoever asks (see [`ConsumerService::health`]).
///
/// [`ConsumerService::health`]: super::ConsumerService::health
#[derive(Debug)]
pub struct Health {
    phase: watch::Sender<Phase>,
    blocked: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            phase: watch::Sender::new(Phase::Connecting),
            blocked: AtomicBool::new(false),
        }
    }
}

impl Health {
    /// The phase now.
    #[must_use]
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Follows the phase as it changes.
    #[must_use]
    pub fn watch(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    /// Whether the broker is blocking the service's publishing connection (a
    /// memory or disk alarm): replies cannot go out.
    #[must_use]
    pub fn blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed)
    }

    /// `Ok` while the service is consuming and can publish replies; else why
    /// not, in one line.
    ///
    /// # Errors
    /// The reason the service is not ready.
    pub fn ready(&self) -> Result<(), &'static str> {
        match self.phase() {
            Phase::Consuming if self.blocked() => {
                Err("blocked: the broker is blocking publishes (memory or disk alarm)")
            }
            Phase::Consuming => Ok(()),
            Phase::Connecting => Err("connecting: no broker session yet"),
            Phase::Reconnecting => Err("reconnecting: the broker session was lost"),
            Phase::Draining => Err("draining: shutting down, finishing the requests in hand"),
            Phase::Stopped => Err("stopped"),
        }
    }

    /// Whether a broker session is open now.
    #[must_use]
    pub fn connected(&self) -> bool {
        matches!(self.phase(), Phase::Consuming | Phase::Draining)
    }

    pub(crate) fn set(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    pub(crate) fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_consuming_and_not_blocked() {
        let health = Health::default();
        assert!(health.ready().unwrap_err().starts_with("connecting"));
        health.set(Phase::Consuming);
        assert_eq!(health.ready(), Ok(()));
        health.set_blocked(true);
        assert!(health.ready().unwrap_err().starts_with("blocked"));
        health.set_blocked(false);
        health.set(Phase::Reconnecting);
        assert!(health.ready().unwrap_err().starts_with("reconnecting"));
        assert!(!health.connected());
        health.set(Phase::Draining);
        assert!(health.ready().unwrap_err().starts_with("draining"));
        assert!(health.connected());
    }
}
