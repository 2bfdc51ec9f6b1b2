//! What a consumer does with one delivery, decided without I/O so that every
//! branch of the contract (points 5 to 8) is unit-tested.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::BasicProperties;

use crate::protocol::{self, ForbiddenReplyTo, InvalidRequest, Name, ReplyToPolicy, ReturnAddress};

/// The decision for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// A valid request: greet, print, reply if it is not one-way, then ack.
    Answer {
        name: Name,
        reply_to: Option<ReturnAddress>,
    },
    /// An invalid body: an error reply if possible, then dead-letter.
    Refuse {
        why: InvalidRequest,
        reply_to: Option<ReturnAddress>,
    },
    /// A `reply_to` that is not a reply address: no reply, dead-letter.
    Forbidden(ForbiddenReplyTo),
    /// Its caller's deadline has passed: nobody waits for the answer, so it is
    /// not processed; dead-lettered.
    Expired { age: Duration },
}

pub(crate) fn plan(
    properties: &BasicProperties,
    body: &[u8],
    policy: &ReplyToPolicy,
    now: SystemTime,
) -> Plan {
    if let Some(age) = expired(properties, now) {
        return Plan::Expired { age };
    }
    let reply_to = ReturnAddress::from_properties(properties);
    if let Some(address) = &reply_to
        && let Err(forbidden) = policy.check(&address.reply_to)
    {
        return Plan::Forbidden(forbidden);
    }
    match protocol::decode_request(body) {
        Ok(name) => Plan::Answer { name, reply_to },
        Err(why) => Plan::Refuse { why, reply_to },
    }
}

/// The broker drops expired messages only at the head of a queue; this is the
/// consumer's own check. `timestamp` has whole-second resolution, so a request
/// counts as expired one second after `timestamp + expiration`: never early.
fn expired(properties: &BasicProperties, now: SystemTime) -> Option<Duration> {
    let sent = UNIX_EPOCH + Duration::from_secs((*properties.timestamp())?);
    let ttl: u64 = properties.expiration().as_ref()?.as_str().parse().ok()?;
    let age = now.duration_since(sent).ok()?;
    (age > Duration::from_millis(ttl) + Duration::from_secs(1)).then_some(age)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(properties: &BasicProperties, body: &[u8], policy: &ReplyToPolicy) -> Plan {
        super::plan(properties, body, policy, SystemTime::now())
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
                name: Name::parse("Ada").expect("valid"),
                reply_to: Some(ReturnAddress {
                    reply_to: "amq.gen-abc".into(),
                    correlation_id: "c1".into()
                })
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
    fn a_request_past_its_deadline_is_expired_and_never_early() {
        let now = SystemTime::now();
        let sent = now
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
            - 10;
        let p = props(Some("amq.gen-abc"), Some("c1"))
            .with_timestamp(sent)
            .with_expiration("5000".into());
        assert!(matches!(
            super::plan(&p, br#"{"name":"Ada"}"#, &policy(), now),
            Plan::Expired { .. }
        ));
        let fresh = p.clone().with_expiration("11000".into());
        assert!(matches!(
            super::plan(&fresh, br#"{"name":"Ada"}"#, &policy(), now),
            Plan::Answer { .. }
        ));
        let no_expiration = props(None, None).with_timestamp(sent);
        assert!(matches!(
            super::plan(&no_expiration, br#"{"name":"Ada"}"#, &policy(), now),
            Plan::Answer { .. }
        ));
    }

    #[test]
    fn a_forbidden_reply_to_wins_over_everything_else() {
        for body in [&br#"{"name":"Ada"}"#[..], b"garbage"] {
            let p = plan(&props(Some("greetings.hello"), Some("c1")), body, &policy());
            assert!(matches!(p, Plan::Forbidden(_)), "{p:?}");
        }
    }
}
