//! What one dead letter says about itself: why and where it died, how often,
//! how long ago, and a preview of its body.
//!
//! Everything here comes from untrusted bytes: the body and most headers are
//! whatever the requester sent (a consumer copies a request's headers onto
//! the dead letter it publishes, and the broker keeps them when it
//! dead-letters), so a printed field is escaped before it reaches a terminal
//! and a body is cut to a preview.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable},
};
use rabbit_gather::protocol::names::{FAILURES_HEADER, QUEUE_HEADER, REASON_HEADER};
use serde::Serialize;

use super::text::{compact, escaped, preview};

/// RabbitMQ's dead-lettering history (its name, not one of the contract's):
/// one entry per (queue, reason), newest first, each with a `count` and the
/// `time` of the death.
pub(crate) const X_DEATH: &str = "x-death";

/// Characters of body shown on a text line.
const TEXT_BODY_CHARS: usize = 80;
/// Characters of body kept in a JSON line.
const JSON_BODY_CHARS: usize = 1024;

/// One dead letter as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Letter {
    /// The request's `correlation_id`.
    pub correlation_id: Option<String>,
    /// The request's `message_id`.
    pub message_id: Option<String>,
    /// The request's `reply_to`.
    pub reply_to: Option<String>,
    /// Why it was dead-lettered.
    pub reason: Option<String>,
    /// Where [`reason`](Self::reason) and [`queue`](Self::queue) come from:
    /// `x-greetings-reason` (a consumer published the letter itself) or
    /// `x-death` (the broker dead-lettered a rejected request).
    pub reason_from: Option<&'static str>,
    /// The queue it was dead-lettered from.
    pub queue: Option<String>,
    /// Times the broker dead-lettered it: the `x-death` counts summed (the
    /// delays a consumer's retries waited out included), 1 when it has none.
    pub deaths: u64,
    /// The consumer's failed-attempt count (`x-greetings-failures`) when the
    /// request had been retried.
    pub failures: Option<u64>,
    /// Seconds since [`age_from`](Self::age_from).
    pub age_seconds: Option<u64>,
    /// `x-death` (the newest broker death's `time`) or `timestamp` (when the
    /// request was sent).
    pub age_from: Option<&'static str>,
    /// Whether the broker marked it redelivered (e.g. listed before).
    pub redelivered: bool,
    /// The body as text (invalid UTF-8 replaced by U+FFFD), at most
    /// 1024 characters.
    pub body: String,
    /// Size of the whole body.
    pub body_bytes: usize,
    /// Whether the whole body is valid UTF-8.
    pub body_utf8: bool,
    /// Whether [`body`](Self::body) is cut short.
    pub body_truncated: bool,
}

impl Letter {
    /// Reads a letter's properties and body, its ages counted up to `now`.
    #[must_use]
    pub fn read(
        properties: &BasicProperties,
        body: &[u8],
        redelivered: bool,
        now: SystemTime,
    ) -> Self {
        let headers = properties.headers().as_ref();
        let death = headers.and_then(newest_death);
        let service_reason = headers.and_then(|h| text(h.inner().get(REASON_HEADER)?));
        let service_queue = headers.and_then(|h| text(h.inner().get(QUEUE_HEADER)?));
        let by_service = service_reason.is_some();
        let (reason, reason_from) = match (service_reason, &death) {
            (Some(reason), _) => (Some(reason), Some(REASON_HEADER)),
            (None, Some(death)) => (death.reason.clone(), Some(X_DEATH)),
            (None, None) => (None, None),
        };
        let queue = service_queue.or_else(|| death.as_ref()?.queue.clone());
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let death_time = death.as_ref().and_then(|d| d.time);
        let sent = *properties.timestamp();
        // A consumer's own letter may carry x-death entries from the delays
        // its retries waited out: they date an earlier hop, not this death,
        // so such a letter is dated by when it was sent.
        let (age_seconds, age_from) = match (death_time, sent) {
            (Some(time), _) if !by_service => (Some(now.saturating_sub(time)), Some(X_DEATH)),
            (_, Some(sent)) => (Some(now.saturating_sub(sent)), Some("timestamp")),
            (Some(time), None) => (Some(now.saturating_sub(time)), Some(X_DEATH)),
            (None, None) => (None, None),
        };
        let (preview, body_truncated) = preview(body, JSON_BODY_CHARS);
        Self {
            correlation_id: short(properties.correlation_id()),
            message_id: short(properties.message_id()),
            reply_to: short(properties.reply_to()),
            reason,
            reason_from,
            queue,
            deaths: death.map_or(1, |d| d.total),
            failures: headers.and_then(|h| integer(h.inner().get(FAILURES_HEADER)?)),
            age_seconds,
            age_from,
            redelivered,
            body: preview,
            body_bytes: body.len(),
            body_utf8: std::str::from_utf8(body).is_ok(),
            body_truncated,
        }
    }

