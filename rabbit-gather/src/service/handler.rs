//! What a service does with a request: its [`Handler`], an async function
//! of the typed request and a [`Context`] (deadline, correlation id, attempt),
//! returning the typed answer, so a handler that calls a database or another
//! service never blocks the runtime. Greetings' [`Greeter`] answers `W NAME`. A handler that fails says whether retrying may help
//! ([`HandlerError::transient`]) or not ([`HandlerError::permanent`]); one
//! that panics is contained and counts as a transient failure.

use std::{
    any::Any,
    marker::PhantomData,
    panic::AssertUnwindSafe,
    time::{Duration, SystemTime},
};

use futures::{FutureExt, future::BoxFuture};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    protocol::{Json, Name},
    topology::Word,
};

/// What a handler knows about the request besides the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The word this service answers for.
    pub word: Word,
    /// The request's correlation id (absent for a one-way request).
    pub correlation_id: Option<String>,
    /// When the caller stops waiting, by the producer's clock: `timestamp` +
    /// `expiration`. `None` when the request carries no deadline. The service
    /// cancels a handler still running at this deadline plus
    /// `consumer.clock_skew`.
    pub deadline: Option<SystemTime>,
    /// This attempt's number: 1 the first time, then one more after each
    /// failed attempt (counted in the message, so every replica agrees).
    pub attempt: u32,
    /// The request's trace context (continued from its `traceparent`, or
    /// new): a handler calling another service passes it on with
    /// [`Trace::inject`](crate::trace::Trace::inject).
    pub trace: crate::trace::Trace,
}

impl Context {
    /// Time left until [`deadline`](Self::deadline) by this machine's clock
    /// (zero once passed); `None` without a deadline.
    #[must_use]
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.duration_since(SystemTime::now()).unwrap_or_default())
    }
}

/// Whether a failed request may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again after a delay (a database that is briefly down).
    Transient,
    /// Dead-letter at once (a request that can never succeed).
    Permanent,
}

/// A handler's failure, with whether retrying may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    /// Transient or permanent.
    pub retry: Retry,
    /// Why; sent to the caller in the error reply when the request gives up.
    pub message: String,
}

impl HandlerError {
    /// A failure worth retrying after a delay; after `consumer.max_failures`
    /// attempts the request is dead-lettered with an `internal_error` reply.
    #[must_use]
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            retry: Retry::Transient,
            message: message.into(),
        }
    }

    /// A failure no retry can fix: the request is dead-lettered at once and
    /// the caller gets a `request_failed` reply.
    #[must_use]
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            retry: Retry::Permanent,
            message: message.into(),
        }
    }
}

/// Answers one request of type `Q` with a reply of type `R`: the code an
/// application writes. Both are any serde types, carried as JSON.
///
/// Implement it with an `async fn`, or pass a closure
/// `|request: Q, cx: Context| async move { ... }`.
pub trait Handler<Q, R>: Send + Sync + 'static {
    /// The answer to `request`.
    ///
    /// # Errors
    /// [`HandlerError`]: transient failures are retried after a growing
    /// delay, permanent ones dead-lettered at once.
    fn handle(
        &self,
        request: Q,
        context: Context,
    ) -> impl Future<Output = Result<R, HandlerError>> + Send;
}

/// Greetings' handler: `hello Ada`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Greeter;

impl Handler<Name, String> for Greeter {
    async fn handle(&self, name: Name, context: Context) -> Result<String, HandlerError> {
        Ok(format!("{} {name}", context.word))
    }
}

impl<F, Fut, Q, R> Handler<Q, R> for F
where
    F: Fn(Q, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send,
{
    fn handle(
        &self,
        request: Q,
        context: Context,
    ) -> impl Future<Output = Result<R, HandlerError>> + Send {
        self(request, context)
    }
}

/// A [`Handler`] with its types erased: JSON in, JSON out, so the runtime
/// holds any handler.
pub(crate) trait DynHandler: Send + Sync {
    /// Decodes `request`, runs the handler and encodes its answer.
    fn handle_json<'a>(&'a self, request: &Json, context: Context) -> BoxFuture<'a, Handled>;
}

/// A handler with the types it decodes and encodes.
pub(crate) struct Typed<H, Q, R> {
    handler: H,
    types: PhantomData<fn(Q) -> R>,
}

impl<H, Q, R> Typed<H, Q, R> {
    pub(crate) fn new(handler: H) -> Self {
        Self {
            handler,
            types: PhantomData,
        }
    }
}

