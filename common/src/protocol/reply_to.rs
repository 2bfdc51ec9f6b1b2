//! Which `reply_to` addresses a consumer will publish to (contract point 7).
//!
//! A consumer publishes replies through the default exchange, so an unchecked
//! `reply_to` would let anyone who can publish a request inject messages into
//! any queue the consumer's user can write to. Only reply addresses are allowed.
//!
//! Direct reply-to addresses are checked further: RabbitMQ 3.10 decodes the
//! token of `amq.rabbitmq.reply-to.<token>.<key>` without handling errors, so
//! a malformed one crashes the replying channel and the broker closes the
//! consumer's whole publishing connection (541 INTERNAL_ERROR). Measured on
//! 3.10.8: the suffix is split on `.` with empty fields dropped; two fields
//! are decoded (anything else is dropped harmlessly), and the first must be
//! the standard, padded base64 of exactly the pid term the broker issues:
//! `131, 88 (NEW_PID_EXT), 118 (ATOM_UTF8_EXT), u16 length, "reply@<digits>",
//! u32 id (< 2^15), u32 serial (< 2^13), u32 creation`. Any other such token
//! is refused here. One shape passes and still crashes the broker: a
//! well-formed token whose node hash is no running node; the service contains
//! that one when it happens (see `service::publisher`).

use base64::{Engine, engine::general_purpose::STANDARD};

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
        let allowed = is_direct_reply_to(reply_to)
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

/// `amq.rabbitmq.reply-to`, or one of its derived addresses whose token the
/// broker can decode (see the module docs).
fn is_direct_reply_to(reply_to: &str) -> bool {
    if reply_to == DIRECT_REPLY_TO {
        return true;
    }
    let Some(suffix) = reply_to
        .strip_prefix(DIRECT_REPLY_TO)
        .and_then(|rest| rest.strip_prefix('.'))
    else {
        return false;
    };
    let fields: Vec<&str> = suffix.split('.').filter(|f| !f.is_empty()).collect();
    match fields.as_slice() {
        [pid, _key] => STANDARD.decode(pid).is_ok_and(|term| is_reply_pid(&term)),
        // The broker decodes only two fields: anything else it drops.
        _ => true,
    }
}

/// Exactly the external term of a pid as RabbitMQ 3.10 encodes it in a
/// direct reply-to token.
fn is_reply_pid(term: &[u8]) -> bool {
    const NODE_PREFIX: &[u8] = b"reply@";
    let [131, 88, 118, high, low, rest @ ..] = term else {
        return false;
    };
    let length = usize::from(u16::from_be_bytes([*high, *low]));
    if rest.len() != length + 12 {
        return false;
    }
    let (node, numbers) = rest.split_at(length);
    let Some(hash) = node.strip_prefix(NODE_PREFIX) else {
        return false;
    };
    let word = |at: usize| {
        numbers
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(u32::MAX, u32::from_be_bytes)
    };
    (1..=10).contains(&hash.len())
        && hash.iter().all(u8::is_ascii_digit)
        && word(0) < 1 << 15
        && word(4) < 1 << 13
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token as RabbitMQ 3.10.8 issued it (node hash of rabbit@localhost).
    const REAL: &str =
        "amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AAADHwAAAABrBIWD.ZPQwHqqCX3t3IUPwOfGbrw==";

    fn token(term: &[u8]) -> String {
        format!("{DIRECT_REPLY_TO}.{}.key", STANDARD.encode(term))
    }

    fn pid(node: &[u8], id: u32, serial: u32) -> Vec<u8> {
        let mut term = vec![131, 88, 118];
        term.extend_from_slice(&u16::try_from(node.len()).expect("short").to_be_bytes());
        term.extend_from_slice(node);
        term.extend_from_slice(&id.to_be_bytes());
        term.extend_from_slice(&serial.to_be_bytes());
        term.extend_from_slice(&1_u32.to_be_bytes());
        term
    }

    #[test]
    fn direct_reply_to_tokens_the_broker_can_decode_are_allowed() {
        let policy = ReplyToPolicy::new("greetings.reply.");
        for ok in [
            REAL.to_owned(),
            token(&pid(b"reply@12345", 799, 0)),
            token(&pid(b"reply@1", 0x7FFF, 0x1FFF)),
            // Fields the broker does not decode (it drops the reply).
            format!("{DIRECT_REPLY_TO}.garbage"),
            format!("{DIRECT_REPLY_TO}.a.b.c"),
            format!("{DIRECT_REPLY_TO}.."),
        ] {
            assert_eq!(policy.check(&ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn direct_reply_to_tokens_that_crash_rabbitmq_3_10_are_refused() {
        let policy = ReplyToPolicy::new("greetings.reply.");
        let real_pid = REAL
            .trim_start_matches("amq.rabbitmq.reply-to.")
            .split('.')
            .next()
            .expect("pid field");
        let mut trailing = pid(b"reply@12345", 1, 0);
        trailing.push(0);
        for bad in [
            format!("{DIRECT_REPLY_TO}.not*base64!.key"),
            format!("{DIRECT_REPLY_TO}.abcde.key"),
            format!("{DIRECT_REPLY_TO}.{}.key", real_pid.replace('A', "-")),
            format!("{DIRECT_REPLY_TO}.{}.key", STANDARD.encode("hello world!")),
            token(&[131, 100, 0, 3, b'f', b'o', b'o']),
            token(&[131, 97, 42]),
            token(&pid(b"nobody@nowhere", 1, 0)),
            token(&pid(b"reply9248884", 1, 0)),
            token(&pid(b"reply@", 1, 0)),
            token(&pid(b"reply@12x45", 1, 0)),
            token(&pid(b"reply@12345", 0x8000, 0)),
            token(&pid(b"reply@12345", 1, 0x2000)),
            token(&trailing),
            format!("{DIRECT_REPLY_TO}.{} .key", &real_pid[..20]),
            format!("{DIRECT_REPLY_TO}-lookalike"),
            format!("{DIRECT_REPLY_TO}.x.{}", "y".repeat(230)),
        ] {
            assert!(policy.check(&bad).is_err(), "{bad}");
        }
    }

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
