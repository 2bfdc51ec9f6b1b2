//! A JSON object read for its fields, each value kept as text: how the
//! envelope reads bodies whose field names an application chooses
//! ([`Contract`](super::Contract)), without a map or a copy per field. Keys
//! are borrowed from the body unless escaped; a key given twice refuses the
//! object, as serde does for a struct.

use std::{borrow::Cow, fmt};

use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, Visitor},
};
use serde_json::value::RawValue;

/// The fields of one JSON object, in order.
#[derive(Debug, Default)]
pub(super) struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Fields<'a> {
    /// The value of `field`, if present (`null` included).
    pub(super) fn get(&self, field: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(key, _)| key == field).map(|(_, v)| *v)
    }

    /// The value of `field`, unless it is absent or `null`.
    pub(super) fn present(&self, field: &str) -> Option<&'a RawValue> {
        self.get(field).filter(|value| value.get() != "null")
    }

    /// Every field, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> {
        self.0.iter().map(|(key, value)| (key.as_ref(), *value))
    }
}

/// A key, borrowed when it has no escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields: Vec<(Cow<'de, str>, &'de RawValue)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(2).min(8));
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    if fields.iter().any(|(seen, _)| *seen == key) {
                        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    let value = map.next_value::<&'de RawValue>()?;
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_in_order_escaped_keys_included_and_a_duplicate_is_refused() {
        let fields: Fields<'_> =
            serde_json::from_str(r#"{"a": 1, "n\u0061me": "Ada", "c": null}"#).expect("object");
        assert_eq!(fields.get("name").map(RawValue::get), Some(r#""Ada""#));
        assert_eq!(fields.get("c").map(RawValue::get), Some("null"));
        assert!(fields.present("c").is_none());
        assert_eq!(
            fields.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["a", "name", "c"]
        );
        let twice = serde_json::from_str::<Fields<'_>>(r#"{"name":"Ada","name":"Bob"}"#);
        assert!(
            twice.is_err_and(|e| e.to_string().starts_with("duplicate field `name`")),
            "the last one would win silently"
        );
        assert!(serde_json::from_str::<Fields<'_>>("[1]").is_err());
    }
}
