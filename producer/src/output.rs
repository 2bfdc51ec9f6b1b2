//! How results are shown: greetings on stdout (text or JSON lines), problems
//! on stderr, one name at a time in input order.

use std::{io, time::Duration};

use common::{
    protocol::{Name, Outcome},
    rpc::Gathered,
};
use serde_json::{Map, Value, json};

/// Output format of stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One greeting per line.
    Text,
    /// One JSON object per name.
    Json,
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
    expect: &[String],
    timeout: Duration,
    gathered: &Gathered,
) -> io::Result<()> {
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
    for reply in ordered.clone() {
        if let Outcome::Error { code, message } = &reply.outcome {
            writeln!(
                err,
                "producer: {} refused {:?}: {code}: {message}",
                reply.consumer,
                name.as_str()
            )?;
        }
    }
    for word in &gathered.missing {
        writeln!(
            err,
            "producer: no reply from {word} for {:?} within {}",
            name.as_str(),
            humanize(timeout)
        )?;
    }
    match format {
        Format::Text => {
            for reply in ordered {
                if let Outcome::Greeting(greeting) = &reply.outcome {
                    writeln!(out, "{greeting}")?;
                }
            }
        }
        Format::Json => {
            let mut replies = Map::new();
            let mut errors = Map::new();
            for reply in ordered {
                match &reply.outcome {
                    Outcome::Greeting(g) => {
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

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use common::protocol::Reply;

    use super::*;

    fn reply(consumer: &str, outcome: Outcome) -> Reply {
        Reply {
            consumer: consumer.into(),
            outcome,
        }
    }

    fn render(format: Format, gathered: &Gathered) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let expect = ["hello".to_owned(), "goodbye".to_owned()];
        let name = Name::parse("Ada").expect("valid");
        write_result(
            &mut out,
            &mut err,
            format,
            &name,
            &expect,
            Duration::from_millis(2500),
            gathered,
        )
        .expect("write to Vec");
        (
            String::from_utf8(out).expect("utf8"),
            String::from_utf8(err).expect("utf8"),
        )
    }

    fn scrambled() -> Gathered {
        Gathered {
            replies: vec![
                reply("bonjour", Outcome::Greeting("bonjour Ada".into())),
                reply("goodbye", Outcome::Greeting("goodbye Ada".into())),
                reply("hello", Outcome::Greeting("hello Ada".into())),
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
    fn json_has_name_replies_missing_and_errors() {
        let (out, _) = render(Format::Json, &scrambled());
        assert_eq!(
            out,
            "{\"name\":\"Ada\",\"replies\":{\"hello\":\"hello Ada\",\"goodbye\":\"goodbye Ada\",\"bonjour\":\"bonjour Ada\"},\"missing\":[],\"errors\":{}}\n"
        );
    }
}
