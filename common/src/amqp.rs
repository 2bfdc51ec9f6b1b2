//! Connecting to the broker: URL parsing, heartbeats, connection names, a
//! bounded connect time, and a redacted URL for every log line.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties, uri::AMQPUri};
use secrecy::ExposeSecret;

use crate::settings::AmqpSettings;

/// Longest a connection attempt may take before it counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no connection could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL does not parse. The message never includes the URL itself, as
    /// it may hold a password.
    #[error("invalid AMQP URL: {0}")]
    InvalidUrl(String),
    /// The broker refused or did not answer.
    #[error("cannot connect to {url}")]
    Unreachable {
        /// The URL with its password replaced by `***`.
        url: String,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// The broker did not finish the handshake within [`CONNECT_TIMEOUT`].
    #[error("cannot connect to {url}: no answer within {CONNECT_TIMEOUT:?}")]
    TimedOut {
        /// The URL with its password replaced by `***`.
        url: String,
    },
}

/// Parses the configured URL and adds the configured heartbeat unless the URL
/// sets one itself.
///
/// # Errors
/// [`ConnectError::InvalidUrl`].
pub fn uri(settings: &AmqpSettings) -> Result<AMQPUri, ConnectError> {
    let mut uri: AMQPUri = settings
        .url
        .expose_secret()
        .parse()
        .map_err(ConnectError::InvalidUrl)?;
    if uri.query.heartbeat.is_none() {
        uri.query.heartbeat = Some(settings.heartbeat);
    }
    Ok(uri)
}

/// The URI as text with the password replaced by `***`, for logs and errors.
#[must_use]
pub fn redacted(uri: &AMQPUri) -> String {
    const MARK: &str = "REDACTED";
    let mut shown = uri.clone();
    if shown.authority.userinfo.password.is_empty() {
        return shown.to_string();
    }
    shown.authority.userinfo.password = MARK.to_owned();
    // Display percent-encodes the password, so mark it with letters first.
    shown.to_string().replacen(MARK, "***", 1)
}

/// Opens a connection named `name` (shown in the management UI).
///
/// # Errors
/// [`ConnectError`] when the URL is invalid or the broker cannot be reached
/// within [`CONNECT_TIMEOUT`].
pub async fn connect(settings: &AmqpSettings, name: &str) -> Result<Connection, ConnectError> {
    let uri = uri(settings)?;
    let url = redacted(&uri);
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, properties)).await {
        Ok(Ok(connection)) => {
            tracing::info!(%url, connection = name, "connected to broker");
            Ok(connection)
        }
        Ok(Err(source)) => Err(ConnectError::Unreachable { url, source }),
        Err(_) => Err(ConnectError::TimedOut { url }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> AmqpSettings {
        AmqpSettings {
            url: url.to_owned().into(),
            heartbeat: 10,
        }
    }

    #[test]
    fn heartbeat_is_added_unless_the_url_sets_one() {
        let u = uri(&settings("amqp://u:p@h:5672/%2f")).expect("valid");
        assert_eq!(u.query.heartbeat, Some(10));
        let u = uri(&settings("amqp://u:p@h:5672/%2f?heartbeat=3")).expect("valid");
        assert_eq!(u.query.heartbeat, Some(3));
    }

    #[test]
    fn redaction_hides_the_password_only() {
        let u = uri(&settings("amqp://user:s3cr3t@host:5672/%2f")).expect("valid");
        let shown = redacted(&u);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("user:***@host:5672"), "{shown}");
    }

    #[test]
    fn an_invalid_url_is_refused_without_echoing_it() {
        let err = uri(&settings("http://user:s3cr3t@host")).expect_err("not amqp");
        assert!(err.to_string().starts_with("invalid AMQP URL"), "{err}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }
}
