//! What a consumer does with a valid name. The default [`Greeter`] answers
//! `W NAME`; tests and embedders plug in their own [`Handler`]. A handler that
//! panics or fails is contained: the service counts the failure and goes on.

use std::{
    any::Any,
    panic::{AssertUnwindSafe, catch_unwind},
};

use crate::{protocol::Name, topology::Word};

/// A handler's refusal, reported as an `internal_error` reply if it persists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

/// Turns a valid name into the consumer's greeting.
pub trait Handler: Send + Sync + 'static {
    /// The greeting for `name`.
    ///
    /// # Errors
    /// [`HandlerError`] when this name cannot be handled now; the request is
    /// retried and dead-lettered after `consumer.max_failures` attempts.
    fn handle(&self, word: &Word, name: &Name) -> Result<String, HandlerError>;
}

/// The default handler: `hello Ada`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Greeter;

impl Handler for Greeter {
    fn handle(&self, word: &Word, name: &Name) -> Result<String, HandlerError> {
        Ok(format!("{word} {name}"))
    }
}

impl<F> Handler for F
where
    F: Fn(&Word, &Name) -> Result<String, HandlerError> + Send + Sync + 'static,
{
    fn handle(&self, word: &Word, name: &Name) -> Result<String, HandlerError> {
        self(word, name)
    }
}

/// Runs `handler`, turning a panic into a [`HandlerError`] so that one bad
/// message never takes the service down.
pub(crate) fn handle_contained(
    handler: &dyn Handler,
    word: &Word,
    name: &Name,
) -> Result<String, HandlerError> {
    catch_unwind(AssertUnwindSafe(|| handler.handle(word, name))).unwrap_or_else(|panic| {
        Err(HandlerError(format!(
            "handler panicked: {}",
            panic_message(&*panic)
        )))
    })
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

    #[test]
    fn a_panicking_handler_becomes_an_error_with_its_message() {
        let word = Word::parse("hello").expect("valid");
        let name = Name::parse("Ada").expect("valid");
        let panicking =
            |_: &Word, _: &Name| -> Result<String, HandlerError> { panic!("boom {}", 42) };
        assert_eq!(
            handle_contained(&panicking, &word, &name),
            Err(HandlerError("handler panicked: boom 42".into()))
        );
        assert_eq!(
            handle_contained(&Greeter, &word, &name),
            Ok("hello Ada".into())
        );
    }
}