impl<H, Q, R> DynHandler for Typed<H, Q, R>
where
    H: Handler<Q, R>,
    Q: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
{
    fn handle_json<'a>(&'a self, request: &Json, context: Context) -> BoxFuture<'a, Handled> {
        let request = match request.decode::<Q>() {
            Ok(request) => request,
            Err(why) => return Box::pin(std::future::ready(Handled::Invalid(why))),
        };
        let run = self.handler.handle(request, context);
        Box::pin(async move {
            match run.await {
                Ok(answer) => match Json::encode(&answer) {
                    Ok(json) => Handled::Answer(json),
                    Err(error) => Handled::Failed(HandlerError::permanent(format!(
                        "the answer cannot be encoded as JSON: {error}"
                    ))),
                },
                Err(error) => Handled::Failed(error),
            }
        })
    }
}

/// How one handler run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Handled {
    /// The answer, encoded.
    Answer(Json),
    /// The request did not decode as the handler's type: why.
    Invalid(String),
    /// The handler failed (a panic counts as a transient failure).
    Failed(HandlerError),
    /// Still running at its deadline (plus the clock skew): cancelled.
    TimedOut,
}

/// Runs `handler`, turning a panic into a transient [`HandlerError`] so that
/// one bad message never takes the service down, and cancelling it at
/// `cancel_at` (the caller's deadline plus the tolerated clock skew).
pub(crate) async fn handle_contained(
    handler: &dyn DynHandler,
    request: &Json,
    context: Context,
    cancel_at: Option<SystemTime>,
) -> Handled {
    // A panic while decoding or starting the handler is contained too.
    let run =
        AssertUnwindSafe(async move { handler.handle_json(request, context).await }).catch_unwind();
    let result = match cancel_at {
        Some(at) => {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            match tokio::time::timeout(left, run).await {
                Ok(result) => result,
                Err(_) => return Handled::TimedOut,
            }
        }
        None => run.await,
    };
    match result {
        Ok(handled) => handled,
        Err(panic) => Handled::Failed(HandlerError::transient(format!(
            "handler panicked: {}",
            panic_message(&*panic)
        ))),
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        Context {
            trace: crate::trace::Trace::root(),
            word: Word::parse("hello").expect("valid"),
            correlation_id: Some("c1".into()),
            deadline: None,
            attempt: 1,
        }
    }

    fn ada() -> Json {
        Json::encode("Ada").expect("encodes")
    }

    fn typed<Q, R>(handler: impl Handler<Q, R>) -> impl DynHandler
    where
        Q: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
    {
        Typed::new(handler)
    }

    #[tokio::test]
    async fn the_greeter_greets_and_a_panic_becomes_a_transient_error_with_its_message() {
        assert_eq!(
            handle_contained(&typed(Greeter), &ada(), context(), None).await,
            Handled::Answer(Json::encode("hello Ada").expect("encodes"))
        );
        let panicking = |_: Name, _: Context| async move {
            if true {
                panic!("boom {}", 42);
            }
            Ok::<_, HandlerError>(String::new())
        };
        assert_eq!(
            handle_contained(&typed(panicking), &ada(), context(), None).await,
            Handled::Failed(HandlerError::transient("handler panicked: boom 42"))
        );
    }

    #[tokio::test]
    async fn a_handler_sees_its_context_and_can_fail_for_good() {
        let refusing = |name: Name, cx: Context| async move {
            Err::<String, _>(HandlerError::permanent(format!(
                "{name} on attempt {} of {:?}",
                cx.attempt, cx.correlation_id
            )))
        };
        assert_eq!(
            handle_contained(&typed(refusing), &ada(), context(), None).await,
            Handled::Failed(HandlerError::permanent("Ada on attempt 1 of Some(\"c1\")"))
        );
    }

    #[tokio::test]
    async fn a_handler_still_running_at_its_deadline_is_cancelled() {
        let stuck = |_: Name, _: Context| std::future::pending::<Result<String, HandlerError>>();
        let at = SystemTime::now() + Duration::from_millis(100);
        assert_eq!(
            handle_contained(&typed(stuck), &ada(), context(), Some(at)).await,
            Handled::TimedOut
        );
    }

    #[tokio::test]
    async fn a_request_that_does_not_decode_as_the_handlers_type_is_invalid() {
        let invalid = Json::encode(&5).expect("encodes");
        assert_eq!(
            handle_contained(&typed(Greeter), &invalid, context(), None).await,
            Handled::Invalid("invalid type: integer `5`, expected a string".to_owned())
        );
        let empty = Json::encode("").expect("encodes");
        assert_eq!(
            handle_contained(&typed(Greeter), &empty, context(), None).await,
            Handled::Invalid("name is empty".to_owned())
        );
    }
}
