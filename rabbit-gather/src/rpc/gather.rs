//! The waiting part of a call: the publish and its confirm, then the replies,
//! all within one deadline. Apart from the channel, so that it can be driven
//! by a publish that a test controls (a real broker cannot be made to hold a
//! confirm back on cue).

use std::future::Future;

use std::{sync::Arc, time::Duration};

use futures::future::OptionFuture;
use tokio::{sync::Notify, time::Instant};

use super::{error::RpcError, gathered::Gathered, pending::Registered};

/// Waits for `publish` (the request and its confirm) and for the call to
/// complete (`woken`), side by side, until `deadline` in all; with a
/// `stall`, also until no reply has come for that long after the last one.
///
/// Replies do not wait for the confirm: a persistent request is confirmed
/// only once the broker has it on disk (or every queue's consumer has acked
/// it), which can come long after the answers. A reply from every expected
/// consumer proves the request was routed and taken, so the call ends there
/// and the confirm is no longer awaited. A return or a nack that comes
/// first still fails the call at once. At the deadline it returns what was
/// gathered, even when the confirm is still to come.
///
/// # Errors
/// The publish's error; [`RpcError::ConnectionLost`] when the connection is
/// lost before the call ends.
pub(crate) async fn gather<P>(
    publish: P,
    registered: Registered,
    deadline: Instant,
    stall: Option<Duration>,
) -> Result<Vec<Gathered>, RpcError>
where
    P: Future<Output = Result<(), RpcError>> + Unpin,
{
    let Registered {
        guard,
        mut woken,
        progress,
    } = registered;
    // One timer for the whole call.
    let expired = tokio::time::sleep_until(deadline);
    tokio::pin!(expired);
    // Armed at the first reply, and pushed back at each one after.
    let stalled = tokio::time::sleep_until(deadline);
    tokio::pin!(stalled);
    let mut armed = false;
    let stall = stall.zip(progress);
    // Dropped once confirmed: its state (body, properties, lapin's futures)
    // is freed while the call waits for replies.
    let mut publish = Some(publish);
    loop {
        tokio::select! {
            Some(published) = OptionFuture::from(publish.as_mut()), if publish.is_some() => {
                publish = None;
                published?;
            }
            woken = &mut woken => {
                return if woken.is_err() { Err(guard.lost()) } else { guard.take() };
            }
            // Keep the replies already in, confirmed or not.
            () = &mut expired => return guard.take(),
            after = next_reply(stall.as_ref()) => {
                stalled.as_mut().reset(Instant::now() + after);
                armed = true;
            }
            () = &mut stalled, if armed => return guard.take(),
        }
    }
}

/// Resolves at the next reply of a call that ends on a stall, with the
/// stall; never for another call.
async fn next_reply(stall: Option<&(Duration, Arc<Notify>)>) -> Duration {
    match stall {
        Some((after, progress)) => {
            progress.notified().await;
            *after
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        protocol::{AnyReply, Json, Outcome, Reply},
        rpc::{
            correlation::CorrelationId,
            pending::{Delivered, Pending},
            until::Until,
        },
    };

    fn expect() -> Vec<String> {
        vec![
            "hello".to_owned(),
            "goodbye".to_owned(),
            "bonjour".to_owned(),
        ]
    }

    fn greeting(consumer: &str) -> Reply {
        Reply {
            consumer: consumer.into(),
            outcome: Outcome::Ok(Json::encode(&format!("{consumer} Ada")).expect("encodes")),
        }
    }

    // Virtual time: the reply lands half-way to the deadline, deterministically.
    #[tokio::test(start_paused = true)]
    async fn replies_in_before_the_deadline_are_returned_though_the_confirm_never_came() {
        let pending = Pending::new();
        let id = CorrelationId::new();
        let expect = expect();
        let registered = pending.register(id, &Until::All(expect), 1).expect("open");
        let started = Instant::now();
        let deadline = started + Duration::from_secs(1);
        let reply_arrives = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(
                pending.deliver(id, AnyReply::Single(greeting("hello"))),
                Delivered::Taken,
                "the call waits for it"
            );
        };
        let never_confirmed = Box::pin(std::future::pending::<Result<(), RpcError>>());

        let (gathered, ()) = tokio::join!(
            gather(never_confirmed, registered, deadline, None),
            reply_arrives
        );

        let mut gathered = gathered.expect("a deadline is a result, not an error");
        let gathered = gathered.pop().expect("one name");
        assert_eq!(gathered.replies, [greeting("hello")]);
        assert_eq!(gathered.missing, ["goodbye", "bonjour"]);
        assert_eq!(Instant::now(), deadline, "ended at its deadline");
        assert_eq!(pending.len(), 0, "the entry left the map");
    }

    /// Replies from `consumers` to the call `id`, one every 100 ms (those
    /// after the call ended find no call).
    async fn replies_every_100ms(pending: &Pending, id: CorrelationId, consumers: &[&str]) {
        for consumer in consumers {
            tokio::time::sleep(Duration::from_millis(100)).await;
            pending.deliver(id, AnyReply::Single(greeting(consumer)));
        }
    }

    fn confirmed() -> std::pin::Pin<Box<std::future::Ready<Result<(), RpcError>>>> {
        Box::pin(std::future::ready(Ok(())))
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_rule_ends_that_long_after_the_last_reply() {
        let pending = Pending::new();
        let id = CorrelationId::new();
        let stall = Duration::from_millis(500);
        let registered = pending.register(id, &Until::Stall(stall), 1).expect("open");
        let started = Instant::now();
        let (gathered, ()) = tokio::join!(
            gather(
                confirmed(),
                registered,
                started + Duration::from_secs(10),
                Some(stall)
            ),
            replies_every_100ms(&pending, id, &["hello", "goodbye"])
        );
        let gathered = gathered.expect("gathered");
        assert_eq!(gathered[0].replies.len(), 2);
        assert_eq!(
            Instant::now() - started,
            Duration::from_millis(700),
            "500 ms after the last reply, at 200 ms"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn first_and_count_end_at_their_reply_and_every_rule_ends_by_its_deadline() {
        let pending = Pending::new();
        let id = CorrelationId::new();
        let registered = pending.register(id, &Until::Count(2), 1).expect("open");
        let started = Instant::now();
        let deadline = started + Duration::from_secs(1);
        let call = async {
            let gathered = gather(confirmed(), registered, deadline, None).await;
            (gathered, Instant::now())
        };
        let ((gathered, ended), ()) = tokio::join!(
            call,
            replies_every_100ms(&pending, id, &["hello", "goodbye", "bonjour"])
        );
        assert_eq!(gathered.expect("gathered")[0].replies.len(), 2);
        assert_eq!(ended - started, Duration::from_millis(200));

        // Nobody answers: each rule ends at its deadline, with what it has.
        let stall = Duration::from_millis(100);
        for until in [
            Until::First,
            Until::Count(2),
            Until::Stall(stall),
            Until::All(expect()),
        ] {
            let id = CorrelationId::new();
            let registered = pending.register(id, &until, 1).expect("open");
            let started = Instant::now();
            let deadline = started + Duration::from_secs(1);
            let stall = matches!(until, Until::Stall(_)).then_some(stall);
            let gathered = gather(confirmed(), registered, deadline, stall)
                .await
                .expect("a deadline is a result");
            assert_eq!(Instant::now(), deadline, "{until:?} ended by its deadline");
            assert!(gathered[0].replies.is_empty());
            assert_eq!(gathered[0].missing, until.expected(), "{until:?}");
        }
    }
}
