//! [`Summary`]: what a run did, and the exit code it maps to.

use rabbit_gather::rpc::Stats;

use crate::{exit, latency::Latency};

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Names sent.
    pub sent: u64,
    /// Names with a greeting from every expected consumer.
    pub complete: u64,
    /// Names with a missing or error reply (or refused by the broker).
    pub incomplete: u64,
    /// Names for which at least one consumer replied with an error (each also
    /// counted in [`incomplete`](Self::incomplete)): names, not replies, like
    /// every other count here.
    pub error_replies: u64,
    /// Input lines skipped as invalid.
    pub invalid: u64,
    /// Names the broker refused because a consumer's queue was full (each
    /// also counted in [`incomplete`](Self::incomplete)).
    pub overloaded: u64,
    /// Stopped early by the shutdown future.
    pub interrupted: bool,
    /// How long the calls took, for every name sent (including those that
    /// ended at their deadline); `None` when no name was sent.
    pub latency: Option<Latency>,
    /// The RPC client's counters at the end.
    pub stats: Stats,
}

impl Summary {
    /// The documented exit code for this run.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            exit::INTERRUPTED
        } else if self.invalid > 0 {
            exit::USAGE
        } else if self.overloaded > 0 {
            exit::OVERLOADED
        } else if self.incomplete > 0 {
            exit::INCOMPLETE
        } else {
            exit::OK
        }
    }
}
