//! Which `reply_to` addresses a consumer will publish to (docs/wire-contract.md, "Allowed reply_to"),
//! and how it reaches each.
//!
//! An unchecked `reply_to` would let anyone who can publish a request inject
//! messages into any queue the consumer's user can write to. Only reply
//! addresses are allowed, and each kind is reached its own way:
//!
//! - **Reply queues** (`<reply_prefix>...`, the exclusive queue of a client
//!   in `rpc.reply_queue = exclusive` mode) are published to the reply
//!   exchange (`<prefix>.reply`), with the address as routing key. Only a
//!   queue a client bound there can receive from it, so a reply can never land
//!   in a queue that is not a reply queue, whatever its name; and being
//!   mandatory, a reply to a client that has gone comes back and is noticed.
//! - **Direct reply-to** (`amq.rabbitmq.reply-to...`) and **server-named
//!   queues** (`amq.gen-...`) are published through the default exchange.
//!   A consumer in `exclusive` mode refuses them: its user needs no write
//!   permission on the default exchange (docs/operations.md, Configuration: users and permissions).
//!
//! Direct reply-to tokens are checked for the one shape every RabbitMQ issues:
//! `amq.rabbitmq.reply-to.<base64 pid>.<key>`, the pid being the standard,
//! padded base64 of `131, 88 (NEW_PID_EXT), 118 (ATOM_UTF8_EXT), u16 length,
//! "reply@<digits>", u32 id, u32 serial, u32 creation`. RabbitMQ 3.10 decodes
//! the token without handling errors, so a malformed one crashes the replying
//! channel and the broker closes the consumer's publishing connection (541
//! INTERNAL_ERROR); refusing those shapes here spares that.
//!
//! The id and serial are *not* range-checked. Erlang/OTP 25 (RabbitMQ 3.10)
//! numbers pids below 2^15 and 2^13, but OTP 26 and newer (every supported
//! RabbitMQ) keep counting past 2^15 once the node has spawned 32,768
//! processes: a check built on OTP 25's numbering refused every genuine token
//! from a broker that had been up a while. No range is safe for every broker
//! a consumer may meet, and nothing a client can see tells which Erlang runs
//! the node (lapin does not expose the broker's `server-properties`). So the
//! rule is only the shape above, and what a given node still cannot decode (on
//! OTP 25: an id or serial past its range; on any 3.x: a node hash no running
//! node has) is contained when it happens: the refused reply's request alone
//! is dead-lettered, every other one answered (see `service::publisher`).

use base64::{Engine, engine::general_purpose::STANDARD};

/// The direct reply-to pseudo-queue and the addresses the broker derives from it.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Prefix of server-named (exclusive, auto-delete) queues.
pub const SERVER_NAMED_PREFIX: &str = "amq.gen-";

/// A `reply_to` that is not a reply address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "reply_to {reply_to:?} is not a reply address (allowed: {})",
    if *only_reply_queues { format!("{reply_prefix}... only, this service answers reply queues only") } else { format!("{DIRECT_REPLY_TO}..., {SERVER_NAMED_PREFIX}..., {reply_prefix}...") }
)]
pub struct ForbiddenReplyTo {
    /// The refused address.
    pub reply_to: String,
    /// The configured client reply-queue prefix.
    pub reply_prefix: String,
    /// The service answers reply queues only (`exclusive` reply-queue mode).
    pub only_reply_queues: bool,
}

/// How a consumer reaches an allowed `reply_to` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyRoute {
    /// Through the default exchange: direct reply-to or a server-named queue.
    DefaultExchange,
    /// Through the reply exchange, mandatory: a client's reply queue.
    ReplyExchange,
}

/// The consumer's rule for `reply_to` addresses.
#[derive(Debug, Clone)]
pub struct ReplyToPolicy {
    reply_prefix: String,
    /// Whether `amq.*` addresses (reached through the default exchange) are
    /// allowed: not in `exclusive` reply-queue mode.
    default_exchange: bool,
}

impl ReplyToPolicy {
    /// Accepts direct reply-to, server-named queues, and queues under `reply_prefix`.
    #[must_use]
    pub fn new(reply_prefix: &str) -> Self {
        Self {
            reply_prefix: reply_prefix.to_owned(),
            default_exchange: true,
        }
    }

    /// Accepts only queues under `reply_prefix`: the rule of a deployment in
    /// `exclusive` reply-queue mode, whose consumers cannot write to the
    /// default exchange.
    #[must_use]
    pub fn reply_queues_only(reply_prefix: &str) -> Self {
        Self {
            reply_prefix: reply_prefix.to_owned(),
            default_exchange: false,
        }
    }

