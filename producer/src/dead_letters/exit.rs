//! Exit codes of `dead-letters` (also in `dead-letters --help`): the
//! producer's, with the same numbers for the same kinds of outcome.

pub use crate::exit::{BROKER, FAILURE, INTERRUPTED, OK, USAGE};
/// A selected letter's replay was nacked (the letter is kept), or a
/// requested correlation id is not in the queue.
pub const INCOMPLETE: u8 = crate::exit::INCOMPLETE;
/// Nothing for this prefix: the dead-letter queue or the request exchange
/// does not exist, or no queue is bound to the exchange (the letters are
/// kept).
pub const NO_ROUTE: u8 = crate::exit::NO_ROUTE;
