//! Which `reply_to` addresses a consumer will publish to (contract point 7).
//!
//! A consumer publishes replies through the default exchange, so an unchecked
//! `reply_to` would let anyone who can publish a request inject messages into
//! any queue the consumer's user can write to. Only reply addresses are allowed.

/// The direct reply-to pseudo-queue and the addresses the broker derives from it.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Prefix of server-named (exclusive, auto-delete) queues.
pub const SERVER_NAMED_PREFIX: &str = "amq.gen-";

/// A `reply_to` that is not a reply address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "reply_to {reply_to:?} is not a reply address (allowed: {DIRECT_REPLY_TO}..., {SERVER_NAMED_PREFIX}..., {reply_prefix}...)"
)]
pub struct ForbiddenReplyTo {
    /// The refused address.
    pub reply_to: String,
    /// The configured client reply-queue prefix.
    pub reply_prefix: String,
}

/// The consumer's rule for `reply_to` addresses.
#[derive(Debug, Clone)]
pub struct ReplyToPolicy {
    reply_prefix: String,
}

impl ReplyToPolicy {
    /// Accepts direct reply-to, server-named queues, and queues under `reply_prefix`.
    #[must_use]
    pub fn new(reply_prefix: &str) -> Self {
        Self {
            reply_prefix: reply_prefix.to_owned(),
        }
    }

    /// Checks one address.
    ///
    /// # Errors
    /// [`ForbiddenReplyTo`] for any other address.
    pub fn check(&self, reply_to: &str) -> Result<(), ForbiddenReplyTo> {
        let allowed = reply_to.starts_with(DIRECT_REPLY_TO)
            || (reply_to.starts_with(SERVER_NAMED_PREFIX)
                && reply_to.len() > SERVER_NAMED_PREFIX.len())
            || (reply_to.starts_with(&self.reply_prefix)
                && reply_to.len() > self.reply_prefix.len());
        if allowed {
            Ok(())
        } else {
            Err(ForbiddenReplyTo {
                reply_to: reply_to.to_owned(),
                reply_prefix: self.reply_prefix.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_addresses_are_allowed() {
        let policy = ReplyToPolicy::new("greetings.reply.");
        for ok in [
            "amq.rabbitmq.reply-to",
            "amq.rabbitmq.reply-to.g1h2AA5yZXBseUA2ODk0NDM5NgAAGd8AAAAAXz7XAg==",
            "amq.gen-JzTY20BRgKO-HjmUJj0wLg",
            "greetings.reply.client-1",
        ] {
            assert_eq!(policy.check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn other_queues_are_refused() {
        let policy = ReplyToPolicy::new("greetings.reply.");
        for bad in [
            "",
            "greetings.hello",
            "greetings.dead",
            "greetings.reply.",
            "amq.gen-",
            "orders",
            "amq.direct",
        ] {
            let err = policy.check(bad).expect_err(bad);
            assert!(err.to_string().contains("not a reply address"), "{err}");
        }
    }
}