    /// Checks one address and says how to reach it.
    ///
    /// # Errors
    /// [`ForbiddenReplyTo`] for any other address.
    pub fn check(&self, reply_to: &str) -> Result<ReplyRoute, ForbiddenReplyTo> {
        if self.is_reply_queue(reply_to) {
            return Ok(ReplyRoute::ReplyExchange);
        }
        let by_default_exchange = is_direct_reply_to(reply_to)
            || (reply_to.starts_with(SERVER_NAMED_PREFIX)
                && reply_to.len() > SERVER_NAMED_PREFIX.len());
        if self.default_exchange && by_default_exchange {
            Ok(ReplyRoute::DefaultExchange)
        } else {
            Err(ForbiddenReplyTo {
                reply_to: reply_to.to_owned(),
                reply_prefix: self.reply_prefix.clone(),
                only_reply_queues: !self.default_exchange,
            })
        }
    }

    /// Whether `reply_to` names a client reply queue (reached through the
    /// reply exchange). The cheap half of [`check`](Self::check), for an
    /// address already checked.
    #[must_use]
    pub fn is_reply_queue(&self, reply_to: &str) -> bool {
        reply_to.starts_with(&self.reply_prefix) && reply_to.len() > self.reply_prefix.len()
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

/// Exactly the external term of a pid as RabbitMQ encodes it in a direct
/// reply-to token: any id, serial and creation (see the module docs).
fn is_reply_pid(term: &[u8]) -> bool {
    const NODE_PREFIX: &[u8] = b"reply@";
    let [131, 88, 118, high, low, rest @ ..] = term else {
        return false;
    };
    let length = usize::from(u16::from_be_bytes([*high, *low]));
    if rest.len() != length + 12 {
        return false;
    }
    // The 12 bytes after the node are id, serial and creation: any values.
    let (node, _numbers) = rest.split_at(length);
    let Some(hash) = node.strip_prefix(NODE_PREFIX) else {
        return false;
    };
    (1..=10).contains(&hash.len()) && hash.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token as RabbitMQ 3.10.8 issued it (node hash of rabbit@localhost).
    const REAL: &str =
        "amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AAADHwAAAABrBIWD.ZPQwHqqCX3t3IUPwOfGbrw==";
    /// A token as RabbitMQ 4.0.5 (Erlang/OTP 27) issued it after about
    /// 40,000 processes: pid id 40,869, past OTP 25's 2^15.
    const REAL_AGED_4_0: &str = "amq.rabbitmq.reply-to.g1h2AA5yZXBseUA3NTA4OTkzNgAAn6UAAAAAaw930A==.Mcs7kyqqmm1Z05ZCXsyNsw==";

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
            REAL_AGED_4_0.to_owned(),
            token(&pid(b"reply@12345", 799, 0)),
            token(&pid(b"reply@1", 0x7FFF, 0x1FFF)),
            // OTP 26+ numbering: ids past 2^15 once the node has spawned
            // 32,768 processes; any u32 is a pid some broker may issue.
            token(&pid(b"reply@12345", 0x8000, 0)),
            token(&pid(b"reply@12345", u32::MAX, u32::MAX)),
            // Fields the broker does not decode (it drops the reply).
            format!("{DIRECT_REPLY_TO}.garbage"),
            format!("{DIRECT_REPLY_TO}.a.b.c"),
            format!("{DIRECT_REPLY_TO}.."),
        ] {
            assert_eq!(policy.check(&ok), Ok(ReplyRoute::DefaultExchange), "{ok}");
        }
    }

    #[test]
    fn direct_reply_to_tokens_no_broker_issues_are_refused() {
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
            token(&trailing),
            format!("{DIRECT_REPLY_TO}.{} .key", &real_pid[..20]),
            format!("{DIRECT_REPLY_TO}-lookalike"),
            format!("{DIRECT_REPLY_TO}.x.{}", "y".repeat(230)),
        ] {
            assert!(policy.check(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reply_addresses_are_allowed_each_by_its_route() {
        let policy = ReplyToPolicy::new("greetings.reply.");
        for ok in [
            "amq.rabbitmq.reply-to",
            "amq.rabbitmq.reply-to.g1h2AA5yZXBseUA2ODk0NDM5NgAAGd8AAAAAXz7XAg==",
            "amq.gen-JzTY20BRgKO-HjmUJj0wLg",
        ] {
            assert_eq!(policy.check(ok), Ok(ReplyRoute::DefaultExchange), "{ok}");
        }
        assert_eq!(
            policy.check("greetings.reply.client-1"),
            Ok(ReplyRoute::ReplyExchange)
        );
    }

    #[test]
    fn a_reply_queues_only_policy_refuses_every_default_exchange_address() {
        let policy = ReplyToPolicy::reply_queues_only("greetings.reply.");
        assert_eq!(
            policy.check("greetings.reply.client-1"),
            Ok(ReplyRoute::ReplyExchange)
        );
        for bad in [
            "amq.rabbitmq.reply-to",
            REAL,
            REAL_AGED_4_0,
            "amq.gen-JzTY20BRgKO-HjmUJj0wLg",
            "greetings.hello",
            "greetings.reply.",
        ] {
            let err = policy.check(bad).expect_err(bad);
            assert!(err.to_string().contains("reply queues only"), "{err}");
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
