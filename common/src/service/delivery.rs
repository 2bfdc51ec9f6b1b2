//! Handling one delivery, start to finish: decide ([`plan`]), run the handler,
//! reply, and settle the delivery. The rules:
//!
//! - a request is acked only once everything it needs is confirmed by the
//!   broker: its reply, or the copy that carries it on (a delayed retry, a
//!   dead letter). A publish still nacked after its retries returns the
//!   delivery to its queue (nack with requeue): nothing is lost;
//! - a transient handler failure sends a copy to the word's retry queue,
//!   where it waits a growing delay without holding up other deliveries, with
//!   its failure count in a header every replica reads; after
//!   `consumer.max_failures` failures, or at once for a permanent failure, it
//!   is dead-lettered with a reason and the caller gets an error reply;
//! - a reply the broker refuses (it closes the publishing connection over a
//!   crafted `reply_to`) is that request's problem: the request is
//!   dead-lettered with the reason, and the service goes on.

use std::time::{Duration, SystemTime};

use lapin::{
    BasicProperties,
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions},
    types::{AMQPValue, FieldTable, ShortString},
};

use tracing::Instrument;

use super::{
    ServiceError, Shared, broker,
    counters::ServiceCounters,
    handler::{Context, Handled, Retry, handle_contained},
    plan::{self, Plan, Timing},
    publisher::{Message, PublishError, Publisher},
};
use crate::protocol::{
    self, Outcome, Reply, ReturnAddress,
    names::{
        EXPIRATION_HEADER, FAILURES_HEADER, INTERNAL_ERROR, QUEUE_HEADER, REASON_HEADER,
        REQUEST_FAILED,
    },
};
use crate::trace::Trace;

/// Headers a copy must never carry: sender-selected distribution would make
/// the broker route the copy to queues the request names.
const ROUTING_HEADERS: [&str; 2] = ["CC", "BCC"];

/// Handles one delivery. `Err` only when the broker connection is lost (the
/// session ends; the delivery goes back to its queue with the channel).
pub(crate) async fn handle(
    shared: &Shared,
    publisher: &Publisher,
    delivery: Delivery,
) -> Result<(), ServiceError> {
    let _in_hand = shared.counters.take_in_hand(delivery.redelivered);
    let trace = Trace::continue_from(delivery.properties.headers().as_ref());
    let span = tracing::info_span!(
        "request",
        queue = %shared.queue,
        correlation_id = delivery.properties.correlation_id().as_ref().map_or("", |c| c.as_str()),
        trace_id = %trace.trace_id(),
        span_id = %trace.span_id(),
    );
    let job = Job {
        shared,
        publisher,
        delivery,
        trace,
    };
    job.run().instrument(span).await
}

// The paths off the answered-and-acked one (error replies, dead letters,
// delayed retries) are boxed where they are awaited: inline, they made the
// future of every delivery 8 KB (copied twice per delivery when it is queued
// for handling); the common path now carries only pointers to them.
impl Job<'_> {
    /// Decides, handles and settles the delivery.
    async fn run(self) -> Result<(), ServiceError> {
        let job = self;
        let shared = job.shared;
        let decided = plan::plan(
            &job.delivery.properties,
            &job.delivery.data,
            &shared.policy,
            SystemTime::now(),
            shared.settings.consumer.clock_skew,
        );
        match decided {
            Plan::Answer {
                name,
                reply_to,
                timing,
            } => {
                let context = Context {
                    word: shared.word.clone(),
                    correlation_id: job
                        .delivery
                        .properties
                        .correlation_id()
                        .as_ref()
                        .map(ToString::to_string),
                    deadline: timing.deadline,
                    attempt: timing.failures.saturating_add(1),
                    trace: job.trace.clone(),
                };
                let cancel_at = timing
                    .deadline
                    .and_then(|d| d.checked_add(shared.settings.consumer.clock_skew));
                let handled = handle_contained(&*shared.handler, name, context, cancel_at).await;
                job.settle(handled, reply_to, timing).await
            }
            Plan::Refuse { why, reply_to } => {
                ServiceCounters::add(&shared.counters.invalid);
                tracing::warn!(reason = %why, queue = %shared.queue, "invalid request; dead-lettering it");
                if let Some(address) = reply_to {
                    let outcome = Outcome::Error {
                        code: why.code().to_owned(),
                        message: why.to_string(),
                    };
                    Box::pin(job.error_reply(&address, outcome)).await?;
                }
                job.reject().await
            }
            Plan::Forbidden(why) => {
                ServiceCounters::add(&shared.counters.forbidden_reply_to);
                tracing::warn!(reason = %why, queue = %shared.queue, "refusing to reply; dead-lettering the request");
                job.reject().await
            }
            Plan::Expired { age } => {
                ServiceCounters::add(&shared.counters.expired);
                tracing::info!(age_ms = age.as_millis(), queue = %shared.queue, "request expired before processing; dead-lettering it");
                job.reject().await
            }
        }
    }
}

