//! The waiting part of a call: the publish and its confirm, then the replies,
//! all within one deadline. Apart from the channel, so that it can be driven
//! by a publish that a test controls (a real broker cannot be made to hold a
//! confirm back on cue).

use std::future::Future;

use futures::future::OptionFuture;
use tokio::{sync::oneshot, time::Instant};

use super::{Gathered, RpcError, pending::CallGuard};

/// Waits for `publish` (the request and its confirm) and for every expected
/// consumer to answer (`woken`), side by side, until `deadline` in all.
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
    mut woken: oneshot::Receiver<()>,
    guard: CallGuard,
    deadline: Instant,
) -> Result<Vec<Gathered>, RpcError>
where
    P: Future<Output = Result<(), RpcError>> + Unpin,
{
    // One timer for the whole call.
    let expired = tokio::time::sleep_until(deadline);
    tokio::pin!(expired);
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
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        protocol::{AnyReply, Outcome, Reply},
        rpc::{
            CorrelationId,
            pending::{Delivered, Pending},
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
            outcome: Outcome::Greeting(format!("{consumer} Ada")),
        }
    }

    // Virtual time: the reply lands half-way to the deadline, deterministically.
    #[tokio::test(start_paused = true)]
    async fn replies_in_before_the_deadline_are_returned_though_the_confirm_never_came() {
        let pending = Pending::new();
        let id = CorrelationId::new();
        let expect = expect();
        let (guard, woken) = pending.register(id, &expect, 1).expect("open");
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
            gather(never_confirmed, woken, guard, deadline),
            reply_arrives
        );

        let mut gathered = gathered.expect("a deadline is a result, not an error");
        let gathered = gathered.pop().expect("one name");
        assert_eq!(gathered.replies, [greeting("hello")]);
        assert_eq!(gathered.missing, ["goodbye", "bonjour"]);
        assert_eq!(Instant::now(), deadline, "ended at its deadline");
        assert_eq!(pending.len(), 0, "the entry left the map");
    }
}
