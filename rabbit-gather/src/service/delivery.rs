//! Handling one delivery, start to finish: decide ([`plan`]), run the handler,
//! reply, and settle the delivery. The rules:
//!
//! - a request is acked only once everything it needs is confirmed by the
//!   broker: its reply, or the copy that carries it on (a delayed retry, a
//!   dead letter). A publish still nacked after its retries returns the
//!   delivery to its queue (reject with requeue, which every RabbitMQ counts
//!   towards a quorum queue's delivery limit): nothing is lost;
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
    options::{BasicAckOptions, BasicRejectOptions},
    types::{AMQPValue, FieldTable, ShortString},
};

use tracing::Instrument;

use super::{
    counters::ServiceCounters,
    error::{ServiceError, broker},
    handler::{Context, Handled, Retry, handle_contained},
    plan::{self, Plan, Timing},
    publisher::{Message, PublishError, Publisher},
    shared::Shared,
};
use crate::protocol::{
    self, BatchReply, InvalidRequest, Json, Outcome, Reply, Request, ReturnAddress,
    names::{
        DEAD_KEY, EXPIRATION_HEADER, FAILURES_HEADER, INTERNAL_ERROR, QUEUE_HEADER, REASON_HEADER,
        REQUEST_FAILED, RETRY_WAIT_KEY,
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
        retry_body: None,
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
            &shared.contract,
            SystemTime::now(),
            shared.settings.consumer.clock_skew,
        );
        match decided {
            Plan::Answer {
                request: Request::Single(request),
                reply_to,
                timing,
            } => {
                let (context, cancel_at) = job.context(&timing);
                let handled =
                    handle_contained(&*shared.handler, &request, context, cancel_at).await;
                job.settle(handled, reply_to, timing).await
            }
            Plan::Answer {
                request: Request::Batch(items),
                reply_to,
                timing,
            } => Box::pin(job.answer_batch(items, reply_to, timing)).await,
            Plan::RollCall { reply_to } => Box::pin(job.answer_roll_call(reply_to)).await,
            Plan::Refuse { why, reply_to } => Box::pin(job.refuse(&why, reply_to)).await,
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

/// Why a request whose handler was cancelled is dead-lettered.
const TIMED_OUT: &str =
    "handler still running at the caller's deadline or after consumer.max_handling_time";

/// One delivery being handled, with what handling it needs.
struct Job<'a> {
    shared: &'a Shared,
    publisher: &'a Publisher,
    delivery: Delivery,
    /// The request's trace context, carried on to its reply.
    trace: Trace,
    /// The body of this request's retry copy when it differs from the
    /// request's: a batch's, with the results already known.
    retry_body: Option<Vec<u8>>,
}

impl Job<'_> {
    /// What the handler knows about this delivery, and when to cancel it
    /// (the caller's deadline plus the tolerated clock skew).
    fn context(&self, timing: &Timing) -> (Context, Option<SystemTime>) {
        let context = Context {
            word: self.shared.word.clone(),
            correlation_id: self
                .delivery
                .properties
                .correlation_id()
                .as_ref()
                .map(ToString::to_string),
            deadline: timing.deadline,
            attempt: timing.failures.saturating_add(1),
            trace: self.trace.clone(),
        };
        // The caller's deadline (plus the skew), bounded by the service's
        // own limit: a request with no deadline, or a crafted far one, must
        // not hold a handler for ever.
        let settings = &self.shared.settings.consumer;
        let bound = SystemTime::now().checked_add(settings.max_handling_time);
        let cancel_at = match (
            timing
                .deadline
                .and_then(|d| d.checked_add(settings.clock_skew)),
            bound,
        ) {
            (Some(deadline), Some(bound)) => Some(deadline.min(bound)),
            (deadline, bound) => deadline.or(bound),
        };
        (context, cancel_at)
    }

    /// A batch (contract v1.1), handled as one delivery: each name is
    /// validated and handled in order, then one reply carries a result per
    /// name, and the delivery is settled once. The v1 rules apply per name
    /// (an invalid name gets `invalid_request`, a permanent failure
    /// `request_failed`, a handler failing `consumer.max_failures` times
    /// `internal_error`) and per delivery: while any name fails transiently
    /// and attempts are left, the batch is retried later (nothing printed or
    /// answered yet), its retry copy carrying the other names' results so
    /// that only the failed names are handled again (the whole batch when
    /// that copy would not fit the broker's message size); a batch with a name that failed for good is
    /// dead-lettered after its reply; a handler still running at the
    /// deadline dead-letters the whole batch, unanswered, as in v1.
    async fn answer_batch(
        self,
        items: Vec<Json>,
        reply_to: Option<ReturnAddress>,
        timing: Timing,
    ) -> Result<(), ServiceError> {
        let shared = self.shared;
        let (context, cancel_at) = self.context(&timing);
        let failures = timing.failures.saturating_add(1);
        // A retry handles again only the names that failed: the others'
        // results came in the retry copy.
        let done = if timing.failures > 0 {
            protocol::decode_done(&shared.contract, &self.delivery.data, items.len())
        } else {
            None
        }
        .unwrap_or_default();
        let mut results = Vec::with_capacity(items.len());
        // Indexes of names whose handler failed transiently, and the first
        // such error; the first permanent failure.
        let mut transient: (Vec<usize>, Option<String>) = (Vec::new(), None);
        let mut permanent = None;
        for (index, item) in items.iter().enumerate() {
            if let Some(Some(outcome)) = done.get(index) {
                results.push(outcome.clone());
                continue;
            }
            match handle_contained(&*shared.handler, item, context.clone(), cancel_at).await {
                Handled::Answer(answer) => results.push(Outcome::Ok(answer)),
                Handled::Invalid(why) => {
                    let why = InvalidRequest::Payload(why);
                    results.push(Outcome::Error {
                        code: why.code().to_owned(),
                        message: why.to_string(),
                    });
                }
                Handled::Failed(error) if error.retry == Retry::Permanent => {
                    permanent.get_or_insert_with(|| error.message.clone());
                    results.push(Outcome::Error {
                        code: REQUEST_FAILED.to_owned(),
                        message: error.message,
                    });
                }
                Handled::Failed(error) => {
                    transient.0.push(index);
                    let message = format!("handler failed {failures} times: {}", error.message);
                    transient.1.get_or_insert_with(|| error.message.clone());
                    results.push(Outcome::Error {
                        code: INTERNAL_ERROR.to_owned(),
                        message,
                    });
                }
                Handled::TimedOut => {
                    let reason = TIMED_OUT;
                    tracing::warn!(reason, queue = %shared.queue, "dead-lettering the batch");
                    return Box::pin(self.dead_letter(reason)).await;
                }
            }
        }
        let limit = shared.settings.consumer.max_failures;
        if let Some(error) = &transient.1
            && failures < limit
        {
            let mut known: Vec<Option<Outcome>> = results.into_iter().map(Some).collect();
            for &index in &transient.0 {
                known[index] = None;
            }
            let mut job = self;
            job.retry_body = protocol::encode_retry_batch(
                &shared.contract,
                &job.delivery.data,
                &known,
                shared.settings.amqp.max_message_size,
            );
            return Box::pin(job.give_up_or_retry(None, timing, failures, error)).await;
        }
        let answered = results.iter().filter_map(Outcome::ok);
        ServiceCounters::add_n(&shared.counters.handled, answered.clone().count());
        ServiceCounters::add_n(&shared.counters.batch_names, results.len());
        if let Some(printer) = &shared.printer {
            answered.for_each(|answer| printer(answer));
        }
        let failed_for_good = match (&transient.1, &permanent) {
            (Some(error), _) => Some(format!(
                "handler failed {failures} times for {} of {} names: {error}",
                transient.0.len(),
                results.len()
            )),
            (None, Some(error)) => Some(format!("handler refused a name of the batch: {error}")),
            (None, None) => None,
        };
        if let Some(address) = &reply_to {
            match self.reply(address, Answer::Batch(results)).await {
                // Gone: no one waits for the answer; the batch is done.
                Ok(()) | Err(Undelivered::Gone) => {}
                Err(Undelivered::Refused(why)) => {
                    tracing::warn!(reason = %why, queue = %shared.queue, "the broker refused the reply; dead-lettering the batch");
                    return Box::pin(self.dead_letter(&why)).await;
                }
                Err(Undelivered::Nacked) => {
                    return Box::pin(self.give_up_or_retry(
                        None,
                        timing,
                        failures,
                        "the broker nacked the reply",
                    ))
                    .await;
                }
                Err(Undelivered::Lost(error)) => return Err(error),
            }
        }
        match failed_for_good {
            Some(reason) => {
                tracing::warn!(%reason, queue = %shared.queue, "dead-lettering the batch after its reply");
                Box::pin(self.dead_letter(&reason)).await
            }
            None => self.ack().await.inspect(|&()| {
                ServiceCounters::add(&shared.counters.ok);
                tracing::debug!("answered");
            }),
        }
    }

    async fn settle(
        self,
        handled: Handled,
        reply_to: Option<ReturnAddress>,
        timing: Timing,
    ) -> Result<(), ServiceError> {
        let shared = self.shared;
        match handled {
            Handled::Answer(answer) => {
                ServiceCounters::add(&shared.counters.handled);
                if let Some(printer) = &shared.printer {
                    printer(&answer);
                }
                let counted = |&(): &()| {
                    ServiceCounters::add(&shared.counters.ok);
                    tracing::debug!("answered");
                };
                let Some(address) = reply_to else {
                    return self.ack().await.inspect(counted);
                };
                match self
                    .reply(&address, Answer::Single(Outcome::Ok(answer)))
                    .await
                {
                    Ok(()) => self.ack().await.inspect(counted),
                    Err(Undelivered::Gone) => {
                        tracing::info!(reply_to = %address.reply_to, queue = %shared.queue, "the caller has gone (its reply queue is deleted); acking the request");
                        self.ack().await
                    }
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
            Handled::Invalid(why) => {
                Box::pin(self.refuse(&InvalidRequest::Payload(why), reply_to)).await
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
                let reason = TIMED_OUT;
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
    async fn reply(&self, address: &ReturnAddress, answer: Answer) -> Result<(), Undelivered> {
        let consumer = self.shared.word.to_string();
        let limit = self.shared.settings.amqp.max_message_size;
        // Never larger than the broker accepts: a batch's answer in parts,
        // an answer too large even alone replaced by an error (contract v1.2).
        let contract = &self.shared.contract;
        let bodies = match answer {
            Answer::Single(outcome) => {
                vec![Reply { consumer, outcome }.encode_within(contract, limit)]
            }
            Answer::Batch(results) => BatchReply {
                consumer,
                offset: None,
                results,
            }
            .encode_within(contract, limit),
            Answer::Present => vec![protocol::encode_presence(&consumer)],
        };
        for body in &bodies {
            self.reply_part(address, body).await?;
        }
        Ok(())
    }

    /// Publishes one reply body and waits for its confirm.
    async fn reply_part(&self, address: &ReturnAddress, body: &[u8]) -> Result<(), Undelivered> {
        // A reply queue is reached through the reply exchange, mandatory: a
        // client that has gone (its queue deleted with its connection) is
        // noticed. Direct reply-to stays as contract v1 clients know it.
        let to_reply_queue = self.shared.policy.is_reply_queue(&address.reply_to);
        let message = Message {
            exchange: if to_reply_queue {
                &self.shared.reply_exchange
            } else {
                ""
            },
            routing_key: &address.reply_to,
            body,
            properties: protocol::reply_properties(&address.correlation_id)
                .with_headers(self.trace.headers()),
            mandatory: to_reply_queue,
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
            Err(PublishError::Unroutable) => {
                ServiceCounters::add(&self.shared.counters.replies_returned);
                Err(Undelivered::Gone)
            }
            Err(PublishError::Nacked) => Err(Undelivered::Nacked),
            Err(PublishError::Lost(error)) => Err(Undelivered::Lost(error)),
        }
    }

    /// Refuses an invalid request: an error reply when it can be answered,
    /// then a dead letter (by the broker, with a reject).
    async fn refuse(
        self,
        why: &InvalidRequest,
        reply_to: Option<ReturnAddress>,
    ) -> Result<(), ServiceError> {
        ServiceCounters::add(&self.shared.counters.invalid);
        tracing::warn!(reason = %why, queue = %self.shared.queue, "invalid request; dead-lettering it");
        if let Some(address) = reply_to {
            let outcome = Outcome::Error {
                code: why.code().to_owned(),
                message: why.to_string(),
            };
            self.error_reply(&address, outcome).await?;
        }
        self.reject().await
    }

    /// Answers a roll call with this responder's name, then acks it: a
    /// roll call is never handled, retried or dead-lettered.
    async fn answer_roll_call(self, reply_to: Option<ReturnAddress>) -> Result<(), ServiceError> {
        if let Some(address) = &reply_to {
            match self.reply(address, Answer::Present).await {
                Ok(()) | Err(Undelivered::Gone | Undelivered::Nacked) => {}
                Err(Undelivered::Refused(why)) => {
                    tracing::warn!(reason = %why, "roll-call answer not delivered");
                }
                Err(Undelivered::Lost(error)) => return Err(error),
            }
        }
        tracing::debug!("answered a roll call");
        self.ack().await
    }

    /// An error reply before the request is dead-lettered anyway: only a lost
    /// connection matters.
    async fn error_reply(
        &self,
        address: &ReturnAddress,
        outcome: Outcome,
    ) -> Result<(), ServiceError> {
        match self.reply(address, Answer::Single(outcome)).await {
            Ok(()) | Err(Undelivered::Gone) => Ok(()),
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
        let message = Message {
            exchange: &self.shared.retry_exchange,
            routing_key: RETRY_WAIT_KEY,
            body: self.retry_body.as_deref().unwrap_or(&self.delivery.data),
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

    /// Publishes a copy to the dead-letter queue with a reason header (a
    /// broker-side reject cannot carry one), through the word's own
    /// exchange (key `dead`), then acks the original. The copy drops
    /// `expiration`, as the broker does when it dead-letters.
    async fn dead_letter(self, reason: &str) -> Result<(), ServiceError> {
        let mut headers = self.copied_headers();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
        headers.insert(
            QUEUE_HEADER.into(),
            AMQPValue::LongString(self.shared.queue.as_str().into()),
        );
        let properties = self.copied_properties(headers).with_delivery_mode(2);
        let message = Message {
            exchange: &self.shared.retry_exchange,
            routing_key: DEAD_KEY,
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
    ///
    /// With `basic.reject`, not `basic.nack`: from RabbitMQ 4.3 only a reject
    /// raises a quorum queue's delivery count, and that count (its delivery
    /// limit) is the broker's backstop for a request that can never be
    /// settled. The failure count this service carries in the message stays
    /// the authority for retries; the broker's count only bounds the loop.
    ///
    /// Never at once: after the retry delay for the number of times this
    /// process has returned the request (see `returns`), so a copy target
    /// that refuses everything makes a slow, logged loop, not a hot one.
    async fn requeue(self, why: &str) -> Result<(), ServiceError> {
        ServiceCounters::add(&self.shared.counters.requeued_after_nack);
        let returns = self.shared.returns.record(&self.delivery);
        let settings = &self.shared.settings.consumer;
        let delay = retry_delay(settings.retry_delay, settings.max_retry_delay, returns);
        tracing::warn!(why, returns, delay_ms = delay.as_millis(), queue = %self.shared.queue, "a publish was not confirmed; returning the request to its queue after a delay");
        tokio::time::sleep(delay).await;
        self.delivery
            .reject(BasicRejectOptions { requeue: true })
            .await
            .map(drop)
            .map_err(broker("requeueing a request"))
    }
}

/// What a reply carries: one outcome (v1), one per item of a batch, or
/// the responder's name alone (to a roll call).
enum Answer {
    Single(Outcome),
    Batch(Vec<Outcome>),
    Present,
}

/// Why a reply did not reach the broker.
enum Undelivered {
    /// Refused for good (the reason, for the dead letter).
    Refused(String),
    /// Still nacked after its retries.
    Nacked,
    /// Returned: the caller's reply queue is gone (with its connection), so
    /// no one waits for the answer.
    Gone,
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