/// One delivery being handled, with what handling it needs.
struct Job<'a> {
    shared: &'a Shared,
    publisher: &'a Publisher,
    delivery: Delivery,
    /// The request's trace context, carried on to its reply.
    trace: Trace,
}

impl Job<'_> {
    async fn settle(
        self,
        handled: Handled,
        reply_to: Option<ReturnAddress>,
        timing: Timing,
    ) -> Result<(), ServiceError> {
        let shared = self.shared;
        match handled {
            Handled::Greeting(greeting) => {
                ServiceCounters::add(&shared.counters.handled);
                (shared.printer)(&greeting);
                let counted = |&(): &()| {
                    ServiceCounters::add(&shared.counters.ok);
                    tracing::debug!("answered");
                };
                let Some(address) = reply_to else {
                    return self.ack().await.inspect(counted);
                };
                match self.reply(&address, Outcome::Greeting(greeting)).await {
                    Ok(()) => self.ack().await.inspect(counted),
                    Err(Undelivered::Refused(why)) => {
                        tracing::warn!(reason = %why, queue = %shared.queue, "the broker refused the reply; dead-lettering the request");
                        Box::pin(self.dead_letter(&why)).await
                    }
                    Err(Undelivered::Nacked) => {
                        let failures = timing.failures.saturating_add(1);
                        Box::pin(self.give_up_or_retry(
                            None,
                            timing,
                            failures,
                            "the broker nacked the reply",
                        ))
                        .await
                    }
                    Err(Undelivered::Lost(error)) => Err(error),
                }
            }
            Handled::Failed(error) if error.retry == Retry::Permanent => {
                let reason = format!("handler refused the request: {}", error.message);
                tracing::warn!(%reason, queue = %shared.queue, "permanent failure; dead-lettering the request");
                if let Some(address) = &reply_to {
                    let outcome = Outcome::Error {
                        code: REQUEST_FAILED.to_owned(),
                        message: error.message,
                    };
                    Box::pin(self.error_reply(address, outcome)).await?;
                }
                Box::pin(self.dead_letter(&reason)).await
            }
            Handled::Failed(error) => {
                let failures = timing.failures.saturating_add(1);
                Box::pin(self.give_up_or_retry(reply_to.as_ref(), timing, failures, &error.message))
                    .await
            }
            Handled::TimedOut => {
                let reason = "handler still running at the caller's deadline";
                tracing::warn!(reason, queue = %shared.queue, "dead-lettering the request");
                Box::pin(self.dead_letter(reason)).await
            }
        }
    }

    /// After `failures` failed attempts: dead-letter (with an error reply to
    /// `reply_to`) once `consumer.max_failures` is reached, else schedule a
    /// retry after a growing delay.
    async fn give_up_or_retry(
        self,
        reply_to: Option<&ReturnAddress>,
        timing: Timing,
        failures: u32,
        error: &str,
    ) -> Result<(), ServiceError> {
        let shared = self.shared;
        let limit = shared.settings.consumer.max_failures;
        if failures < limit {
            let delay = retry_delay(
                shared.settings.consumer.retry_delay,
                shared.settings.consumer.max_retry_delay,
                failures,
            );
            tracing::warn!(%error, failures, limit, retry_in_ms = delay.as_millis(), queue = %shared.queue, "handling failed; retrying the request later");
            return Box::pin(self.retry_later(timing, failures, delay)).await;
        }
        let reason = format!("handler failed {failures} times: {error}");
        tracing::error!(%reason, queue = %shared.queue, "poison message; dead-lettering it");
        if let Some(address) = reply_to {
            let outcome = Outcome::Error {
                code: INTERNAL_ERROR.to_owned(),
                message: reason.clone(),
            };
            Box::pin(self.error_reply(address, outcome)).await?;
        }
        Box::pin(self.dead_letter(&reason)).await
    }

    /// Publishes a reply and waits for its confirm. A refusal whose culprit is
    /// unsure (other publishes were in flight) is retried alone first.
    async fn reply(&self, address: &ReturnAddress, outcome: Outcome) -> Result<(), Undelivered> {
        let body = Reply {
            consumer: self.shared.word.to_string(),
            outcome,
        }
        .encode();
        let message = Message {
            exchange: "",
            routing_key: &address.reply_to,
            body: &body,
            properties: protocol::reply_properties(&address.correlation_id)
                .with_headers(self.trace.headers()),
            mandatory: false,
        };
        let mut result = self.publisher.publish(&message).await;
        if let Err(PublishError::Refused { alone: false, .. }) = &result {
            result = self.publisher.publish_alone(&message).await;
        }
        match result {
            Ok(()) => {
                ServiceCounters::add(&self.shared.counters.replies);
                Ok(())
            }
            Err(PublishError::Refused { error, .. }) => {
                ServiceCounters::add(&self.shared.counters.replies_refused);
                Err(Undelivered::Refused(format!(
                    "the broker refused the reply to {:?}: {error}",
                    address.reply_to
                )))
            }
            // Not mandatory: a reply is never returned.
            Err(PublishError::Nacked | PublishError::Unroutable) => Err(Undelivered::Nacked),
            Err(PublishError::Lost(error)) => Err(Undelivered::Lost(error)),
        }
    }

    /// An error reply before the request is dead-lettered anyway: only a lost
    /// connection matters.
    async fn error_reply(
        &self,
        address: &ReturnAddress,
        outcome: Outcome,
    ) -> Result<(), ServiceError> {
        match self.reply(address, outcome).await {
            Ok(()) => Ok(()),
            Err(Undelivered::Lost(error)) => Err(error),
            Err(Undelivered::Refused(why)) => {
                tracing::warn!(reason = %why, "error reply not delivered");
                Ok(())
            }
            Err(Undelivered::Nacked) => {
                tracing::warn!("error reply nacked by the broker");
                Ok(())
            }
        }
    }

    /// Sends a copy to the word's retry queue, where it waits `delay` before
    /// the broker moves it back to the word's queue; then acks the original.
    async fn retry_later(
        self,
        timing: Timing,
        failures: u32,
        delay: Duration,
    ) -> Result<(), ServiceError> {
        let mut headers = self.copied_headers();
        headers.insert(
            FAILURES_HEADER.into(),
            AMQPValue::LongLongInt(i64::from(failures)),
        );
        if let Some(ms) = timing.expiration_ms {
            headers.insert(
                EXPIRATION_HEADER.into(),
                AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)),
            );
        }
        let original_mode = self.delivery.properties.delivery_mode().unwrap_or(2);
        let properties = self
            .copied_properties(headers)
            .with_delivery_mode(original_mode)
            .with_expiration(delay.as_millis().max(1).to_string().into());
        let queue = self.shared.retry_queue.as_str();
        let message = Message {
            exchange: "",
            routing_key: queue,
            body: &self.delivery.data,
            properties,
            mandatory: true,
        };
        match self.publisher.publish(&message).await {
            Ok(()) => {
                ServiceCounters::add(&self.shared.counters.retries_scheduled);
                self.ack().await
            }
            Err(PublishError::Lost(error)) => Err(error),
            Err(other) => {
                self.requeue(&format!("scheduling a retry: {other:?}"))
                    .await
            }
        }
    }

    /// Publishes a copy to the dead-letter exchange with a reason header (a
    /// broker-side reject cannot carry one), then acks the original. The copy
    /// drops `expiration`, as the broker does when it dead-letters.
    async fn dead_letter(self, reason: &str) -> Result<(), ServiceError> {
        let mut headers = self.copied_headers();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
        headers.insert(
            QUEUE_HEADER.into(),
            AMQPValue::LongString(self.shared.queue.as_str().into()),
        );
        let properties = self.copied_properties(headers).with_delivery_mode(2);
        let exchange = self.shared.topology.dead_letter_exchange();
        let message = Message {
            exchange: &exchange,
            routing_key: &self.shared.queue,
            body: &self.delivery.data,
            properties,
            // With no dead-letter queue bound, the copy would be dropped and
            // the request lost with the ack: returned, it is requeued.
            mandatory: true,
        };
        match self.publisher.publish(&message).await {
            Ok(()) => {
                ServiceCounters::add(&self.shared.counters.dead_lettered);
                self.ack().await
            }
            Err(PublishError::Lost(error)) => Err(error),
            Err(other) => self.requeue(&format!("dead-lettering: {other:?}")).await,
        }
    }

    /// The request's headers minus sender-selected distribution.
    fn copied_headers(&self) -> FieldTable {
        let mut headers = FieldTable::default();
        if let Some(original) = self.delivery.properties.headers() {
            for (key, value) in original.inner() {
                if !ROUTING_HEADERS.contains(&key.as_str()) {
                    headers.insert(key.clone(), value.clone());
                }
            }
        }
        headers
    }

    /// The properties a copy keeps (never `user_id`, which the broker checks
    /// against the publishing user, nor `expiration`).
    fn copied_properties(&self, headers: FieldTable) -> BasicProperties {
        let original = &self.delivery.properties;
        let mut properties = BasicProperties::default().with_headers(headers);
        let keep =
            |p: BasicProperties,
             v: &Option<ShortString>,
             set: fn(BasicProperties, ShortString) -> BasicProperties| match v {
                Some(v) => set(p, v.clone()),
                None => p,
            };
        properties = keep(
            properties,
            original.content_type(),
            BasicProperties::with_content_type,
        );
        properties = keep(
            properties,
            original.correlation_id(),
            BasicProperties::with_correlation_id,
        );
        properties = keep(
            properties,
            original.message_id(),
            BasicProperties::with_message_id,
        );
        properties = keep(
            properties,
            original.reply_to(),
            BasicProperties::with_reply_to,
        );
        if let Some(v) = original.timestamp() {
            properties = properties.with_timestamp(*v);
        }
        properties
    }

    async fn ack(self) -> Result<(), ServiceError> {
        self.delivery
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(broker("acking a request"))
    }

    /// Rejects without requeue: the broker moves the request to the
    /// dead-letter exchange instead of redelivering it in a loop.
    async fn reject(self) -> Result<(), ServiceError> {
        ServiceCounters::add(&self.shared.counters.rejected);
        self.delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .map(drop)
            .map_err(broker("dead-lettering a request"))
    }

    /// Returns the delivery to its queue: a publish it needed was not
    /// confirmed, so acking it could lose it.
    async fn requeue(self, why: &str) -> Result<(), ServiceError> {
        ServiceCounters::add(&self.shared.counters.requeued_after_nack);
        tracing::warn!(why, queue = %self.shared.queue, "a publish was not confirmed; returning the request to its queue");
        self.delivery
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
            .map(drop)
            .map_err(broker("requeueing a request"))
    }
}

/// Why a reply did not reach the broker.
enum Undelivered {
    /// Refused for good (the reason, for the dead letter).
    Refused(String),
    /// Still nacked after its retries.
    Nacked,
    /// The connection is gone.
    Lost(ServiceError),
}

/// The delay before the attempt after `failures` failures: `first`, doubled
/// each time, at most `max`.
fn retry_delay(first: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    first.saturating_mul(1 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let s = Duration::from_secs;
        let delays: Vec<_> = (1..=7).map(|n| retry_delay(s(1), s(30), n)).collect();
        assert_eq!(delays, [s(1), s(2), s(4), s(8), s(16), s(30), s(30)]);
        assert_eq!(retry_delay(s(1), s(30), u32::MAX), s(30));
    }
}
