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

use tokio::sync::{Notify, oneshot};

use super::{correlation::CorrelationId, error::RpcError, gathered::Gathered, until::Until};
use crate::protocol::{AnyReply, BatchReply, Json, Outcome, Reply};

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
    /// One per item of the request (one for a single call).
    gathered: Vec<Gathered>,
    /// When `gathered` is complete.
    rule: Rule,
    /// Fired when `gathered` is complete.
    done: Option<oneshot::Sender<()>>,
    /// Notified at each reply taken, for a call that ends on a stall.
    progress: Option<Arc<Notify>>,
}

/// What completes a call (its [`Until`], with a roll call's own rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Every responder of the named set (`Gathered::missing` empties).
    Named,
    /// This many responders have answered every item.
    Count(usize),
    /// Never by replies: the caller's stall timer ends it.
    Stall,
    /// A roll call: any reply names a live responder; ends on a stall.
    RollCall,
}

/// A registered call: its guard, its wake-up, and for a call that ends on
/// a stall the notice of each reply.
#[derive(Debug)]
pub(crate) struct Registered {
    pub(crate) guard: CallGuard,
    pub(crate) woken: oneshot::Receiver<()>,
    pub(crate) progress: Option<Arc<Notify>>,
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

    /// Registers a call of `items` items that ends as `until` says (never
    /// [`Until::Live`], which the client resolves first); `None` if the
    /// connection is already lost. The receiver fires when the call is
    /// complete, and fails when the connection is lost.
    pub(crate) fn register(
        self: &Arc<Self>,
        correlation_id: CorrelationId,
        until: &Until,
        items: usize,
    ) -> Option<Registered> {
        let rule = match until {
            Until::All(_) | Until::Live => Rule::Named,
            Until::First => Rule::Count(1),
            Until::Count(n) => Rule::Count(*n),
            Until::Stall(_) => Rule::Stall,
        };
        self.insert(correlation_id, rule, until.expected(), items)
    }

    /// Registers a roll call: every reply names a live responder, and the
    /// call ends on a stall.
    pub(crate) fn register_roll_call(
        self: &Arc<Self>,
        correlation_id: CorrelationId,
    ) -> Option<Registered> {
        self.insert(correlation_id, Rule::RollCall, &[], 1)
    }

