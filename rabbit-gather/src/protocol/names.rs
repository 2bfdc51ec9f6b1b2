//! Every name of wire contract v1 that a client or an operator may need:
//! error codes of error replies and the headers the consumers add to the
//! copies they publish (delayed retries and dead letters). Nothing else in
//! the code spells these strings.

/// Error code of a request the consumer could not understand (bad body).
pub const INVALID_REQUEST: &str = "invalid_request";
/// Error code of a request whose handler kept failing (transient errors or
/// panics, `consumer.max_failures` times).
pub const INTERNAL_ERROR: &str = "internal_error";
/// Error code of a request its handler refused for good (a permanent error):
/// retrying would not help.
pub const REQUEST_FAILED: &str = "request_failed";
/// Error code of an answer larger than the broker accepts in one message
/// (`amqp.max_message_size`), even alone in a reply part: the answer is
/// replaced by this error (contract v1.2).
pub const REPLY_TOO_LARGE: &str = "reply_too_large";

/// Header on a dead letter the consumer published itself: why it was
/// dead-lettered.
pub const REASON_HEADER: &str = "x-greetings-reason";
/// Header on a dead letter the consumer published itself: the queue the
/// request came from.
pub const QUEUE_HEADER: &str = "x-greetings-queue";
/// Header on a request copy scheduled for a delayed retry: how many handling
/// attempts have failed so far. Every replica reads the same count from the
/// message itself.
pub const FAILURES_HEADER: &str = "x-greetings-failures";
/// Header on a request copy scheduled for a delayed retry: the caller's
/// original `expiration` (ms), kept because the copy's own `expiration` holds
/// the retry delay and the broker drops it when the delay ends.
pub const EXPIRATION_HEADER: &str = "x-greetings-expiration";
/// Header quorum queues add: how many times the broker delivered the message
/// before (requeues after a crash or a lost connection included).
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// Routing key of a retry copy on a word's retry exchange: it goes to the
/// word's retry queue, to wait out its delay.
pub const RETRY_WAIT_KEY: &str = "wait";

/// Routing key an expired retry carries back through the word's retry
/// exchange to the word's queue.
pub const RETRY_DUE_KEY: &str = "due";

/// Routing key of a dead letter on a word's retry exchange: it goes to the
/// dead-letter queue. The broker's dead-lettering of the word's queue uses
/// it too, so every letter in `<prefix>.dead` names, in the exchange it was
/// published to, the one word that may have written it (a replay goes back
/// to that word alone).
pub const DEAD_KEY: &str = "dead";

/// Error code a client gives a reply whose answer does not decode as the
/// reply type it expects.
pub const MALFORMED_REPLY: &str = "malformed_reply";

/// The AMQP `type` of a roll call: a request every live responder answers
/// at once with its name alone (`{"consumer": "<responder>"}`), without
/// running its handler, so that a caller can learn who is live.
pub const ROLL_CALL_TYPE: &str = "roll-call";
