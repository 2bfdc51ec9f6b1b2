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
use crate::protocol::{AnyReply, BatchReply, Outcome, Reply};

/// What became of a reply handed to [`Pending::deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Added to its call.
    Taken,
    /// No call waits for its correlation id (late or unknown).
    Unknown,
    /// Its form does not fit the call (a batch reply with the wrong number
    /// of results, or a greeting for a batch).
    Mismatched,
}

#[derive(Debug)]
struct Entry {
    /// One per name of the request (one for a single-name call).
    gathered: Vec<Gathered>,
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
    /// What the call gathered so far, per name.
    ///
    /// # Errors
    /// [`RpcError::ConnectionLost`] if the connection was lost.
    pub(crate) fn take(self) -> Result<Vec<Gathered>, RpcError> {
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

    /// Registers a call for `names` names waiting for `expect`; `None` if
    /// the connection is already lost. The receiver fires when all have
    /// answered, and fails when the connection is lost.
    pub(crate) fn register(
        self: &Arc<Self>,
        correlation_id: CorrelationId,
        expect: &[String],
        names: usize,
    ) -> Option<(CallGuard, oneshot::Receiver<()>)> {
        let (done, woken) = oneshot::channel();
        let entry = Entry {
            gathered: vec![Gathered::empty(expect); names.max(1)],
            done: Some(done),
        };
        self.lock().as_mut()?.insert(correlation_id, entry);
        let guard = CallGuard {
            pending: Arc::clone(self),
            correlation_id,
        };
        Some((guard, woken))
    }

    /// Adds a reply to its call, one outcome per name: a batch reply must
    /// have one result per name, or be a part (from its `offset`) within the
    /// call's names; a single reply answers a single-name call,
    /// or refuses every name of a batch when it is an error (a whole request
    /// refused, e.g. by a responder that knows only contract v1).
    pub(crate) fn deliver(&self, correlation_id: CorrelationId, reply: AnyReply) -> Delivered {
        let mut calls = self.lock();
        let Some(entry) = calls.as_mut().and_then(|c| c.get_mut(&correlation_id)) else {
            return Delivered::Unknown;
        };
        let names = entry.gathered.len();
        match reply {
            // A whole batch reply, or one part of it (contract v1.2).
            AnyReply::Batch(BatchReply {
                consumer,
                offset,
                results,
            }) if match offset {
                None => results.len() == names,
                Some(offset) => {
                    !results.is_empty()
                        && offset
                            .checked_add(results.len())
                            .is_some_and(|end| end <= names)
                }
            } =>
            {
                let offset = offset.unwrap_or(0);
                for (gathered, outcome) in entry.gathered[offset..].iter_mut().zip(results) {
                    gathered.add(Reply {
                        consumer: consumer.clone(),
                        outcome,
                    });
                }
            }
            AnyReply::Single(reply) if names == 1 => {
                entry.gathered[0].add(reply);
            }
            AnyReply::Single(
                reply @ Reply {
                    outcome: Outcome::Error { .. },
                    ..
                },
            ) => {
                for gathered in &mut entry.gathered {
                    gathered.add(reply.clone());
                }
            }
            AnyReply::Single(_) | AnyReply::Batch(_) => return Delivered::Mismatched,
        }
        let complete = entry.gathered.iter().all(|g| g.missing.is_empty());
        if complete && let Some(done) = entry.done.take() {
            let _ = done.send(());
        }
        Delivered::Taken
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

    fn reply(consumer: &str) -> AnyReply {
        AnyReply::Single(Reply {
            consumer: consumer.into(),
            outcome: Outcome::Greeting(format!("{consumer} Ada")),
        })
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
        let (guard, mut woken) = pending.register(id(1), &expect(), 1).expect("open");
        assert_eq!(pending.deliver(id(1), reply("hello")), Delivered::Taken);
        assert!(woken.try_recv().is_err(), "not complete yet");
        assert_eq!(
            pending.deliver(id(1), reply("hello")),
            Delivered::Taken,
            "duplicate still belongs to the call"
        );
        assert_eq!(pending.deliver(id(1), reply("goodbye")), Delivered::Taken);
        assert_eq!(woken.try_recv(), Ok(()));
        let gathered = guard.take().expect("entry");
        assert_eq!(gathered[0].replies.len(), 2);
        assert_eq!(gathered[0].duplicates, 1);
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn a_dropped_guard_removes_its_entry_and_later_replies_are_unknown() {
        let pending = Pending::new();
        let (guard, _woken) = pending.register(id(1), &expect(), 1).expect("open");
        assert_eq!(pending.len(), 1);
        drop(guard);
        assert_eq!(pending.len(), 0);
        assert_eq!(pending.deliver(id(1), reply("hello")), Delivered::Unknown);
        assert_eq!(pending.deliver(id(99), reply("hello")), Delivered::Unknown);
    }

    fn batch(consumer: &str, results: &[&str]) -> AnyReply {
        part(consumer, None, results)
    }

    fn part(consumer: &str, offset: Option<usize>, results: &[&str]) -> AnyReply {
        AnyReply::Batch(BatchReply {
            consumer: consumer.into(),
            offset,
            results: results
                .iter()
                .map(|n| Outcome::Greeting(format!("{consumer} {n}")))
                .collect(),
        })
    }

    #[test]
    fn a_batch_reply_gives_each_name_its_own_result_and_must_fit_the_batch() {
        let pending = Pending::new();
        let (guard, mut woken) = pending.register(id(1), &expect(), 2).expect("open");
        assert_eq!(
            pending.deliver(id(1), batch("hello", &["Ada"])),
            Delivered::Mismatched,
            "one result for two names"
        );
        assert_eq!(
            pending.deliver(id(1), reply("hello")),
            Delivered::Mismatched
        );
        assert_eq!(
            pending.deliver(id(1), batch("hello", &["Ada", "Bob"])),
            Delivered::Taken
        );
        let refused = AnyReply::Single(Reply {
            consumer: "goodbye".into(),
            outcome: Outcome::Error {
                code: "invalid_request".into(),
                message: "missing field `name`".into(),
            },
        });
        assert_eq!(pending.deliver(id(1), refused), Delivered::Taken);
        assert_eq!(woken.try_recv(), Ok(()));
        let gathered = guard.take().expect("entry");
        assert_eq!(gathered.len(), 2);
        assert_eq!(
            gathered[1].reply_of("hello"),
            Some(&Outcome::Greeting("hello Bob".into()))
        );
        for name in &gathered {
            assert!(matches!(
                name.reply_of("goodbye"),
                Some(Outcome::Error { .. })
            ));
        }
    }

    #[test]
    fn a_batch_reply_in_parts_completes_its_responder_once_every_part_is_in() {
        let pending = Pending::new();
        let (guard, mut woken) = pending
            .register(id(1), &["hello".to_owned()], 3)
            .expect("open");
        for wrong in [
            part("hello", Some(2), &["Cy", "Dee"]),
            part("hello", Some(3), &["Dee"]),
            part("hello", Some(0), &[]),
            part("hello", Some(usize::MAX), &["Ada"]),
        ] {
            assert_eq!(pending.deliver(id(1), wrong), Delivered::Mismatched);
        }
        assert_eq!(
            pending.deliver(id(1), part("hello", Some(1), &["Bob", "Cy"])),
            Delivered::Taken
        );
        assert!(woken.try_recv().is_err(), "the first name is still missing");
        assert_eq!(
            pending.deliver(id(1), part("hello", Some(0), &["Ada"])),
            Delivered::Taken
        );
        assert_eq!(woken.try_recv(), Ok(()));
        let gathered = guard.take().expect("entry");
        let greetings: Vec<_> = gathered
            .iter()
            .map(|g| g.reply_of("hello").cloned())
            .collect();
        assert_eq!(
            greetings,
            ["hello Ada", "hello Bob", "hello Cy"].map(|g| Some(Outcome::Greeting(g.into())))
        );
    }

    #[test]
    fn closing_fails_waiting_calls_and_refuses_new_ones() {
        let pending = Pending::new();
        let (guard, mut woken) = pending.register(id(1), &expect(), 1).expect("open");
        pending.close(None);
        assert!(pending.is_closed());
        assert!(matches!(
            woken.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(matches!(guard.take(), Err(RpcError::ConnectionLost(None))));
        assert!(pending.register(id(2), &expect(), 1).is_none());
    }
}
