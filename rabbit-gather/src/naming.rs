//! What may go into an exchange or queue name: a responder's [`Word`] and a
//! route's prefix. Settings validate with these, and the topology builds its
//! names from them.

use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;

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
