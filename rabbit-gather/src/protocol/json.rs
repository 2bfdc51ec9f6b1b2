//! [`Json`]: one value of an application's payload kept as its JSON text,
//! which the runtime routes without knowing its type.

use std::fmt;

use serde::{Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;

/// One JSON value of an application's payload (a request, an item of a
/// batch, or an answer), kept as its text: the runtime routes it without
/// knowing its type, and the typed edges encode and decode it.
#[derive(Clone)]
pub struct Json(Box<RawValue>);

impl Json {
    /// Encodes `value`.
    ///
    /// # Errors
    /// serde's, for a value JSON cannot hold (a map with non-string keys, a
    /// failing `Serialize`).
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// Decodes the value as a `T`.
    ///
    /// # Errors
    /// serde's message, without the position (the value is one field of a
    /// body: a line and column in it would only mislead).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(self.0.get()).map_err(|error| without_position(&error))
    }

    /// Checks that `text` is one JSON value, and keeps it as it is.
    ///
    /// # Errors
    /// serde's, when it is not.
    pub fn from_text(text: &str) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text.to_owned()).map(Self)
    }

    /// The value's JSON text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// JSON `null`.
    #[must_use]
    pub fn null() -> Self {
        Self(RawValue::NULL.to_owned())
    }

    pub(crate) fn from_raw(raw: &RawValue) -> Self {
        Self(raw.to_owned())
    }
}

/// serde_json's message for `error` without " at line L column C".
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if error.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&suffix)
        .map_or(text.clone(), str::to_owned)
}

/// Written as the JSON it holds.
impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Any one JSON value, kept as its text.
impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Self)
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Json {}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Appends `text` as a JSON string.
pub(super) fn write_str(out: &mut Vec<u8>, text: &str) {
    // Writing a string to a Vec cannot fail.
    let _infallible = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_round_trips_and_a_decode_error_has_no_position() {
        let json = Json::encode(&("Ada", 3)).expect("encodes");
        assert_eq!(json.as_str(), r#"["Ada",3]"#);
        assert_eq!(json.decode::<(String, u8)>(), Ok(("Ada".to_owned(), 3)));
        assert_eq!(
            json.decode::<String>(),
            Err("invalid type: sequence, expected a string".to_owned())
        );
        assert!(Json::from_text("{").is_err());
    }
}