    fn insert(
        self: &Arc<Self>,
        correlation_id: CorrelationId,
        rule: Rule,
        expect: &[String],
        items: usize,
    ) -> Option<Registered> {
        let (done, woken) = oneshot::channel();
        let progress = matches!(rule, Rule::Stall | Rule::RollCall).then(Arc::default);
        let entry = Entry {
            gathered: vec![Gathered::empty(expect); items.max(1)],
            rule,
            done: Some(done),
            progress: progress.clone(),
        };
        self.lock().as_mut()?.insert(correlation_id, entry);
        let guard = CallGuard {
            pending: Arc::clone(self),
            correlation_id,
        };
        Some(Registered {
            guard,
            woken,
            progress,
        })
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
            // Any answer to a roll call names a live responder (one that
            // knows only contract v1 refuses its empty body with an error).
            reply if entry.rule == Rule::RollCall => {
                entry.gathered[0].add(Reply {
                    consumer: reply.consumer().to_owned(),
                    outcome: Outcome::Ok(Json::null()),
                });
            }
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
            AnyReply::Single(_) | AnyReply::Batch(_) | AnyReply::Present(_) => {
                return Delivered::Mismatched;
            }
        }
        if let Some(progress) = &entry.progress {
            progress.notify_one();
        }
        let complete = match entry.rule {
            Rule::Named => entry.gathered.iter().all(|g| g.missing.is_empty()),
            Rule::Count(n) => answered_every_item(&entry.gathered) >= n,
            Rule::Stall | Rule::RollCall => false,
        };
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

/// How many responders have answered every item.
fn answered_every_item(gathered: &[Gathered]) -> usize {
    let Some((first, rest)) = gathered.split_first() else {
        return 0;
    };
    first
        .replies
        .iter()
        .filter(|reply| rest.iter().all(|g| g.reply_of(&reply.consumer).is_some()))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Outcome;

    fn reply(consumer: &str) -> AnyReply {
        AnyReply::Single(Reply {
            consumer: consumer.into(),
            outcome: Outcome::Ok(json(&format!("{consumer} Ada"))),
        })
    }

    fn json(text: &str) -> Json {
        Json::encode(text).expect("encodes")
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
        let Registered {
            guard, mut woken, ..
        } = pending
            .register(id(1), &Until::All(expect()), 1)
            .expect("open");
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
        let registered = pending
            .register(id(1), &Until::All(expect()), 1)
            .expect("open");
        let guard = registered.guard;
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
                .map(|n| Outcome::Ok(json(&format!("{consumer} {n}"))))
                .collect(),
        })
    }

    #[test]
    fn a_batch_reply_gives_each_name_its_own_result_and_must_fit_the_batch() {
        let pending = Pending::new();
        let Registered {
            guard, mut woken, ..
        } = pending
            .register(id(1), &Until::All(expect()), 2)
            .expect("open");
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
            Some(&Outcome::Ok(json("hello Bob")))
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
        let Registered {
            guard, mut woken, ..
        } = pending
            .register(id(1), &Until::from(["hello"]), 3)
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
            ["hello Ada", "hello Bob", "hello Cy"].map(|g| Some(Outcome::Ok(json(g))))
        );
    }

    #[test]
    fn closing_fails_waiting_calls_and_refuses_new_ones() {
        let pending = Pending::new();
        let Registered {
            guard, mut woken, ..
        } = pending
            .register(id(1), &Until::All(expect()), 1)
            .expect("open");
        pending.close(None);
        assert!(pending.is_closed());
        assert!(matches!(
            woken.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(matches!(guard.take(), Err(RpcError::ConnectionLost(None))));
        assert!(pending.register(id(2), &Until::All(expect()), 1).is_none());
    }

    #[test]
    fn first_and_count_complete_once_enough_responders_answered_every_item() {
        let pending = Pending::new();
        let Registered {
            mut woken,
            guard: _first,
            ..
        } = pending.register(id(1), &Until::First, 2).expect("open");
        assert_eq!(
            pending.deliver(id(1), part("hello", Some(0), &["Ada"])),
            Delivered::Taken
        );
        assert!(woken.try_recv().is_err(), "hello answered one item of two");
        assert_eq!(
            pending.deliver(id(1), batch("goodbye", &["Ada", "Bob"])),
            Delivered::Taken
        );
        assert_eq!(woken.try_recv(), Ok(()));

        let Registered {
            mut woken,
            guard: _second,
            ..
        } = pending.register(id(2), &Until::Count(2), 1).expect("open");
        assert_eq!(pending.deliver(id(2), reply("hello")), Delivered::Taken);
        assert_eq!(pending.deliver(id(2), reply("hello")), Delivered::Taken);
        assert!(
            woken.try_recv().is_err(),
            "a duplicate is not a second responder"
        );
        assert_eq!(pending.deliver(id(2), reply("bonjour")), Delivered::Taken);
        assert_eq!(woken.try_recv(), Ok(()));
    }

    #[test]
    fn a_stall_rule_never_completes_by_replies_but_notes_each_one() {
        let pending = Pending::new();
        let Registered {
            mut woken,
            progress,
            guard,
        } = pending
            .register(id(1), &Until::Stall(std::time::Duration::from_secs(1)), 1)
            .expect("open");
        let progress = progress.expect("a stall rule is told of each reply");
        assert_eq!(pending.deliver(id(1), reply("hello")), Delivered::Taken);
        assert!(woken.try_recv().is_err());
        assert!(
            futures::FutureExt::now_or_never(progress.notified()).is_some(),
            "the reply was noted"
        );
        assert_eq!(
            guard.take().expect("entry")[0].missing,
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_roll_call_takes_any_reply_as_a_live_responder_and_others_refuse_a_presence() {
        let pending = Pending::new();
        let roll_call = pending.register_roll_call(id(1)).expect("open");
        let refused = AnyReply::Single(Reply {
            consumer: "v1".into(),
            outcome: Outcome::Error {
                code: "invalid_request".into(),
                message: "expected a string \"name\"".into(),
            },
        });
        assert_eq!(pending.deliver(id(1), refused), Delivered::Taken);
        assert_eq!(
            pending.deliver(id(1), AnyReply::Present("hello".into())),
            Delivered::Taken
        );
        let live: Vec<_> = roll_call.guard.take().expect("entry")[0]
            .replies
            .iter()
            .map(|r| r.consumer.clone())
            .collect();
        assert_eq!(live, ["v1", "hello"]);

        let _call = pending
            .register(id(2), &Until::All(expect()), 1)
            .expect("open");
        assert_eq!(
            pending.deliver(id(2), AnyReply::Present("hello".into())),
            Delivered::Mismatched
        );
    }
}
