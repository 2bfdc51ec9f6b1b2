//! The general envelope's parameters: which JSON fields carry an
//! application's request, its batch and its reply, and the limits a service
//! enforces. Greetings is one choice of them ([`Contract::GREETINGS`]);
//! another application keeps the defaults or names its own fields.

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

/// What an application's requests and replies look like on the wire, and
/// the limits its services enforce. Both ends of a route must use the same.
///
/// A request body is a JSON object holding the request in
/// [`request_field`](Self::request_field), or a batch of them as an array in
/// [`batch_field`](Self::batch_field); a reply holds the responder's name in
/// `consumer` and the answer in [`reply_field`](Self::reply_field), an
/// `error`, or a batch's `results` (the README's wire contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contract {
    /// The field of a single request.
    pub request_field: &'static str,
    /// The field of a batch: an array of requests.
    pub batch_field: &'static str,
    /// The field of an answer, in a reply and in each result of a batch reply.
    pub reply_field: &'static str,
    /// Largest single request body a service accepts, in bytes.
    pub max_request_bytes: usize,
    /// Most requests in one batch.
    pub max_batch_items: usize,
    /// Largest batch request body a service accepts, in bytes.
    pub max_batch_bytes: usize,
}

impl Contract {
    /// The envelope's defaults: `{"request": ...}`, `{"requests": [...]}`,
    /// answers in `reply`; 128 KiB bodies, batches of up to 1,000.
    pub const DEFAULT: Self = Self {
        request_field: "request",
        batch_field: "requests",
        reply_field: "reply",
        max_request_bytes: 128 * 1024,
        max_batch_items: 1000,
        max_batch_bytes: 128 * 1024,
    };

    /// Greetings (contract v1 to v1.2): `{"name": ...}`, `{"names": [...]}`,
    /// answers in `greeting`; 4 KiB single requests, batches of up to 1,000
    /// names in 128 KiB.
    pub const GREETINGS: Self = Self {
        request_field: "name",
        batch_field: "names",
        reply_field: "greeting",
        max_request_bytes: 4096,
        max_batch_items: 1000,
        max_batch_bytes: 128 * 1024,
    };

    /// Fields the envelope itself uses, which an application's cannot be.
    pub const RESERVED_FIELDS: [&'static str; 5] =
        ["consumer", "error", "results", "offset", "done"];

    /// Checks that the three fields are distinct, not reserved, and the
    /// limits are not zero.
    ///
    /// # Errors
    /// What is wrong, in a sentence.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [self.request_field, self.batch_field, self.reply_field];
        if let Some(field) = fields
            .iter()
            .find(|f| f.is_empty() || Self::RESERVED_FIELDS.contains(f))
        {
            return Err(format!(
                "contract field {field:?} is empty or one the envelope uses ({:?})",
                Self::RESERVED_FIELDS
            ));
        }
        if self.request_field == self.batch_field {
            return Err("a contract's request and batch fields must differ".to_owned());
        }
        if self.max_request_bytes == 0 || self.max_batch_items == 0 || self.max_batch_bytes == 0 {
            return Err("a contract's limits must be more than 0".to_owned());
        }
        Ok(())
    }

    /// Bytes of a batch body besides its items: `{"<batch_field>":[]}`.
    #[must_use]
    pub fn batch_overhead(&self) -> usize {
        self.batch_field.len() + 7
    }
}

impl Default for Contract {
    fn default() -> Self {
        Self::DEFAULT
    }
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

    #[test]
    fn contracts_are_checked() {
        assert_eq!(Contract::DEFAULT.validate(), Ok(()));
        assert_eq!(Contract::GREETINGS.validate(), Ok(()));
        assert_eq!(
            Contract::GREETINGS.batch_overhead(),
            br#"{"names":[]}"#.len()
        );
        for wrong in [
            Contract {
                reply_field: "error",
                ..Contract::DEFAULT
            },
            Contract {
                batch_field: "request",
                ..Contract::DEFAULT
            },
            Contract {
                max_batch_items: 0,
                ..Contract::DEFAULT
            },
        ] {
            assert!(wrong.validate().is_err(), "{wrong:?}");
        }
    }
}
