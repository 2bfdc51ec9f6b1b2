//! Whether each expected word has a consumer attached to its queue, checked
//! once per run before anything is sent. A word whose consumers have all
//! stopped still has its queue, so requests route and nothing fails: without
//! this check each name just waits out its whole timeout.
//!
//! A passive declare of each word's queue gives its consumer count (and no
//! queue at all is a 404). A failed passive declare closes its channel, so
//! each word gets a short-lived channel of its own, on a short-lived
//! connection of the check's own: the client's connection and channel are
//! never put at risk. The check can only add a warning: when it cannot tell
//! (no permission, broker slow or unreachable) it says nothing and the run
//! goes on as before.

use std::time::Duration;

use futures::future::join_all;
use lapin::{
    Connection,
    options::QueueDeclareOptions,
    protocol::{AMQPErrorKind, AMQPSoftError},
    types::FieldTable,
};
use rabbit_gather::{
    Settings, amqp,
    topology::{Topology, Word},
};

/// Longest the check may delay the run (connection included); past it the
/// run goes on without a warning.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// An expected word that has no consumer attached now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unattached {
    /// The word, as in `rpc.expect`.
    pub word: String,
    /// Its queue.
    pub queue: String,
    /// The queue does not exist at all (no consumer of the word has started
    /// since it was deleted, or ever), rather than existing with no consumer.
    pub no_queue: bool,
}

impl Unattached {
    /// The warning `producer` prints on stderr before sending, without the
    /// `producer: ` prefix.
    #[must_use]
    pub fn warning(&self) -> String {
        let Self { word, queue, .. } = self;
        if self.no_queue {
            format!(
                "there is no queue {queue}: no {word} consumer has started (or its queue was \
                 deleted); replies from {word} will be missing unless one starts"
            )
        } else {
            format!(
                "no consumer is attached to {queue}: replies from {word} will be missing unless \
                 one starts"
            )
        }
    }
}

/// The words of `words` with no consumer attached to their queue, in their
/// order; empty when the check cannot tell within [`CHECK_TIMEOUT`].
pub async fn unattached(settings: &Settings, words: &[String]) -> Vec<Unattached> {
    match tokio::time::timeout(CHECK_TIMEOUT, check(settings, words)).await {
        Ok(found) => found,
        Err(_) => {
            tracing::debug!("the check for attached consumers timed out; skipped");
            Vec::new()
        }
    }
}

async fn check(settings: &Settings, words: &[String]) -> Vec<Unattached> {
    let name = format!("greetings-producer check {}", settings.topology.prefix);
    let connection = match amqp::connect(&settings.amqp, &name).await {
        Ok(connection) => connection,
        Err(error) => {
            // The client's own connection reports this, if it matters.
            tracing::debug!(%error, "cannot check for attached consumers");
            return Vec::new();
        }
    };
    let topology = Topology::new(&settings.topology.prefix);
    let checks = words.iter().filter_map(|word| {
        // An invalid word has no queue to check; the run names it missing.
        let queue = topology.queue(&Word::parse(word).ok()?);
        Some(attachment(&connection, word, queue))
    });
    let found = join_all(checks).await.into_iter().flatten().collect();
    let _ = connection.close(200, "checked".into()).await;
    found
}

/// `Some` when `queue` (of `word`) has no consumer or does not exist;
/// `None` when it has one, or when the broker would not say.
async fn attachment(connection: &Connection, word: &str, queue: String) -> Option<Unattached> {
    let channel = connection.create_channel().await.ok()?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.as_str().into(), passive, FieldTable::default())
        .await;
    let no_queue = match declared {
        Ok(found) => {
            let _ = channel.close(200, "checked".into()).await;
            if found.consumer_count() > 0 {
                return None;
            }
            false
        }
        // The broker closed the channel with the error.
        Err(error) if is_not_found(&error) => true,
        Err(error) => {
            tracing::debug!(%error, %queue, "cannot check the queue for consumers");
            return None;
        }
    };
    Some(Unattached {
        word: word.to_owned(),
        queue,
        no_queue,
    })
}

fn is_not_found(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(e)
            if e.kind() == &AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_names_the_queue_and_the_word() {
        let mut unattached = Unattached {
            word: "hello".into(),
            queue: "greetings.hello".into(),
            no_queue: false,
        };
        assert_eq!(
            unattached.warning(),
            "no consumer is attached to greetings.hello: replies from hello will be missing \
             unless one starts"
        );
        unattached.no_queue = true;
        assert_eq!(
            unattached.warning(),
            "there is no queue greetings.hello: no hello consumer has started (or its queue \
             was deleted); replies from hello will be missing unless one starts"
        );
    }
}