    /// One line for a terminal: `id=... queue=... deaths=N age=12s(x-death)
    /// reason="..." body=...`, every field escaped, `-` for a missing one.
    #[must_use]
    pub fn text_line(&self) -> String {
        let field = |value: &Option<String>| {
            value
                .as_deref()
                .map_or_else(|| "-".to_owned(), |v| escaped(v, true))
        };
        let age = match (self.age_seconds, self.age_from) {
            (Some(seconds), Some(from)) => format!("{}({from})", compact(seconds)),
            _ => "-".to_owned(),
        };
        let reason = self
            .reason
            .as_deref()
            .map_or_else(|| "-".to_owned(), |r| format!("\"{}\"", escaped(r, true)));
        let (shown, cut) = preview(self.body.as_bytes(), TEXT_BODY_CHARS);
        let mut body = escaped(&shown, false);
        if cut || self.body_truncated {
            body.push('…');
        }
        match (self.body_utf8, cut || self.body_truncated) {
            (false, _) => body.push_str(&format!(" (not UTF-8, {} bytes)", self.body_bytes)),
            (true, true) => body.push_str(&format!(" ({} bytes)", self.body_bytes)),
            (true, false) => {}
        }
        format!(
            "id={} queue={} deaths={} age={age} reason={reason} body={body}",
            field(&self.correlation_id),
            field(&self.queue),
            self.deaths,
        )
    }

