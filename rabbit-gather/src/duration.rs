//! Human-friendly durations for flags and config: `5`, `2.5`, `500ms`, `5s`, `1m`.
//!
//! A bare number means seconds (the unit people type for an RPC timeout);
//! anything with a unit goes through `humantime`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// A duration string that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (examples: 5, 2.5, 500ms, 5s, 1m)")]
pub struct DurationError {
    input: String,
    reason: String,
}

/// Parses `5` and `2.5` as seconds, and `500ms`, `5s`, `1m 30s` with units.
///
/// # Errors
/// Returns [`DurationError`] for empty, negative, non-finite or malformed input.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let trimmed = input.trim();
    let error = |reason: &str| DurationError {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    if trimmed.is_empty() {
        return Err(error("empty"));
    }
    if trimmed.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && trimmed.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        let seconds: f64 = trimmed.parse().map_err(|_| error("not a number"))?;
        return from_secs(seconds).ok_or_else(|| error("out of range"));
    }
    humantime::parse_duration(trimmed).map_err(|e| error(&e.to_string()))
}

/// Writes a duration the way [`parse`] reads it back: `5s`, `1h`,
/// `1m 30s`, `7days`. For help texts that show a default.
#[must_use]
pub fn format(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

fn from_secs(seconds: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(seconds).ok()
}

/// Serde helper: accepts a string (see [`parse`]) or a number of seconds.
///
/// # Errors
/// Fails deserialization with the message of [`DurationError`].
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Float(f64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Int(secs) => Ok(Duration::from_secs(secs)),
        Raw::Float(secs) => {
            from_secs(secs).ok_or_else(|| de::Error::custom(format!("invalid duration {secs}")))
        }
        Raw::Text(text) => parse(&text).map_err(de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_numbers_are_seconds() {
        assert_eq!(parse("5").ok(), Some(Duration::from_secs(5)));
        assert_eq!(parse("2.5").ok(), Some(Duration::from_millis(2500)));
        assert_eq!(parse(" 0.25 ").ok(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn units_are_understood() {
        assert_eq!(parse("500ms").ok(), Some(Duration::from_millis(500)));
        assert_eq!(parse("5s").ok(), Some(Duration::from_secs(5)));
        assert_eq!(parse("1m 30s").ok(), Some(Duration::from_secs(90)));
    }

    #[test]
    fn formatted_durations_parse_back_to_themselves() {
        for duration in [
            Duration::from_secs(5),
            Duration::from_millis(2500),
            Duration::from_secs(7 * 24 * 3600),
            Duration::from_nanos(1),
        ] {
            assert_eq!(parse(&format(duration)).ok(), Some(duration));
        }
    }

    #[test]
    fn garbage_is_rejected_with_the_input_in_the_message() {
        for bad in ["", "  ", "-1", "abc", "5 parsecs", "1.2.3", "1e400"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.to_string().contains("invalid duration"), "{err}");
        }
    }
}
