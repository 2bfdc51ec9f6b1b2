//! An error as the one line a user reads: the error and its causes,
//! `: `-separated, each said once.
//!
//! lapin's errors repeat their source in their own message (`protocol error:
//! AMQP soft error: ACCESS-REFUSED: ...` caused by `AMQP soft error:
//! ACCESS-REFUSED: ...`), so anyhow's `{:#}` would print the cause twice.

use std::error::Error;

/// `error` and its chain of sources on one line, skipping a cause whose text
/// is already contained in the one before it (or is empty).
#[must_use]
pub fn one_line(error: &(dyn Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut previous = line.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !previous.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        previous = text;
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Link {
        text: &'static str,
        #[source]
        source: Option<Box<Link>>,
    }

    fn chain(texts: &[&'static str]) -> Link {
        texts
            .iter()
            .rev()
            .fold(None, |source, text| {
                Some(Link {
                    text,
                    source: source.map(Box::new),
                })
            })
            .expect("at least one link")
    }

    #[test]
    fn a_cause_already_in_the_message_before_it_is_said_once() {
        let error = chain(&[
            "cannot connect to amqp://guest:***@127.0.0.1:5672/%2F",
            "protocol error: AMQP soft error: ACCESS-REFUSED: ACCESS_REFUSED - Login was refused",
            "AMQP soft error: ACCESS-REFUSED: ACCESS_REFUSED - Login was refused",
        ]);
        assert_eq!(
            one_line(&error),
            "cannot connect to amqp://guest:***@127.0.0.1:5672/%2F: \
             protocol error: AMQP soft error: ACCESS-REFUSED: ACCESS_REFUSED - Login was refused"
        );
    }

    #[test]
    fn distinct_causes_are_all_kept_in_order() {
        let error = chain(&["cannot write output", "", "Broken pipe (os error 32)"]);
        assert_eq!(
            one_line(&error),
            "cannot write output: Broken pipe (os error 32)"
        );
        assert_eq!(one_line(&chain(&["alone"])), "alone");
    }
}
