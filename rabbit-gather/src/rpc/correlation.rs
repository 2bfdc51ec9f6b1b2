//! Correlation ids: 128 random bits, sent as 32 lowercase hex digits (a UUID
//! v4 without dashes). Kept as a number in the map of calls in flight: no
//! string allocation per call, and a cheap key.

use std::fmt;

/// The id that pairs a request with its replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CorrelationId(u128);

impl CorrelationId {
    /// A fresh random id.
    #[must_use]
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().as_u128())
    }

    /// The id as a number (also the trace id of the call, see
    /// [`Trace::root_with_id`](crate::trace::Trace::root_with_id)).
    #[must_use]
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// Parses the wire form; `None` for anything this client did not send.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u128::from_str_radix(text, 16).ok().map(Self))
            .flatten()
    }
}

impl Default for CorrelationId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_wire_form() {
        let id = CorrelationId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(CorrelationId::parse(&text), Some(id));
        assert_eq!(CorrelationId::parse(&text.to_uppercase()), Some(id));
    }

    #[test]
    fn foreign_ids_are_not_ours() {
        for other in [
            "",
            "c-1",
            "1be1868e-5262-4040-ad59-23b1c4f4db57",
            "+0000000000000000000000000000001",
            &"g".repeat(32),
        ] {
            assert_eq!(CorrelationId::parse(other), None, "{other}");
        }
    }
}
