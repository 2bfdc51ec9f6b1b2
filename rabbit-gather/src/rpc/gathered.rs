//! What one scatter-gather call collected: a reply per responder, in arrival
//! order, and the expected responders that did not answer.

use serde::de::DeserializeOwned;

use crate::protocol::{Json, Outcome, Reply};

/// The result of one call (or of one item of a batch): the answers of type
/// `T` (JSON until decoded), each responder's error, and who is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gathered<T = Json> {
    /// One reply per responder that answered, in arrival order.
    pub replies: Vec<Reply<T>>,
    /// Expected consumers with no reply by the deadline, in `expect` order.
    pub missing: Vec<String>,
    /// Replies from a consumer that had already answered this call, dropped.
    pub duplicates: u64,
}

impl Gathered {
    /// Decodes every answer as a `T`; one that does not decode becomes a
    /// [`MALFORMED_REPLY`](crate::protocol::names::MALFORMED_REPLY) error
    /// of its responder.
    #[must_use]
    pub fn decode<T: DeserializeOwned>(self) -> Gathered<T> {
        Gathered {
            replies: self
                .replies
                .into_iter()
                .map(|reply| Reply {
                    consumer: reply.consumer,
                    outcome: reply.outcome.decode(),
                })
                .collect(),
            missing: self.missing,
            duplicates: self.duplicates,
        }
    }
}

impl<T> Gathered<T> {
    /// Nothing yet: every expected consumer is missing.
    #[must_use]
    pub fn empty(expect: &[String]) -> Self {
        Self {
            replies: Vec::new(),
            missing: expect.to_vec(),
            duplicates: 0,
        }
    }

    /// Adds a reply; returns `true` once every expected consumer has answered.
    pub fn add(&mut self, reply: Reply<T>) -> bool {
        if self.replies.iter().any(|r| r.consumer == reply.consumer) {
            self.duplicates += 1;
        } else {
            self.missing.retain(|word| *word != reply.consumer);
            self.replies.push(reply);
        }
        self.missing.is_empty()
    }

    /// The reply of `consumer`, if it answered.
    #[must_use]
    pub fn reply_of(&self, consumer: &str) -> Option<&Outcome<T>> {
        self.replies
            .iter()
            .find(|r| r.consumer == consumer)
            .map(|r| &r.outcome)
    }

    /// Every expected responder answered, none with an error.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
            && self
                .replies
                .iter()
                .all(|r| matches!(r.outcome, Outcome::Ok(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting(consumer: &str) -> Reply {
        Reply {
            consumer: consumer.into(),
            outcome: Outcome::Ok(Json::encode(&format!("{consumer} Ada")).expect("encodes")),
        }
    }

    #[test]
    fn completes_when_every_expected_consumer_answered_and_counts_duplicates() {
        let expect = vec!["hello".to_owned(), "goodbye".to_owned()];
        let mut g = Gathered::empty(&expect);
        assert!(!g.add(greeting("goodbye")));
        assert!(!g.add(greeting("goodbye")));
        assert!(!g.add(greeting("bonjour")));
        assert!(g.add(greeting("hello")));
        assert_eq!(g.duplicates, 1);
        assert_eq!(g.replies.len(), 3);
        assert!(g.is_complete());
    }

    #[test]
    fn an_error_reply_is_not_complete() {
        let mut g = Gathered::<Json>::empty(&["hello".to_owned()]);
        g.add(Reply {
            consumer: "hello".into(),
            outcome: Outcome::Error {
                code: "invalid_request".into(),
                message: "x".into(),
            },
        });
        assert!(g.missing.is_empty());
        assert!(!g.is_complete());
    }
}
