//! The one piece of user data in a request: a person's name.

use std::fmt;

/// Most Unicode characters (not bytes) a name may have.
pub const MAX_NAME_CHARS: usize = 100;

/// A validated name: 1 to 100 Unicode characters, not only whitespace, no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Zero characters.
    #[error("name is empty")]
    Empty,
    /// Only whitespace.
    #[error("name is only whitespace")]
    Blank,
    /// More than [`MAX_NAME_CHARS`] characters.
    #[error("name has {chars} characters, more than the {MAX_NAME_CHARS} allowed")]
    TooLong {
        /// Characters counted.
        chars: usize,
    },
    /// A control character (newline, tab, NUL, ...).
    #[error("name has a control character U+{code:04X} at character {position}")]
    ControlCharacter {
        /// The character's code point.
        code: u32,
        /// Its position in characters, counting from 1 (as lines and
        /// arguments are).
        position: usize,
    },
}

impl Name {
    /// Validates `name`.
    ///
    /// # Errors
    /// The first rule `name` breaks, as a [`NameError`].
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        let mut chars = 0;
        for (index, c) in name.chars().enumerate() {
            if c.is_control() {
                return Err(NameError::ControlCharacter {
                    code: u32::from(c),
                    position: index + 1,
                });
            }
            chars += 1;
        }
        if chars > MAX_NAME_CHARS {
            return Err(NameError::TooLong { chars });
        }
        if name.chars().all(char::is_whitespace) {
            return Err(NameError::Blank);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Serialised as its text: greetings' request payload.
impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Read from a JSON string and validated: a name that breaks a rule fails
/// with its [`NameError`]'s text, which a service sends back as an
/// `invalid_request` error.
impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_and_unicode_names_are_accepted() {
        for ok in [
            "Ada",
            "Zoë",
            "李小龙",
            "Ωmega 👋",
            "  padded  ",
            &"x".repeat(100),
        ] {
            assert_eq!(Name::parse(ok).map(|n| n.to_string()), Ok(ok.to_owned()));
        }
        // 100 four-byte characters is still 100 characters.
        assert!(Name::parse(&"👋".repeat(100)).is_ok());
    }

    #[test]
    fn each_rule_has_its_own_error() {
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(
            Name::parse(" \u{3000}\t"),
            Err(NameError::ControlCharacter {
                code: 9,
                position: 3
            })
        );
        assert_eq!(Name::parse("   "), Err(NameError::Blank));
        assert_eq!(
            Name::parse(&"x".repeat(101)),
            Err(NameError::TooLong { chars: 101 })
        );
        assert_eq!(
            Name::parse("Ada\nBob"),
            Err(NameError::ControlCharacter {
                code: 10,
                position: 4
            })
        );
        assert!(matches!(
            Name::parse("a\u{0}"),
            Err(NameError::ControlCharacter { code: 0, .. })
        ));
        assert!(matches!(
            Name::parse("a\u{85}"),
            Err(NameError::ControlCharacter { .. })
        ));
    }

    #[test]
    fn a_control_character_is_located_from_1_like_lines_and_arguments() {
        // Counted in characters, not bytes: "Zoë" is 3 characters, 4 bytes.
        let error = Name::parse("Zoë\tX").expect_err("tab");
        assert_eq!(
            error.to_string(),
            "name has a control character U+0009 at character 4"
        );
        let first = Name::parse("\u{7}Ada").expect_err("bell");
        assert!(first.to_string().ends_with("at character 1"), "{first}");
    }
}
