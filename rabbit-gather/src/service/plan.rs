//! What a consumer does with one delivery, decided without I/O so that every
//! branch of the contract (points 5 to 8) is unit-tested: validity, the
//! reply address, expiry (with a tolerated clock skew) and how many attempts
//! the request has had (counted in the message itself).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable},
};

use crate::protocol::{
    self, Contract, ForbiddenReplyTo, InvalidRequest, ReplyToPolicy, Request, ReturnAddress,
    names::{DELIVERY_COUNT_HEADER, EXPIRATION_HEADER, FAILURES_HEADER},
};

/// The decision for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// A valid request (one name, or a batch whose names are validated one
    /// by one): greet, print, reply if it is not one-way, then ack.
    Answer {
        request: Request,
        reply_to: Option<ReturnAddress>,
        timing: Timing,
    },
    /// A roll call: answer with the responder's name (if it can be
    /// answered), then ack.
    RollCall { reply_to: Option<ReturnAddress> },
    /// An invalid body: an error reply if possible, then dead-letter.
    Refuse {
        why: InvalidRequest,
        reply_to: Option<ReturnAddress>,
    },
    /// A `reply_to` that is not a reply address: no reply, dead-letter.
    Forbidden(ForbiddenReplyTo),
    /// Its caller's deadline has passed (beyond the tolerated clock skew):
    /// nobody waits for the answer, so it is not processed; dead-lettered.
    Expired { age: Duration },
}

/// When a request must be done by, and how many attempts it has had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// The caller's deadline by the producer's clock (see `Context::deadline`).
    pub(crate) deadline: Option<SystemTime>,
    /// The caller's `expiration` in ms, to carry on a retried copy.
    pub(crate) expiration_ms: Option<u64>,
    /// Handling attempts that failed before this delivery.
    pub(crate) failures: u32,
}

pub(crate) fn plan(
    properties: &BasicProperties,
    body: &[u8],
    policy: &ReplyToPolicy,
    contract: &Contract,
    now: SystemTime,
    clock_skew: Duration,
) -> Plan {
    // Bytes that were not UTF-8 in a short string (decoded as U+FFFD):
    // refused before anything else reads the properties. An error reply only
    // when the reply address and correlation id are intact.
    let not_utf8 = protocol::not_utf8(properties);
    if let Some(which) = not_utf8.as_ref().filter(|which| !which.answerable()) {
        return Plan::Refuse {
            why: InvalidRequest::PropertyNotUtf8(which.clone()),
            reply_to: None,
        };
    }
    let timing = timing(properties);
    if let Some(age) = expired(properties, &timing, now, clock_skew) {
        return Plan::Expired { age };
    }
    let reply_to = ReturnAddress::from_properties(properties);
    if let Some(address) = &reply_to
        && let Err(forbidden) = policy.check(&address.reply_to)
    {
        return Plan::Forbidden(forbidden);
    }
    if let Some(which) = not_utf8 {
        return Plan::Refuse {
            why: InvalidRequest::PropertyNotUtf8(which),
            reply_to,
        };
    }
    if protocol::is_roll_call(properties) {
        return Plan::RollCall { reply_to };
    }
    if !protocol::is_json(properties) {
        let kind = properties.content_type().as_ref().map(ToString::to_string);
        return Plan::Refuse {
            why: InvalidRequest::ContentType(kind.unwrap_or_default()),
            reply_to,
        };
    }
    match protocol::decode_request(contract, body) {
        Ok(request) => Plan::Answer {
            request,
            reply_to,
            timing,
        },
        Err(why) => Plan::Refuse { why, reply_to },
    }
}

fn timing(properties: &BasicProperties) -> Timing {
    let headers = properties.headers().as_ref();
    // A retried copy carries the caller's expiration in a header (its own
    // `expiration` held the retry delay); prefer it when present.
    let expiration_ms = headers
        .and_then(|h| header_u64(h, EXPIRATION_HEADER))
        .or_else(|| properties.expiration().as_ref()?.as_str().parse().ok());
    // `timestamp` has whole-second resolution: the request was sent up to 1 s
    // after it, so the deadline is counted from its end, never early.
    let deadline = properties.timestamp().and_then(|sent| {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(sent))?
            .checked_add(Duration::from_secs(1))?
            .checked_add(Duration::from_millis(expiration_ms?))
    });
    let failures = headers.map_or(0, |h| {
        let counted = header_u64(h, FAILURES_HEADER).unwrap_or(0);
        // Quorum queues count redeliveries (a crash mid-handling) too.
        let redelivered = header_u64(h, DELIVERY_COUNT_HEADER).unwrap_or(0);
        u32::try_from(counted.saturating_add(redelivered)).unwrap_or(u32::MAX)
    });
    Timing {
        deadline,
        expiration_ms,
        failures,
    }
}

