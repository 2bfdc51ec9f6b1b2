//! How results are shown: greetings on stdout (text or JSON lines), problems
//! on stderr, one name at a time in input order; in JSON, one summary object
//! after the last name.

use crate::dead_letters::text::printable;
use std::{io, time::Duration};

use rabbit_gather::{
    protocol::{Name, Outcome},
    rpc::Gathered,
};
use serde_json::{Map, Value, json};

use crate::summary::Summary;

/// Output format of stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One greeting per line.
    Text,
    /// One JSON object per name, then one `{"summary":{...}}` object.
    Json,
}

/// What each name of a run waits for.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The consumers' words, in output order.
    pub words: &'a [String],
    /// The deadline of each name.
    pub timeout: Duration,
    /// Those of `words` with no consumer attached to their queue at the
    /// start of the run (see [`crate::attached`]): their missing replies
    /// say so.
    pub unattached: &'a [String],
}

/// Writes the result for one name: to `out` what the user asked for, to `err`
/// what went wrong (missing consumers, error replies).
///
/// # Errors
/// Only I/O errors of `out` or `err`.
pub fn write_result(
    out: &mut impl io::Write,
    err: &mut impl io::Write,
    format: Format,
    name: &Name,
    expected: &Expected<'_>,
    gathered: &Gathered<String>,
) -> io::Result<()> {
    let expect = expected.words;
    // Expected consumers first, in `expect` order, then any others in arrival order.
    let ordered = expect
        .iter()
        .filter_map(|word| gathered.replies.iter().find(|r| r.consumer == *word))
        .chain(
            gathered
                .replies
                .iter()
                .filter(|r| !expect.contains(&r.consumer)),
        );
    if !gathered.is_complete() {
        // stdout may be buffered: what it holds of earlier names goes
        // first, so that a terminal shows stdout and stderr in order.
        out.flush()?;
    }
    for reply in ordered.clone() {
        if let Outcome::Error { code, message } = &reply.outcome {
            writeln!(
                err,
                "producer: {} refused {:?}: {}: {}",
                printable(&reply.consumer),
                name.as_str(),
                printable(code),
                printable(message)
            )?;
        }
    }
    for word in &gathered.missing {
        let hint = if expected.unattached.contains(word) {
            format!(" (no {word} consumer was attached at the start)")
        } else {
            String::new()
        };
        writeln!(
            err,
            "producer: no reply from {word} for {:?} within {}{hint}",
            name.as_str(),
            humanize(expected.timeout)
        )?;
    }
    match format {
        Format::Text => {
            for reply in ordered {
                if let Outcome::Ok(greeting) = &reply.outcome {
                    // Two plain writes: the formatting machinery of
                    // `writeln!` was a tenth of the producer's work per name.
                    out.write_all(printable(greeting).as_bytes())?;
                    out.write_all(b"\n")?;
                }
            }
        }
        Format::Json => {
            let mut replies = Map::new();
            let mut errors = Map::new();
            for reply in ordered {
                match &reply.outcome {
                    Outcome::Ok(g) => {
                        replies.insert(reply.consumer.clone(), Value::from(g.as_str()));
                    }
                    Outcome::Error { code, message } => {
                        errors.insert(
                            reply.consumer.clone(),
                            json!({ "code": code, "message": message }),
                        );
                    }
                }
            }
            let line = json!({
                "name": name.as_str(),
                "replies": replies,
                "missing": gathered.missing,
                "errors": errors,
            });
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// Writes the result for a name the broker refused (nacked): a request
/// queue is full (`x-max-length` with `overflow = reject-publish`). In JSON,
/// the name's object has `"overloaded": true` and every expected consumer
/// missing.
///
/// # Errors
/// Only I/O errors of `out` or `err`.
pub fn write_overloaded(
    out: &mut impl io::Write,
    err: &mut impl io::Write,
    format: Format,
    name: &Name,
    expect: &[String],
) -> io::Result<()> {
    // As in `write_result`: earlier names' lines first.
    out.flush()?;
    writeln!(
        err,
        "producer: overloaded: the broker refused the request for {:?} (a consumer's queue is \
         full, or between two leaders); consumers whose queue took it may still handle it",
        name.as_str()
    )?;
    if format == Format::Json {
        let line = json!({
            "name": name.as_str(),
            "overloaded": true,
            "replies": {},
            "missing": expect,
            "errors": {},
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Writes the last line of [`Format::Json`] output: [`summary_json`].
/// Text output has no summary (its lines are greetings only).
///
/// # Errors
/// Only I/O errors of `out`.
pub fn write_summary(
    out: &mut impl io::Write,
    format: Format,
    summary: &Summary,
) -> io::Result<()> {
    match format {
        Format::Text => Ok(()),
        Format::Json => writeln!(out, "{}", summary_json(summary)),
    }
}

/// The summary as one JSON object under the single key `summary`, so that it
/// never looks like a per-name object (which always has `name`):
///
/// ```json
/// {"summary":{"sent":2,"complete":1,"incomplete":1,"invalid":0,"error_replies":0,
///  "retries":0,"stray_replies":0,"duplicate_replies":0,
///  "latency_ms":{"p50":1.342,"p90":500.991,"p99":500.991,"max":500.991}}}
/// ```
///
/// `latency_ms` is `null` when no name was sent (nothing was timed), never
/// zeros; its figures are milliseconds to the microsecond.
#[must_use]
pub fn summary_json(summary: &Summary) -> Value {
    let latency = summary.latency.map(|l| {
        json!({
            "p50": millis(l.p50),
            "p90": millis(l.p90),
            "p99": millis(l.p99),
            "max": millis(l.max),
        })
    });
    json!({
        "summary": {
            "sent": summary.sent,
            "complete": summary.complete,
            "incomplete": summary.incomplete,
            "invalid": summary.invalid,
            "error_replies": summary.error_replies,
            "overloaded": summary.overloaded,
            "retries": summary.stats.retries,
            "stray_replies": summary.stats.stray,
            "duplicate_replies": summary.stats.duplicates,
            "latency_ms": latency,
        }
    })
}

/// `d` in milliseconds, to the microsecond: `1.234` for 1234 µs.
#[must_use]
pub fn millis(d: Duration) -> f64 {
    // From whole microseconds, not `as_secs_f64() * 1000.0`, whose binary
    // rounding would print 1.2340000000000002.
    d.as_micros() as f64 / 1000.0
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn consumer_text_reaches_the_terminal_with_what_does_not_print_escaped() {
        use crate::dead_letters::text::printable;
        assert_eq!(printable("hello Zoë \\o/"), "hello Zoë \\o/");
        assert_eq!(
            printable("hello \u{1b}[2J\rAda\nhello Eve\u{202e}"),
            "hello \\u{1b}[2J\\u{d}Ada\\u{a}hello Eve\\u{202e}"
        );
    }

    use rabbit_gather::protocol::Reply;

    use super::*;

    fn reply(consumer: &str, outcome: Outcome<String>) -> Reply<String> {
        Reply {
            consumer: consumer.into(),
            outcome,
        }
    }

    fn render(format: Format, gathered: &Gathered<String>) -> (String, String) {
        render_with(format, gathered, &[])
    }

    fn render_with(
        format: Format,
        gathered: &Gathered<String>,
        unattached: &[String],
    ) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let expect = ["hello".to_owned(), "goodbye".to_owned()];
        let name = Name::parse("Ada").expect("valid");
        let expected = Expected {
            words: &expect,
            timeout: Duration::from_millis(2500),
            unattached,
        };
        write_result(&mut out, &mut err, format, &name, &expected, gathered).expect("write to Vec");
        (
            String::from_utf8(out).expect("utf8"),
            String::from_utf8(err).expect("utf8"),
        )
    }

    fn scrambled() -> Gathered<String> {
        Gathered {
            replies: vec![
                reply("bonjour", Outcome::Ok("bonjour Ada".into())),
                reply("goodbye", Outcome::Ok("goodbye Ada".into())),
                reply("hello", Outcome::Ok("hello Ada".into())),
            ],
            missing: vec![],
            duplicates: 0,
        }
    }

    #[test]
    fn text_follows_expect_order_then_extras() {
        let (out, err) = render(Format::Text, &scrambled());
        assert_eq!(out, "hello Ada\ngoodbye Ada\nbonjour Ada\n");
        assert_eq!(err, "");
    }

    #[test]
    fn missing_and_refusals_go_to_stderr() {
        let g = Gathered {
            replies: vec![reply(
                "hello",
                Outcome::Error {
                    code: "invalid_request".into(),
                    message: "nope".into(),
                },
            )],
            missing: vec!["goodbye".into()],
            duplicates: 0,
        };
        let (out, err) = render(Format::Text, &g);
        assert_eq!(out, "");
        assert_eq!(
            err,
            "producer: hello refused \"Ada\": invalid_request: nope\n\
             producer: no reply from goodbye for \"Ada\" within 2500ms\n"
        );
    }

    #[test]
    fn a_missing_reply_from_a_word_with_no_consumer_attached_says_so() {
        let g = Gathered {
            replies: vec![reply("hello", Outcome::Ok("hello Ada".into()))],
            missing: vec!["goodbye".into()],
            duplicates: 0,
        };
        let (out, err) = render_with(Format::Text, &g, &["goodbye".to_owned()]);
        assert_eq!(out, "hello Ada\n");
        assert_eq!(
            err,
            "producer: no reply from goodbye for \"Ada\" within 2500ms \
             (no goodbye consumer was attached at the start)\n"
        );
    }

    #[test]
    fn millis_keep_microseconds_without_binary_noise() {
        assert_eq!(millis(Duration::from_micros(1234)).to_string(), "1.234");
        assert_eq!(
            millis(Duration::from_micros(500_991)).to_string(),
            "500.991"
        );
        assert_eq!(millis(Duration::from_nanos(1999)).to_string(), "0.001");
        assert_eq!(millis(Duration::ZERO).to_string(), "0");
    }

    fn summary(latency: Option<crate::latency::Latency>) -> Summary {
        Summary {
            sent: 3,
            complete: 1,
            incomplete: 2,
            error_replies: 1,
            invalid: 4,
            overloaded: 8,
            interrupted: true,
            latency,
            stats: rabbit_gather::rpc::Stats {
                retries: 5,
                stray: 6,
                duplicates: 7,
                ..Default::default()
            },
        }
    }

    fn rendered_summary(summary: &Summary) -> String {
        let mut out = Vec::new();
        write_summary(&mut out, Format::Json, summary).expect("write to Vec");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn json_summary_is_one_line_with_every_figure_in_order() {
        let ms = Duration::from_micros;
        let latency = crate::latency::Latency {
            p50: ms(1_342),
            p90: ms(2_000),
            p99: ms(500_991),
            max: ms(501_000),
        };
        assert_eq!(
            rendered_summary(&summary(Some(latency))),
            concat!(
                r#"{"summary":{"sent":3,"complete":1,"incomplete":2,"invalid":4,"#,
                r#""error_replies":1,"overloaded":8,"retries":5,"stray_replies":6,"duplicate_replies":7,"#,
                r#""latency_ms":{"p50":1.342,"p90":2.0,"p99":500.991,"max":501.0}}}"#,
                "\n"
            )
        );
    }

    #[test]
    fn json_summary_latency_is_null_when_nothing_was_timed() {
        let line = rendered_summary(&summary(None));
        let value: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(value["summary"]["latency_ms"], Value::Null);
        assert_eq!(value["summary"]["sent"], 3);
    }

    #[test]
    fn text_output_has_no_summary() {
        let mut out = Vec::new();
        write_summary(&mut out, Format::Text, &summary(None)).expect("write to Vec");
        assert!(out.is_empty());
    }

    #[test]
    fn json_has_name_replies_missing_and_errors() {
        let (out, _) = render(Format::Json, &scrambled());
        assert_eq!(
            out,
            "{\"name\":\"Ada\",\"replies\":{\"hello\":\"hello Ada\",\"goodbye\":\"goodbye Ada\",\"bonjour\":\"bonjour Ada\"},\"missing\":[],\"errors\":{}}\n"
        );
    }
}
