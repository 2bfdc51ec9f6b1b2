//! When a call stops gathering: the stop rules. Every rule is bounded by the
//! call's deadline, and a partial result names who is missing wherever the
//! set of responders was known.

use std::time::Duration;

/// How long a roll call waits after the last answer for another one before
/// it decides who is live (unless its deadline comes first).
pub const ROLL_CALL_STALL: Duration = Duration::from_millis(250);

/// When a call ends, besides its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// Every responder of a named set has answered; the ones that did not by
    /// the deadline are named as missing. Replies from others are kept too.
    All(Vec<String>),
    /// The first responder has answered (every item of a batch).
    First,
    /// This many responders have answered (every item of a batch).
    Count(usize),
    /// No new reply for this long after the last one (before the first,
    /// the call waits for it until its deadline).
    Stall(Duration),
    /// Every responder that answers a roll call at the start of the call
    /// (see [`RpcClient::responders`](super::RpcClient::responders)) has
    /// answered; the ones that did not are named as missing.
    Live,
}

impl Until {
    /// The named set a partial result is measured against, if the rule
    /// knows one.
    #[must_use]
    pub fn expected(&self) -> &[String] {
        match self {
            Self::All(set) => set,
            Self::First | Self::Count(_) | Self::Stall(_) | Self::Live => &[],
        }
    }
}

impl From<&[String]> for Until {
    fn from(set: &[String]) -> Self {
        Self::All(set.to_vec())
    }
}

impl From<&Vec<String>> for Until {
    fn from(set: &Vec<String>) -> Self {
        Self::All(set.clone())
    }
}

impl From<Vec<String>> for Until {
    fn from(set: Vec<String>) -> Self {
        Self::All(set)
    }
}

impl<const N: usize> From<[&str; N]> for Until {
    fn from(set: [&str; N]) -> Self {
        Self::All(set.iter().map(|&s| s.to_owned()).collect())
    }
}

impl<const N: usize> From<&[String; N]> for Until {
    fn from(set: &[String; N]) -> Self {
        Self::All(set.to_vec())
    }
}

impl From<&Until> for Until {
    fn from(until: &Until) -> Self {
        until.clone()
    }
}
