//! The waiting part of a call: the publish and its confirm, then the replies,
//! all within one deadline. Apart from the channel, so that it can be driven
//! by a publish that a test controls (a real broker cannot be made to hold a
//! confirm back on cue).

use std::future::Future;

use tokio::{sync::oneshot, time::Instant};

use super::{Gathered, RpcError, pending::CallGuard};

/// Waits for `publish` (the request and its confirm), then until every
/// expected consumer has answered (`woken`), until `deadline` in all. At the
/// deadline it returns what was gathered, even when the confirm is still to
/// come.
///
/// # Errors
/// The publish's error; [`RpcError::ConnectionLost`] when the connection is
/// lost before the call ends.
pub(crate) async fn gather(
    publish: impl Future<Output = Result<(), RpcError>>,
    mut woken: oneshot::Receiver<()>,
    guard: CallGuard,
    deadline: Instant,
) -> Result<Gathered, RpcError> {
    // One timer for the whole call.
    let expired = tokio::time::sleep_until(deadline);
    tokio::pin!(expired);
    // `publish` is moved into the select and dropped with it: its state is
    // freed once the request is confirmed.
    tokio::select! {
        published = publish => published?,
        // Not even confirmed by the deadline (e.g. a blocked broker): wait
        // no longer, but keep the replies already in (consumers can answer
        // before the broker confirms a persistent request).
        () = &mut expired => return guard.take(),
    }
    tokio::select! {
        woken = &mut woken => {
            if woken.is_err() {
                return Err(guard.lost());
            }
        }
        () = &mut expired => {}
    }
    guard.take()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        protocol::{Outcome, Reply},
        rpc::{CorrelationId, pending::Pending},
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
        let (guard, woken) = pending.register(id, &expect).expect("open");
        let started = Instant::now();
        let deadline = started + Duration::from_secs(1);
        let reply_arrives = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(
                pending.deliver(id, greeting("hello")),
                "the call waits for it"
            );
        };
        let never_confirmed = std::future::pending::<Result<(), RpcError>>();

        let (gathered, ()) = tokio::join!(
            gather(never_confirmed, woken, guard, deadline),
            reply_arrives
        );

        let gathered = gathered.expect("a deadline is a result, not an error");
        assert_eq!(gathered.replies, [greeting("hello")]);
        assert_eq!(gathered.missing, ["goodbye", "bonjour"]);
        assert_eq!(Instant::now(), deadline, "ended at its deadline");
        assert_eq!(pending.len(), 0, "the entry left the map");
    }
}
