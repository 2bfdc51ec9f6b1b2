//! Where names come from: the command line (validated all at once, before
//! anything is sent) or stdin (streamed line by line, in bounded memory).

use std::pin::Pin;

use common::protocol::{Name, NameError};
use futures::{Stream, StreamExt, stream};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One input line that cannot be sent, with its position.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The name breaks a rule of the contract.
    #[error("{at}: invalid name {text:?}: {error}")]
    InvalidName {
        /// `argument 2` or `line 7`.
        at: String,
        /// The offending text.
        text: String,
        /// The rule it breaks.
        error: NameError,
    },
    /// A stdin line that is not UTF-8.
    #[error("line {line}: not valid UTF-8")]
    NotUtf8 {
        /// 1-based line number.
        line: u64,
    },
}

/// An item of the input stream: a name to send, or a line to report and skip.
pub type InputItem = Result<Name, InputError>;

/// A stream of names in input order.
pub type Names = Pin<Box<dyn Stream<Item = InputItem> + Send>>;

/// Validates every command-line name; all problems are reported together.
///
/// # Errors
/// Every invalid argument, in order.
pub fn from_args(args: &[String]) -> Result<Vec<Name>, Vec<InputError>> {
    let mut names = Vec::with_capacity(args.len());
    let mut errors = Vec::new();
    for (i, text) in args.iter().enumerate() {
        match Name::parse(text) {
            Ok(name) => names.push(name),
            Err(error) => errors.push(InputError::InvalidName {
                at: format!("argument {}", i + 1),
                text: text.clone(),
                error,
            }),
        }
    }
    if errors.is_empty() {
        Ok(names)
    } else {
        Err(errors)
    }
}

/// Streams one name per line from `reader`. A trailing `\r` is removed and
/// empty lines are skipped; a bad line becomes an `Err` item and reading goes
/// on. A read error ends the stream (and is logged).
pub fn from_lines<R: AsyncBufRead + Unpin + Send + 'static>(reader: R) -> Names {
    let segments = reader.split(b'\n');
    stream::unfold((segments, 0_u64), |(mut segments, mut line)| async move {
        loop {
            let segment = match segments.next_segment().await {
                Ok(Some(segment)) => segment,
                Ok(None) => return None,
                Err(error) => {
                    tracing::error!(%error, "cannot read names from stdin");
                    return None;
                }
            };
            line += 1;
            let bytes = segment.strip_suffix(b"\r").unwrap_or(&segment);
            if bytes.is_empty() {
                continue;
            }
            let item = match std::str::from_utf8(bytes) {
                Err(_) => Err(InputError::NotUtf8 { line }),
                Ok(text) => Name::parse(text).map_err(|error| InputError::InvalidName {
                    at: format!("line {line}"),
                    text: text.to_owned(),
                    error,
                }),
            };
            return Some((item, (segments, line)));
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_streamed_with_bad_ones_reported_in_place() {
        let input: &[u8] = b"Ada\r\n\nBob\n   \n\xff\xfe\nZo\xc3\xab";
        let items: Vec<InputItem> = from_lines(input).collect().await;
        let shown: Vec<String> = items
            .iter()
            .map(|i| match i {
                Ok(name) => name.to_string(),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "Ada",
                "Bob",
                "line 4: invalid name \"   \": name is only whitespace",
                "line 5: not valid UTF-8",
                "Zoë",
            ]
        );
    }

    #[test]
    fn every_bad_argument_is_reported() {
        let args = ["Ada".to_owned(), String::new(), "x".repeat(101)];
        let errors = from_args(&args).expect_err("two are bad");
        assert_eq!(errors.len(), 2);
        assert!(errors[0].to_string().starts_with("argument 2: "));
        assert!(errors[1].to_string().contains("101 characters"));
    }
}