    /// One JSON object on one line.
    #[must_use]
    pub fn json_line(&self) -> String {
        // Serialising strings, numbers and booleans cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The newest `x-death` entry's reason, queue and time, and all counts summed.
struct Death {
    reason: Option<String>,
    queue: Option<String>,
    time: Option<u64>,
    total: u64,
}

fn newest_death(headers: &FieldTable) -> Option<Death> {
    let AMQPValue::FieldArray(entries) = headers.inner().get(X_DEATH)? else {
        return None;
    };
    let entries: Vec<&FieldTable> = entries
        .as_slice()
        .iter()
        .filter_map(|entry| match entry {
            AMQPValue::FieldTable(table) => Some(table),
            _ => None,
        })
        .collect();
    let newest = entries.first()?;
    let get = |key: &str| newest.inner().get(key);
    Some(Death {
        reason: get("reason").and_then(text),
        queue: get("queue").and_then(text),
        time: get("time").and_then(integer),
        total: entries
            .iter()
            .map(|entry| entry.inner().get("count").and_then(integer).unwrap_or(1))
            .fold(0, u64::saturating_add),
    })
}

fn short(value: &Option<lapin::types::ShortString>) -> Option<String> {
    value.as_ref().map(ToString::to_string)
}

/// A text header, whichever string type the sender used.
fn text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// A non-negative integer header (or timestamp), whichever type the sender used.
fn integer(value: &AMQPValue) -> Option<u64> {
    match *value {
        AMQPValue::ShortShortUInt(n) => Some(u64::from(n)),
        AMQPValue::ShortUInt(n) => Some(u64::from(n)),
        AMQPValue::LongUInt(n) => Some(u64::from(n)),
        AMQPValue::Timestamp(n) => Some(n),
        AMQPValue::ShortShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::ShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(n).ok(),
        AMQPValue::LongLongInt(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lapin::types::{FieldArray, LongString};

    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn death(queue: &str, reason: &str, count: i64, time: u64) -> AMQPValue {
        let mut entry = FieldTable::default();
        entry.insert("queue".into(), AMQPValue::LongString(queue.into()));
        entry.insert("reason".into(), AMQPValue::LongString(reason.into()));
        entry.insert("count".into(), AMQPValue::LongLongInt(count));
        entry.insert("time".into(), AMQPValue::Timestamp(time));
        AMQPValue::FieldTable(entry)
    }

    fn with_deaths(deaths: Vec<AMQPValue>, mut headers: FieldTable) -> BasicProperties {
        headers.insert(
            X_DEATH.into(),
            AMQPValue::FieldArray(FieldArray::from(deaths)),
        );
        BasicProperties::default()
            .with_correlation_id("c-1".into())
            .with_headers(headers)
    }

    #[test]
    fn a_rejected_request_is_explained_by_the_brokers_newest_death() {
        let properties = with_deaths(
            vec![
                death("g.hello", "rejected", 1, NOW - 12),
                death("g.hello.retry", "expired", 2, NOW - 20),
            ],
            FieldTable::default(),
        )
        .with_timestamp(NOW - 300);
        let letter = Letter::read(&properties, br#"{"nam":1}"#, false, now());
        assert_eq!(letter.reason.as_deref(), Some("rejected"));
        assert_eq!(letter.reason_from, Some("x-death"));
        assert_eq!(letter.queue.as_deref(), Some("g.hello"));
        assert_eq!(letter.deaths, 3);
        assert_eq!(
            (letter.age_seconds, letter.age_from),
            (Some(12), Some("x-death"))
        );
        assert_eq!(
            letter.text_line(),
            r#"id=c-1 queue=g.hello deaths=3 age=12s(x-death) reason="rejected" body={"nam":1}"#
        );
    }

    #[test]
    fn a_consumers_own_letter_is_explained_by_its_headers_and_dated_by_its_timestamp() {
        let mut headers = FieldTable::default();
        headers.insert(
            REASON_HEADER.into(),
            AMQPValue::LongString("handler failed 2 times: down".into()),
        );
        headers.insert(QUEUE_HEADER.into(), AMQPValue::LongString("g.hello".into()));
        headers.insert(FAILURES_HEADER.into(), AMQPValue::LongLongInt(1));
        let properties = with_deaths(vec![death("g.hello.retry", "expired", 1, NOW - 5)], headers)
            .with_timestamp(NOW - 65);
        let letter = Letter::read(&properties, br#"{"name":"Ada"}"#, true, now());
        assert_eq!(
            letter.reason.as_deref(),
            Some("handler failed 2 times: down")
        );
        assert_eq!(letter.reason_from, Some("x-greetings-reason"));
        assert_eq!(letter.queue.as_deref(), Some("g.hello"));
        assert_eq!((letter.deaths, letter.failures), (1, Some(1)));
        assert_eq!(
            (letter.age_seconds, letter.age_from),
            (Some(65), Some("timestamp"))
        );
        assert!(
            letter.text_line().contains(" age=1m5s(timestamp) "),
            "{}",
            letter.text_line()
        );
    }

    #[test]
    fn a_letter_with_no_history_counts_one_death_and_shows_dashes() {
        let letter = Letter::read(&BasicProperties::default(), b"", false, now());
        assert_eq!(letter.deaths, 1);
        assert_eq!(
            letter.text_line(),
            "id=- queue=- deaths=1 age=- reason=- body="
        );
    }

    #[test]
    fn untrusted_text_cannot_drive_the_terminal_or_split_the_line() {
        let mut headers = FieldTable::default();
        headers.insert(
            REASON_HEADER.into(),
            AMQPValue::LongString("a\"b\nc\u{1b}[2J\u{202e}".into()),
        );
        let properties = BasicProperties::default()
            .with_correlation_id("id\u{7}".into())
            .with_headers(headers);
        let body = b"\xff\xfe\x1b[31mred\r\nZo\xc3\xab";
        let line = Letter::read(&properties, body, false, now()).text_line();
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        assert!(line.contains(r#"id=id\u{7} "#), "{line}");
        assert!(
            line.contains(r#"reason="a\"b\u{a}c\u{1b}[2J\u{202e}""#),
            "{line}"
        );
        assert!(
            line.ends_with(
                "body=\u{fffd}\u{fffd}\\u{1b}[31mred\\u{d}\\u{a}Zoë (not UTF-8, 16 bytes)"
            ),
            "{line}"
        );
    }

    #[test]
    fn long_bodies_are_cut_on_character_boundaries() {
        let body = "é".repeat(5000);
        let letter = Letter::read(&BasicProperties::default(), body.as_bytes(), false, now());
        assert_eq!(letter.body.chars().count(), JSON_BODY_CHARS);
        assert!(letter.body.chars().all(|c| c == 'é'));
        assert!(letter.body_truncated && letter.body_utf8);
        let line = letter.text_line();
        let shown = line.split("body=").nth(1).expect("body field");
        assert_eq!(
            shown,
            format!("{}… (10000 bytes)", "é".repeat(TEXT_BODY_CHARS))
        );
        let json: serde_json::Value = serde_json::from_str(&letter.json_line()).expect("JSON");
        assert_eq!(json["body_bytes"], 10000);
        assert_eq!(json["body_truncated"], true);
    }

    #[test]
    fn integer_headers_of_any_type_are_read_and_negative_ones_ignored() {
        assert_eq!(integer(&AMQPValue::ShortShortUInt(3)), Some(3));
        assert_eq!(integer(&AMQPValue::LongInt(7)), Some(7));
        assert_eq!(integer(&AMQPValue::LongLongInt(-1)), None);
        assert_eq!(integer(&AMQPValue::LongString(LongString::from("3"))), None);
    }
}
