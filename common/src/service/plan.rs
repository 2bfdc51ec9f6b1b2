//! What a consumer does with one delivery, decided without I/O so that every
//! branch of the contract (points 5 to 8) is unit-tested.

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
}

pub(crate) fn plan(properties: &BasicProperties, body: &[u8], policy: &ReplyToPolicy) -> Plan {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_forbidden_reply_to_wins_over_everything_else() {
        for body in [&br#"{"name":"Ada"}"#[..], b"garbage"] {
            let p = plan(&props(Some("greetings.hello"), Some("c1")), body, &policy());
            assert!(matches!(p, Plan::Forbidden(_)), "{p:?}");
        }
    }
}
