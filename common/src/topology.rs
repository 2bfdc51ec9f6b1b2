//! Exchange and queue names derived from the configured prefix, and their
//! idempotent declaration (wire contract v1, point 2).
//!
//! ```text
//! <prefix>            fanout, durable   requests
//! <prefix>.<word>     durable queue     bound to <prefix>, x-dead-letter-exchange=<prefix>.dlx
//! <prefix>.dlx        fanout, durable   dead letters
//! <prefix>.dead       durable queue     bound to <prefix>.dlx
//! ```

use std::fmt;

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

/// A consumer's greeting word (`hello`, `goodbye`, `bonjour`): 1 to 64 ASCII
/// letters, digits, `-` or `_`, because it becomes part of a queue name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Word(String);

/// A greeting word that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid consumer word {0:?}: use 1-64 ASCII letters, digits, '-' or '_'")]
pub struct InvalidWord(String);

impl Word {
    /// Validates a word.
    ///
    /// # Errors
    /// [`InvalidWord`] when empty, too long or with other characters.
    pub fn parse(word: &str) -> Result<Self, InvalidWord> {
        let ok = !word.is_empty()
            && word.len() <= 64
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(word.to_owned()))
        } else {
            Err(InvalidWord(word.to_owned()))
        }
    }

    /// The word as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `prefix` can prefix exchange and queue names.
#[must_use]
pub fn is_valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 100
        && !prefix.starts_with("amq.")
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The names of every exchange and queue under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    /// Names under `prefix` (already validated by the settings).
    #[must_use]
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The fanout exchange requests are published to.
    #[must_use]
    pub fn exchange(&self) -> String {
        self.prefix.clone()
    }

    /// The queue owned by the consumers of `word`.
    #[must_use]
    pub fn queue(&self, word: &Word) -> String {
        format!("{}.{}", self.prefix, word)
    }

    /// The dead-letter exchange.
    #[must_use]
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.prefix)
    }

    /// The queue that keeps dead letters for inspection.
    #[must_use]
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// Declares the request exchange (what a producer needs).
    ///
    /// # Errors
    /// The broker's refusal, e.g. an existing exchange of another kind.
    pub async fn declare_exchange(&self, channel: &Channel) -> lapin::Result<()> {
        declare_fanout(channel, &self.exchange()).await
    }

    /// Declares everything a consumer of `word` uses: both exchanges, the dead
    /// letter queue, and the word's queue bound to the request exchange.
    /// Idempotent: every service runs it at start.
    ///
    /// # Errors
    /// The broker's refusal, e.g. a queue that exists with other arguments.
    pub async fn declare_for_consumer(&self, channel: &Channel, word: &Word) -> lapin::Result<()> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        self.declare_exchange(channel).await?;
        declare_fanout(channel, &self.dead_letter_exchange()).await?;
        channel
            .queue_declare(
                self.dead_letter_queue().into(),
                durable,
                FieldTable::default(),
            )
            .await?;
        bind(
            channel,
            &self.dead_letter_queue(),
            &self.dead_letter_exchange(),
        )
        .await?;

        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.dead_letter_exchange().into()),
        );
        channel
            .queue_declare(self.queue(word).into(), durable, arguments)
            .await?;
        bind(channel, &self.queue(word), &self.exchange()).await
    }
}

async fn declare_fanout(channel: &Channel, name: &str) -> lapin::Result<()> {
    channel
        .exchange_declare(
            name.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

async fn bind(channel: &Channel, queue: &str, exchange: &str) -> lapin::Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let t = Topology::new("greetings");
        let hello = Word::parse("hello").expect("valid");
        assert_eq!(t.exchange(), "greetings");
        assert_eq!(t.queue(&hello), "greetings.hello");
        assert_eq!(t.dead_letter_exchange(), "greetings.dlx");
        assert_eq!(t.dead_letter_queue(), "greetings.dead");
    }

    #[test]
    fn words_are_restricted_to_queue_safe_characters() {
        for ok in ["hello", "goodbye", "bonjour", "x", "a-b_c9"] {
            assert!(Word::parse(ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(65);
        for bad in ["", "hello world", "héllo", "a.b", "a/b", long.as_str()] {
            assert!(Word::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_cannot_use_reserved_or_odd_names() {
        assert!(is_valid_prefix("greetings"));
        assert!(is_valid_prefix("test.1234-abcd_x"));
        assert!(!is_valid_prefix(""));
        assert!(!is_valid_prefix("amq.greetings"));
        assert!(!is_valid_prefix("has space"));
    }
}
