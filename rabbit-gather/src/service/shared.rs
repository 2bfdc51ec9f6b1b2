//! What every session of one service shares: its settings and names, its
//! handler, its counters and health.

use std::sync::Arc;

use super::{counters::ServiceCounters, handler::DynHandler, health::Health, returns::Returns};
use crate::{
    protocol::{Contract, Json, ReplyToPolicy},
    settings::Settings,
    topology::{Topology, Word},
};

/// Where a service writes a line per answer (greetings' `W NAME` lines on
/// stdout; none unless set).
pub(crate) type Printer = Arc<dyn Fn(&Json) + Send + Sync>;

/// What every session of one service shares.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) word: Word,
    pub(crate) topology: Topology,
    pub(crate) queue: String,
    /// Where the word's retries come back (consumed with `queue`).
    pub(crate) due_queue: String,
    pub(crate) retry_exchange: String,
    pub(crate) reply_exchange: String,
    pub(crate) policy: ReplyToPolicy,
    /// The envelope's fields and limits.
    pub(crate) contract: Contract,
    pub(crate) handler: Arc<dyn DynHandler>,
    pub(crate) printer: Option<Printer>,
    pub(crate) counters: Arc<ServiceCounters>,
    pub(crate) health: Arc<Health>,
    /// Requests handed back to their queue because a copy failed.
    pub(crate) returns: Returns,
}
