//! The map of calls in flight, keyed by correlation id.
//!
//! Each call registers before it publishes (so no reply can beat it) and holds
//! a [`CallGuard`] that removes its entry however the call ends: complete,
//! timed out, or dropped by the caller. When the connection is lost the map is
//! closed: every waiting call sees its receiver end at once, and later
//! registrations are refused.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tokio::sync::mpsc;

use crate::protocol::Reply;

type Calls = HashMap<String, mpsc::UnboundedSender<Reply>>;

/// Calls in flight. `None` once the connection has been lost.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    calls: Mutex<Option<Calls>>,
}

/// Removes its call from the map when dropped.
#[derive(Debug)]
pub(crate) struct CallGuard {
    pending: Arc<Pending>,
    correlation_id: String,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(calls) = self.pending.lock().as_mut() {
            calls.remove(&self.correlation_id);
        }
    }
}

impl Pending {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::new(Some(HashMap::new())),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Calls>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation is a single insert or remove), so poison is ignored.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a call; `None` if the connection is already lost.
    pub(crate) fn register(
        self: &Arc<Self>,
        correlation_id: &str,
    ) -> Option<(CallGuard, mpsc::UnboundedReceiver<Reply>)> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.lock()
            .as_mut()?
            .insert(correlation_id.to_owned(), sender);
        let guard = CallGuard {
            pending: Arc::clone(self),
            correlation_id: correlation_id.to_owned(),
        };
        Some((guard, receiver))
    }

    /// Hands a reply to its call; `false` if no call waits for that id (late
    /// or unknown reply).
    pub(crate) fn deliver(&self, correlation_id: &str, reply: Reply) -> bool {
        self.lock()
            .as_ref()
            .and_then(|calls| calls.get(correlation_id))
            .is_some_and(|sender| sender.send(reply).is_ok())
    }

    /// Fails every waiting call and refuses new ones.
    pub(crate) fn close(&self) {
        self.lock().take();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().is_none()
    }

    /// Calls in flight now.
    pub(crate) fn len(&self) -> usize {
        self.lock().as_ref().map_or(0, HashMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Outcome;

    fn reply() -> Reply {
        Reply {
            consumer: "hello".into(),
            outcome: Outcome::Greeting("hello Ada".into()),
        }
    }

    #[test]
    fn a_dropped_guard_removes_its_entry_and_later_replies_are_unknown() {
        let pending = Pending::new();
        let (guard, mut rx) = pending.register("a").expect("open");
        assert_eq!(pending.len(), 1);
        assert!(pending.deliver("a", reply()));
        assert_eq!(rx.try_recv().ok(), Some(reply()));
        drop(guard);
        assert_eq!(pending.len(), 0);
        assert!(!pending.deliver("a", reply()));
        assert!(!pending.deliver("never-registered", reply()));
    }

    #[test]
    fn closing_fails_waiting_calls_and_refuses_new_ones() {
        let pending = Pending::new();
        let (_guard, mut rx) = pending.register("a").expect("open");
        pending.close();
        assert!(pending.is_closed());
        assert!(matches!(
            rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
        assert!(pending.register("b").is_none());
    }
}
