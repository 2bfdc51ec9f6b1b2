//! The map of calls in flight, keyed by correlation id.
//!
//! Each call registers before it publishes (so no reply can beat it) and holds
//! a [`CallGuard`] that removes its entry however the call ends: complete,
//! timed out, or dropped by the caller. Replies are gathered in the entry
//! itself, and the call is woken once, when every expected consumer has
//! answered: a call in flight costs one small map entry and a oneshot, not a
//! channel. When the connection is lost the map is closed: every waiting call
//! sees its wake-up dropped at once, and later registrations are refused.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError},
};

use tokio::sync::oneshot;

use super::{CorrelationId, Gathered, RpcError};
use crate::protocol::Reply;

#[derive(Debug)]
struct Entry {
    gathered: Gathered,
    /// Fired when `gathered` is complete.
    done: Option<oneshot::Sender<()>>,
}

type Calls = HashMap<CorrelationId, Entry>;

/// Calls in flight. `None` once the connection has been lost.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    calls: Mutex<Option<Calls>>,
    /// Why the connection was lost, when known: every call that fails
    /// because of it reports it.
    cause: OnceLock<lapin::Error>,
}

/// Removes its call from the map when dropped.
#[derive(Debug)]
pub(crate) struct CallGuard {
    pending: Arc<Pending>,
    correlation_id: CorrelationId,
}

impl CallGuard {
    /// What the call gathered so far.
    ///
    /// # Errors
    /// [`RpcError::ConnectionLost`] if the connection was lost.
    pub(crate) fn take(self) -> Result<Gathered, RpcError> {
        let entry = self
            .pending
            .lock()
            .as_mut()
            .and_then(|calls| calls.remove(&self.correlation_id));
        entry
            .map(|entry| entry.gathered)
            .ok_or_else(|| self.pending.lost())
    }

    /// The error of a call whose connection was lost.
    pub(crate) fn lost(&self) -> RpcError {
        self.pending.lost()
    }
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
            cause: OnceLock::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Calls>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation is a single insert, update or remove), so poison
        // is ignored.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a call waiting for `expect`; `None` if the connection is
    /// already lost. The receiver fires when all have answered, and fails
    /// when the connection is lost.
    pub(crate) fn register(
        self: &Arc<Self>,
        correlation_id: CorrelationId,
        expect: &[String],
    ) -> Option<(CallGuard, oneshot::Receiver<()>)> {
        let (done, woken) = oneshot::channel();
        let entry = Entry {
            gathered: Gathered::empty(expect),
            done: Some(done),
        };
        self.lock().as_mut()?.insert(correlation_id, entry);
        let guard = CallGuard {
            pending: Arc::clone(self),
            correlation_id,
        };
        Some((guard, woken))
    }

    /// Adds a reply to its call; `false` if no call waits for that id (late
    /// or unknown reply).
    pub(crate) fn deliver(&self, correlation_id: CorrelationId, reply: Reply) -> bool {
        let mut calls = self.lock();
        let Some(entry) = calls.as_mut().and_then(|c| c.get_mut(&correlation_id)) else {
            return false;
        };
        if entry.gathered.add(reply)
            && let Some(done) = entry.done.take()
        {
            let _ = done.send(());
        }
        true
    }

    /// Fails every waiting call and refuses new ones; `cause` is why, when
    /// the connection was lost rather than closed.
    pub(crate) fn close(&self, cause: Option<lapin::Error>) {
        // Recorded first, so that every call that sees the map closed finds it.
        if let Some(cause) = cause {
            let _first_cause_kept = self.cause.set(cause);
        }
        self.lock().take();
    }

    /// The error of a call that failed because the connection was lost, with
    /// the cause when known.
    pub(crate) fn lost(&self) -> RpcError {
        RpcError::ConnectionLost(self.cause.get().cloned())
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

    fn reply(consumer: &str) -> Reply {
        Reply {
            consumer: consumer.into(),
            outcome: Outcome::Greeting(format!("{consumer} Ada")),
        }
    }

    fn id(n: u128) -> CorrelationId {
        CorrelationId::parse(&format!("{n:032x}")).expect("valid")
    }

    fn expect() -> Vec<String> {
        vec!["hello".to_owned(), "goodbye".to_owned()]
    }

    #[test]
    fn the_call_is_woken_once_all_expected_replies_are_in() {
        let pending = Pending::new();
        let (guard, mut woken) = pending.register(id(1), &expect()).expect("open");
        assert!(pending.deliver(id(1), reply("hello")));
        assert!(woken.try_recv().is_err(), "not complete yet");
        assert!(
            pending.deliver(id(1), reply("hello")),
            "duplicate still belongs to the call"
        );
        assert!(pending.deliver(id(1), reply("goodbye")));
        assert_eq!(woken.try_recv(), Ok(()));
        let gathered = guard.take().expect("entry");
        assert_eq!(gathered.replies.len(), 2);
        assert_eq!(gathered.duplicates, 1);
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn a_dropped_guard_removes_its_entry_and_later_replies_are_unknown() {
        let pending = Pending::new();
        let (guard, _woken) = pending.register(id(1), &expect()).expect("open");
        assert_eq!(pending.len(), 1);
        drop(guard);
        assert_eq!(pending.len(), 0);
        assert!(!pending.deliver(id(1), reply("hello")));
        assert!(!pending.deliver(id(99), reply("hello")));
    }

    #[test]
    fn closing_fails_waiting_calls_and_refuses_new_ones() {
        let pending = Pending::new();
        let (guard, mut woken) = pending.register(id(1), &expect()).expect("open");
        pending.close(None);
        assert!(pending.is_closed());
        assert!(matches!(
            woken.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(matches!(guard.take(), Err(RpcError::ConnectionLost(None))));
        assert!(pending.register(id(2), &expect()).is_none());
    }
}
