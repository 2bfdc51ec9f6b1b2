//! Where names come from: the command line (validated all at once, before
//! anything is sent) or stdin (streamed line by line, in bounded memory).

use std::pin::Pin;

use futures::{Stream, StreamExt, stream};
use rabbit_gather::protocol::{Name, NameError};

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
    /// A stdin line longer than [`MAX_LINE_BYTES`]: no name is that long, and
    /// it is skipped without being held in memory.
    #[error("line {line}: longer than {MAX_LINE_BYTES} bytes, no name is that long")]
    TooLong {
        /// 1-based line number.
        line: u64,
    },
}

/// Longest stdin line read whole: a name is at most 100 characters of up to
/// 4 bytes each; longer lines are reported and skipped in bounded memory.
pub const MAX_LINE_BYTES: usize = 1024;

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

/// Names held between the reader thread and the calls: enough for a full
/// batch to be ready at once, small enough to bound memory.
const INPUT_QUEUE: usize = 4096;

/// Streams one name per line from `reader` (stdin, in the producer), read on
/// a thread of its own into a bounded queue: taking a line already read is
/// then a queue operation, so seeing whether more names wait (to fill a
/// batch) costs a name alone no wake-up of a blocking read. A trailing `\r`
/// is removed and empty lines are skipped; a bad line becomes an `Err` item
/// and reading goes on. The thread ends at end of input, on a read error
/// (logged) or once the stream is dropped and a line is read.
#[must_use]
pub fn from_reader<R: std::io::BufRead + Send + 'static>(mut reader: R) -> Names {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(INPUT_QUEUE);
    let thread = std::thread::Builder::new()
        .name("input".to_owned())
        .spawn(move || {
            let mut segment = Vec::with_capacity(128);
            let mut line = 0_u64;
            loop {
                segment.clear();
                let limit = u64::try_from(MAX_LINE_BYTES + 1).unwrap_or(u64::MAX);
                let read = std::io::BufRead::read_until(
                    &mut std::io::Read::take(&mut reader, limit),
                    b'\n',
                    &mut segment,
                );
                match read {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::error!(%error, "cannot read names from stdin");
                        return;
                    }
                }
                line += 1;
                let item = if segment.len() > MAX_LINE_BYTES && !segment.ends_with(b"\n") {
                    if let Err(error) = skip_line(&mut reader) {
                        tracing::error!(%error, "cannot read names from stdin");
                        return;
                    }
                    Some(Err(InputError::TooLong { line }))
                } else {
                    let bytes = segment.strip_suffix(b"\n").unwrap_or(&segment);
                    parse_line(bytes, line)
                };
                if let Some(item) = item
                    && sender.blocking_send(item).is_err()
                {
                    return;
                }
            }
        });
    if let Err(error) = thread {
        tracing::error!(%error, "cannot start the input reader thread");
        return stream::empty().boxed();
    }
    stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed()
}

/// Discards the rest of the current line (up to and including its `\n`)
/// from the reader's buffer, never holding more than one buffer of it.
fn skip_line<R: std::io::BufRead>(reader: &mut R) -> std::io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|&b| b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                return Ok(());
            }
            None => {
                let all = buffer.len();
                reader.consume(all);
            }
        }
    }
}

/// The item of input line number `line` (without its `\n`), or `None` for
/// an empty line.
fn parse_line(bytes: &[u8], line: u64) -> Option<InputItem> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    if bytes.is_empty() {
        return None;
    }
    Some(match std::str::from_utf8(bytes) {
        Err(_) => Err(InputError::NotUtf8 { line }),
        Ok(text) => Name::parse(text).map_err(|error| InputError::InvalidName {
            at: format!("line {line}"),
            text: text.to_owned(),
            error,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each item as the producer reports it: the name, or the error.
    fn shown(items: &[InputItem]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Ok(name) => name.to_string(),
                Err(e) => e.to_string(),
            })
            .collect()
    }

    #[tokio::test]
    async fn lines_are_streamed_with_bad_ones_reported_in_place() {
        let input: &[u8] = b"Ada\r\n\nBob\n   \n\xff\xfe\nZo\xc3\xab";
        let items: Vec<InputItem> = from_reader(input).collect().await;
        let shown = shown(&items);
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

    #[tokio::test]
    async fn an_overlong_line_is_reported_and_skipped_and_reading_goes_on() {
        let mut input = b"Ada\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 10 * MAX_LINE_BYTES));
        input.extend(b"\nBob\n");
        input.extend(std::iter::repeat_n(b'y', MAX_LINE_BYTES + 1));
        let items: Vec<InputItem> = from_reader(std::io::Cursor::new(input)).collect().await;
        let shown = shown(&items);
        assert_eq!(
            shown,
            [
                "Ada".to_owned(),
                format!("line 2: longer than {MAX_LINE_BYTES} bytes, no name is that long"),
                "Bob".to_owned(),
                format!("line 4: longer than {MAX_LINE_BYTES} bytes, no name is that long"),
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
