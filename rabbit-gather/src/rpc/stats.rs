//! What an RPC client counts: replies it dropped, and a snapshot of its
//! state for callers ([`Stats`]).

use std::sync::atomic::AtomicU64;

/// Counters of replies that did not belong to a call waiting for them. A
/// [`ReconnectingClient`](super::reconnecting::ReconnectingClient) shares one set across its connections, so that
/// nothing counted on a lost connection is forgotten.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Replies for no call in flight.
    pub(crate) stray: AtomicU64,
    /// Second replies from the same consumer to the same call.
    pub(crate) duplicates: AtomicU64,
    /// Replies that broke the contract or did not fit their request.
    pub(crate) malformed: AtomicU64,
}

/// A snapshot of the client's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Calls retried after a lost connection (only with [`ReconnectingClient`](super::reconnecting::ReconnectingClient)).
    pub retries: u64,
    /// Connections replaced after a loss (only with [`ReconnectingClient`](super::reconnecting::ReconnectingClient)).
    pub reconnects: u64,
    /// Replies for no call in flight (late, after a timeout, or unknown), dropped.
    pub stray: u64,
    /// Second replies from the same consumer to the same call, dropped.
    pub duplicates: u64,
    /// Replies whose body broke the contract, or that did not fit their
    /// request (a batch reply with the wrong number of results), dropped.
    pub malformed: u64,
    /// Calls in flight now.
    pub in_flight: usize,
    /// The broker is blocking this connection (memory or disk alarm).
    pub blocked: bool,
}
