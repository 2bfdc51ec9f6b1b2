//! What a consumer does with a valid name. The default [`Greeter`] answers
//! `W NAME`; embedders and tests plug in their own [`Handler`], an async
//! function of the name and a [`Context`] (deadline, correlation id, attempt),
//! so a handler that calls a database or another service never blocks the
//! runtime. A handler that fails says whether retrying may help
//! ([`HandlerError::transient`]) or not ([`HandlerError::permanent`]); one
//! that panics is contained and counts as a transient failure.

use std::{
    any::Any,
    panic::AssertUnwindSafe,
    time::{Duration, SystemTime},
};

use futures::{FutureExt, future::BoxFuture};

use crate::{protocol::Name, topology::Word};

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

/// Turns a valid name into the consumer's greeting.
///
/// Implement it with an `async fn`, or pass a closure
/// `|name: Name, cx: Context| async move { ... }`.
pub trait Handler: Send + Sync + 'static {
    /// The greeting for `name`.
    ///
    /// # Errors
    /// [`HandlerError`]: transient failures are retried after a growing
    /// delay, permanent ones dead-lettered at once.
    fn handle(
        &self,
        name: Name,
        context: Context,
    ) -> impl Future<Output = Result<String, HandlerError>> + Send;
}

/// The default handler: `hello Ada`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Greeter;

impl Handler for Greeter {
    async fn handle(&self, name: Name, context: Context) -> Result<String, HandlerError> {
        Ok(format!("{} {name}", context.word))
    }
}

impl<F, Fut> Handler for F
where
    F: Fn(Name, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, HandlerError>> + Send,
{
    fn handle(
        &self,
        name: Name,
        context: Context,
    ) -> impl Future<Output = Result<String, HandlerError>> + Send {
        self(name, context)
    }
}

/// [`Handler`] made object-safe, so the service can hold any handler.
pub(crate) trait DynHandler: Send + Sync {
    fn handle_boxed(
        &self,
        name: Name,
        context: Context,
    ) -> BoxFuture<'_, Result<String, HandlerError>>;
}

impl<H: Handler> DynHandler for H {
    fn handle_boxed(
        &self,
        name: Name,
        context: Context,
    ) -> BoxFuture<'_, Result<String, HandlerError>> {
        Box::pin(self.handle(name, context))
    }
}

/// How one handler run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Handled {
    /// The greeting.
    Greeting(String),
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
    name: Name,
    context: Context,
    cancel_at: Option<SystemTime>,
) -> Handled {
    let run = AssertUnwindSafe(handler.handle_boxed(name, context)).catch_unwind();
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
        Ok(Ok(greeting)) => Handled::Greeting(greeting),
        Ok(Err(error)) => Handled::Failed(error),
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

    fn ada() -> Name {
        Name::parse("Ada").expect("valid")
    }

    #[tokio::test]
    async fn the_greeter_greets_and_a_panic_becomes_a_transient_error_with_its_message() {
        assert_eq!(
            handle_contained(&Greeter, ada(), context(), None).await,
            Handled::Greeting("hello Ada".into())
        );
        let panicking = |_: Name, _: Context| async move {
            if true {
                panic!("boom {}", 42);
            }
            Ok::<_, HandlerError>(String::new())
        };
        assert_eq!(
            handle_contained(&panicking, ada(), context(), None).await,
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
            handle_contained(&refusing, ada(), context(), None).await,
            Handled::Failed(HandlerError::permanent("Ada on attempt 1 of Some(\"c1\")"))
        );
    }

    #[tokio::test]
    async fn a_handler_still_running_at_its_deadline_is_cancelled() {
        let stuck = |_: Name, _: Context| std::future::pending::<Result<String, HandlerError>>();
        let at = SystemTime::now() + Duration::from_millis(100);
        assert_eq!(
            handle_contained(&stuck, ada(), context(), Some(at)).await,
            Handled::TimedOut
        );
    }
}
