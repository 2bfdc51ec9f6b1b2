//! Short-string properties whose bytes were not UTF-8 (docs/wire-contract.md, "Invalid requests").
//!
//! RabbitMQ passes a publisher's bytes through unchecked. The frame parser
//! (amq-protocol-types, patched: vendor/README.md) decodes bytes that are not
//! UTF-8 as U+FFFD instead of failing the connection, so such a value always
//! holds at least one U+FFFD. A request carrying one in any short string is
//! refused as invalid: its value is not what the client sent, and a client
//! that means U+FFFD in a name, address or header has no need to.

use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable, ShortString},
};

/// Which short string of a request held bytes that were not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotUtf8 {
    /// `reply_to`: the request cannot be answered.
    ReplyTo,
    /// `correlation_id`: the request cannot be answered.
    CorrelationId,
    /// Another property (`message_id`, `type`, `content_type`, ...), or a
    /// header's name or short-string value, named here.
    Other(&'static str),
    /// A header: its name (as decoded).
    Header(String),
}

impl NotUtf8 {
    /// Whether the request can still be answered (its reply address and
    /// correlation id are intact).
    #[must_use]
    pub fn answerable(&self) -> bool {
        !matches!(self, Self::ReplyTo | Self::CorrelationId)
    }
}

impl std::fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ReplyTo => f.write_str("property reply_to"),
            Self::CorrelationId => f.write_str("property correlation_id"),
            Self::Other(property) => write!(f, "property {property}"),
            Self::Header(name) => write!(f, "header {name:?}"),
        }
    }
}

/// The first short string of `properties` that was not UTF-8, if any.
#[must_use]
pub fn not_utf8(properties: &BasicProperties) -> Option<NotUtf8> {
    let broken = |value: &Option<ShortString>| value.as_ref().is_some_and(|s| replaced(s.as_str()));
    if broken(properties.reply_to()) {
        return Some(NotUtf8::ReplyTo);
    }
    if broken(properties.correlation_id()) {
        return Some(NotUtf8::CorrelationId);
    }
    for (name, value) in [
        ("message_id", properties.message_id()),
        ("type", properties.kind()),
        ("app_id", properties.app_id()),
        ("user_id", properties.user_id()),
        ("content_type", properties.content_type()),
        ("content_encoding", properties.content_encoding()),
        ("expiration", properties.expiration()),
        ("cluster_id", properties.cluster_id()),
    ] {
        if broken(value) {
            return Some(NotUtf8::Other(name));
        }
    }
    properties.headers().as_ref().and_then(header_not_utf8)
}

fn replaced(s: &str) -> bool {
    s.contains(char::REPLACEMENT_CHARACTER)
}

/// A header whose name, or a short string anywhere in whose value, was not
/// UTF-8.
fn header_not_utf8(table: &FieldTable) -> Option<NotUtf8> {
    table.inner().iter().find_map(|(name, value)| {
        (replaced(name.as_str()) || value_not_utf8(value))
            .then(|| NotUtf8::Header(name.to_string()))
    })
}

fn value_not_utf8(value: &AMQPValue) -> bool {
    match value {
        AMQPValue::ShortString(s) => replaced(s.as_str()),
        AMQPValue::FieldTable(table) => header_not_utf8(table).is_some(),
        AMQPValue::FieldArray(array) => array.as_slice().iter().any(value_not_utf8),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD: &str = "a\u{FFFD}b";

    #[test]
    fn intact_properties_pass() {
        let mut headers = FieldTable::default();
        headers.insert("x-trace".into(), AMQPValue::ShortString("ok".into()));
        let properties = BasicProperties::default()
            .with_reply_to("amq.rabbitmq.reply-to".into())
            .with_correlation_id("c-1".into())
            .with_headers(headers);
        assert_eq!(not_utf8(&properties), None);
    }

    #[test]
    fn each_short_string_is_checked_and_named() {
        let base = BasicProperties::default;
        for (properties, expected) in [
            (base().with_reply_to(BAD.into()), NotUtf8::ReplyTo),
            (
                base().with_correlation_id(BAD.into()),
                NotUtf8::CorrelationId,
            ),
            (
                base().with_message_id(BAD.into()),
                NotUtf8::Other("message_id"),
            ),
            (base().with_type(BAD.into()), NotUtf8::Other("type")),
            (base().with_app_id(BAD.into()), NotUtf8::Other("app_id")),
            (base().with_user_id(BAD.into()), NotUtf8::Other("user_id")),
            (
                base().with_content_type(BAD.into()),
                NotUtf8::Other("content_type"),
            ),
            (
                base().with_content_encoding(BAD.into()),
                NotUtf8::Other("content_encoding"),
            ),
            (
                base().with_expiration(BAD.into()),
                NotUtf8::Other("expiration"),
            ),
            (
                base().with_cluster_id(BAD.into()),
                NotUtf8::Other("cluster_id"),
            ),
        ] {
            assert_eq!(not_utf8(&properties), Some(expected.clone()), "{expected}");
            assert_eq!(
                expected.answerable(),
                !matches!(expected, NotUtf8::ReplyTo | NotUtf8::CorrelationId)
            );
        }
    }

    #[test]
    fn header_names_and_nested_short_strings_are_checked() {
        let mut by_name = FieldTable::default();
        by_name.insert(BAD.into(), AMQPValue::Boolean(true));
        let mut nested = FieldTable::default();
        nested.insert("inner".into(), AMQPValue::ShortString(BAD.into()));
        let mut by_value = FieldTable::default();
        by_value.insert("outer".into(), AMQPValue::FieldTable(nested));
        for (headers, name) in [(by_name, BAD), (by_value, "outer")] {
            let properties = BasicProperties::default().with_headers(headers);
            assert_eq!(
                not_utf8(&properties),
                Some(NotUtf8::Header(name.to_owned()))
            );
        }
    }
}