/// The broker drops expired messages only at the head of a queue; this is the
/// consumer's own check. Its clock may run ahead of the producer's by up to
/// `clock_skew` before a live request is judged expired.
fn expired(
    properties: &BasicProperties,
    timing: &Timing,
    now: SystemTime,
    clock_skew: Duration,
) -> Option<Duration> {
    let deadline = timing.deadline?.checked_add(clock_skew)?;
    if now <= deadline {
        return None;
    }
    let sent = UNIX_EPOCH.checked_add(Duration::from_secs((*properties.timestamp())?))?;
    Some(now.duration_since(sent).unwrap_or_default())
}

/// A non-negative integer header, whatever integer type the client used.
pub(crate) fn header_u64(headers: &FieldTable, key: &str) -> Option<u64> {
    match headers.inner().get(key)? {
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKEW: Duration = Duration::from_secs(30);

    fn plan(properties: &BasicProperties, body: &[u8], policy: &ReplyToPolicy) -> Plan {
        super::plan(
            properties,
            body,
            policy,
            &Contract::GREETINGS,
            SystemTime::now(),
            SKEW,
        )
    }

    fn unix_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    }

    fn props(reply_to: Option<&str>, correlation_id: Option<&str>) -> BasicProperties {
        let mut p = BasicProperties::default();
        if let Some(r) = reply_to {
            p = p.with_reply_to(r.into());
        }
        if let Some(c) = correlation_id {
            p = p.with_correlation_id(c.into());
        }
        p
    }

    fn policy() -> ReplyToPolicy {
        ReplyToPolicy::new("greetings.reply.")
    }

    #[test]
    fn a_valid_request_is_answered_at_its_address() {
        let p = plan(
            &props(Some("amq.gen-abc"), Some("c1")),
            br#"{"name":"Ada"}"#,
            &policy(),
        );
        assert_eq!(
            p,
            Plan::Answer {
                request: Request::Single(crate::protocol::Json::encode("Ada").expect("encodes")),
                reply_to: Some(ReturnAddress {
                    reply_to: "amq.gen-abc".into(),
                    correlation_id: "c1".into()
                }),
                timing: Timing {
                    deadline: None,
                    expiration_ms: None,
                    failures: 0
                }
            }
        );
    }

    #[test]
    fn a_request_without_address_is_one_way() {
        for p in [
            props(None, None),
            props(Some("amq.gen-abc"), None),
            props(None, Some("c")),
        ] {
            assert!(matches!(
                plan(&p, br#"{"name":"Ada"}"#, &policy()),
                Plan::Answer { reply_to: None, .. }
            ));
        }
    }

    #[test]
    fn an_invalid_body_is_refused_with_its_address_kept_for_the_error_reply() {
        let p = plan(&props(Some("amq.gen-abc"), Some("c1")), b"{", &policy());
        assert!(
            matches!(
                p,
                Plan::Refuse {
                    reply_to: Some(_),
                    ..
                }
            ),
            "{p:?}"
        );
        let p = plan(&props(None, None), b"{", &policy());
        assert!(matches!(p, Plan::Refuse { reply_to: None, .. }), "{p:?}");
    }

    #[test]
    fn a_request_past_its_deadline_and_the_skew_is_expired_and_never_early() {
        let now = SystemTime::now();
        let sent = unix_now() - 10;
        let p = props(Some("amq.gen-abc"), Some("c1"))
            .with_timestamp(sent)
            .with_expiration("5000".into());
        let strict = |p: &BasicProperties| {
            super::plan(
                p,
                br#"{"name":"Ada"}"#,
                &policy(),
                &Contract::GREETINGS,
                now,
                Duration::ZERO,
            )
        };
        assert!(matches!(strict(&p), Plan::Expired { .. }));
        let fresh = p.clone().with_expiration("11000".into());
        assert!(matches!(strict(&fresh), Plan::Answer { .. }));
        let no_expiration = props(None, None).with_timestamp(sent);
        assert!(matches!(strict(&no_expiration), Plan::Answer { .. }));
    }

    #[test]
    fn a_consumer_clock_ahead_by_less_than_the_skew_still_answers() {
        // Made 10 s ago by this clock with a 5 s timeout: a consumer running
        // 10 s ahead of the producer sees exactly this.
        let ahead = props(Some("amq.gen-abc"), Some("c1"))
            .with_timestamp(unix_now() - 10)
            .with_expiration("5000".into());
        assert!(matches!(
            plan(&ahead, br#"{"name":"Ada"}"#, &policy()),
            Plan::Answer { .. }
        ));
        // 40 s: beyond the 30 s skew, expired.
        let gone = ahead.clone().with_timestamp(unix_now() - 40);
        assert!(matches!(
            plan(&gone, br#"{"name":"Ada"}"#, &policy()),
            Plan::Expired { .. }
        ));
        // A producer clock ahead of ours (timestamp in the future) is fine.
        let future = ahead.with_timestamp(unix_now() + 3600);
        assert!(matches!(
            plan(&future, br#"{"name":"Ada"}"#, &policy()),
            Plan::Answer { .. }
        ));
    }

    #[test]
    fn crafted_timestamps_and_expirations_never_panic() {
        for (timestamp, expiration) in [
            (u64::MAX, "1000"),
            (u64::MAX / 1000, "18446744073709551615"),
            (0, "18446744073709551615"),
            (unix_now(), "-5"),
            (unix_now(), "1e3"),
        ] {
            let p = props(Some("amq.gen-abc"), Some("c1"))
                .with_timestamp(timestamp)
                .with_expiration(expiration.into());
            let _decided = plan(&p, br#"{"name":"Ada"}"#, &policy());
        }
    }

    #[test]
    fn attempts_and_the_callers_expiration_are_read_from_the_message() {
        let mut headers = FieldTable::default();
        headers.insert(FAILURES_HEADER.into(), AMQPValue::LongLongInt(2));
        headers.insert(EXPIRATION_HEADER.into(), AMQPValue::LongLongInt(7000));
        headers.insert(DELIVERY_COUNT_HEADER.into(), AMQPValue::LongUInt(1));
        let sent = unix_now();
        let p = props(Some("amq.gen-abc"), Some("c1"))
            .with_timestamp(sent)
            .with_expiration("1000".into())
            .with_headers(headers);
        let Plan::Answer { timing, .. } = plan(&p, br#"{"name":"Ada"}"#, &policy()) else {
            panic!("answered");
        };
        assert_eq!(timing.failures, 3);
        assert_eq!(timing.expiration_ms, Some(7000));
        assert_eq!(
            timing.deadline,
            Some(UNIX_EPOCH + Duration::from_secs(sent + 1) + Duration::from_millis(7000))
        );
        let mut odd = FieldTable::default();
        odd.insert(FAILURES_HEADER.into(), AMQPValue::LongString("lots".into()));
        odd.insert(DELIVERY_COUNT_HEADER.into(), AMQPValue::LongLongInt(-4));
        let p = props(None, None).with_headers(odd);
        let Plan::Answer { timing, .. } = plan(&p, br#"{"name":"Ada"}"#, &policy()) else {
            panic!("answered");
        };
        assert_eq!(timing.failures, 0, "malformed counts are ignored");
    }

    #[test]
    fn a_forbidden_reply_to_wins_over_everything_else() {
        for body in [&br#"{"name":"Ada"}"#[..], b"garbage"] {
            let p = plan(&props(Some("greetings.hello"), Some("c1")), body, &policy());
            assert!(matches!(p, Plan::Forbidden(_)), "{p:?}");
        }
    }

    #[test]
    fn a_roll_call_is_answered_whatever_its_body_and_content_type() {
        let p = props(Some("amq.gen-abc"), Some("c1"))
            .with_type(crate::protocol::names::ROLL_CALL_TYPE.into())
            .with_content_type("text/plain".into());
        assert!(matches!(
            plan(&p, b"", &policy()),
            Plan::RollCall { reply_to: Some(_) }
        ));
        let forbidden = p.with_reply_to("greetings.hello".into());
        assert!(matches!(
            plan(&forbidden, b"", &policy()),
            Plan::Forbidden(_)
        ));
    }

    #[test]
    fn a_content_type_other_than_json_is_refused_and_json_with_parameters_is_not() {
        let body = br#"{"name":"Ada"}"#;
        let text = props(Some("amq.gen-abc"), Some("c1")).with_content_type("text/plain".into());
        assert!(matches!(
            plan(&text, body, &policy()),
            Plan::Refuse {
                why: InvalidRequest::ContentType(_),
                reply_to: Some(_)
            }
        ));
        let json = props(None, None).with_content_type("Application/JSON; charset=utf-8".into());
        assert!(matches!(plan(&json, body, &policy()), Plan::Answer { .. }));
    }
}
