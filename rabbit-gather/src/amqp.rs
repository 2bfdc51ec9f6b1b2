//! Connecting to the broker: URL parsing, heartbeats, connection names, a
//! bounded connect time, and a redacted URL for every log line.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use lapin::{
    Connection, ConnectionProperties,
    tcp::{OwnedIdentity, OwnedTLSConfig},
    uri::{AMQPScheme, AMQPUri},
};
use secrecy::ExposeSecret;

use crate::settings::{AmqpSettings, TlsSettings};

/// Longest a connection attempt may take before it counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no connection could be made.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// A TLS file named in the settings cannot be read.
    #[error("cannot read the TLS file {}", path.display())]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// `amqp.password_file` cannot be read.
    #[error("cannot read the password file {}", path.display())]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// TLS files are set for a plain `amqp://` URL.
    #[error("amqp.tls files are set but the URL is not amqps://")]
    TlsWithoutAmqps,
    /// The broker did not finish the handshake within [`CONNECT_TIMEOUT`].
    #[error("cannot connect to {url}: no answer within {CONNECT_TIMEOUT:?}")]
    TimedOut {
        /// The URL with its password replaced by `***`.
        url: String,
    },
}

impl ConnectError {
    /// The settings are wrong (a URL that does not parse, a TLS or password
    /// file that cannot be read, TLS files for a plain `amqp://` URL): no
    /// retry can fix it, and the binaries report it as a usage error. The
    /// others (unreachable, timed out) are the broker's.
    #[must_use]
    pub fn is_configuration(&self) -> bool {
        match self {
            Self::InvalidUrl(_)
            | Self::TlsFile { .. }
            | Self::PasswordFile { .. }
            | Self::TlsWithoutAmqps => true,
            Self::Unreachable { .. } | Self::TimedOut { .. } => false,
        }
    }
}

/// Parses the configured URL (the first of a list), adds the configured
/// heartbeat unless the URL sets one itself, and the password from
/// `password_file` when set.
///
/// # Errors
/// [`ConnectError::InvalidUrl`], [`ConnectError::PasswordFile`].
pub fn uri(settings: &AmqpSettings) -> Result<AMQPUri, ConnectError> {
    let mut all = uris(settings)?;
    Ok(all.swap_remove(0))
}

/// Every broker address of `amqp.url` (a comma-separated list: the nodes of
/// a cluster), each parsed as [`uri`] does; at least one.
///
/// # Errors
/// [`ConnectError::InvalidUrl`] (naming which of the list, never echoing
/// it), [`ConnectError::PasswordFile`].
pub fn uris(settings: &AmqpSettings) -> Result<Vec<AMQPUri>, ConnectError> {
    let text = settings.url.expose_secret();
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let password = match &settings.password_file {
        Some(path) => Some(read_password(path)?),
        None => None,
    };
    let several = parts.len() > 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let mut uri: AMQPUri = part.parse().map_err(|e: String| {
                ConnectError::InvalidUrl(if several {
                    format!("address {} of {}: {e}", i + 1, parts.len())
                } else {
                    e
                })
            })?;
            if uri.query.heartbeat.is_none() {
                uri.query.heartbeat = Some(settings.heartbeat);
            }
            if let Some(password) = &password {
                uri.authority.userinfo.password.clone_from(password);
            }
            Ok(uri)
        })
        .collect()
}

fn read_password(path: &Path) -> Result<String, ConnectError> {
    let password = std::fs::read_to_string(path).map_err(|source| ConnectError::PasswordFile {
        source: Arc::new(source),
        path: path.to_owned(),
    })?;
    let password = password.strip_suffix('\n').unwrap_or(&password);
    Ok(password.trim_end_matches('\r').to_owned())
}

/// The order in which this process tries `n` addresses: a shuffle drawn
/// once per process, so that a fleet spreads over the nodes, and the clients
/// of a node that fails spread over the others rather than all moving to the
/// same next one.
fn address_order(n: usize) -> Vec<usize> {
    use rand::{SeedableRng, seq::SliceRandom};
    static SEED: std::sync::LazyLock<u64> = std::sync::LazyLock::new(rand::random);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(*SEED));
    order
}

/// Where in [`address_order`] the next connection of this process starts:
/// where the last one succeeded, or after the first address that failed.
static NEXT_ADDRESS: AtomicUsize = AtomicUsize::new(0);

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

/// Opens a connection named `name` (shown in the management UI) to one of
/// the configured addresses: tried in this process's shuffled order
/// (`address_order`) from where its last connection succeeded, each within
/// [`CONNECT_TIMEOUT`]; the log line names the address it is on.
///
/// # Errors
/// [`ConnectError`] when the URL is invalid or no address can be reached
/// (the error of the last one tried).
pub async fn connect(settings: &AmqpSettings, name: &str) -> Result<Connection, ConnectError> {
    let uris = uris(settings)?;
    let order = address_order(uris.len());
    let start = NEXT_ADDRESS.load(Ordering::Relaxed);
    let mut last = None;
    for step in 0..uris.len() {
        let position = (start + step) % uris.len();
        match connect_one(&uris[order[position]], settings, name).await {
            Ok(connection) => {
                NEXT_ADDRESS.store(position, Ordering::Relaxed);
                return Ok(connection);
            }
            Err(error @ (ConnectError::Unreachable { .. } | ConnectError::TimedOut { .. }))
                if uris.len() > 1 =>
            {
                tracing::debug!(%error, "trying the next broker address");
                last = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    // The next attempt starts with the address after the one tried first.
    NEXT_ADDRESS.store((start + 1) % uris.len(), Ordering::Relaxed);
    let several = |url: String| format!("any of the {} broker addresses (last: {url})", uris.len());
    Err(match last {
        Some(ConnectError::Unreachable { url, source }) => ConnectError::Unreachable {
            url: several(url),
            source,
        },
        Some(ConnectError::TimedOut { url }) => ConnectError::TimedOut { url: several(url) },
        Some(other) => other,
        None => ConnectError::InvalidUrl("no broker address".to_owned()),
    })
}

async fn connect_one(
    uri: &AMQPUri,
    settings: &AmqpSettings,
    name: &str,
) -> Result<Connection, ConnectError> {
    let url = redacted(uri);
    let tls = tls_config(uri, &settings.tls)?;
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let uri = uri.clone();
    let connecting = async {
        let runtime = lapin::runtime::default_runtime()?;
        Connection::connect_uri_with_config(uri, properties, tls, runtime).await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => {
            tracing::info!(%url, connection = name, "connected to broker");
            Ok(connection)
        }
        Ok(Err(source)) => Err(ConnectError::Unreachable { url, source }),
        Err(_) => Err(ConnectError::TimedOut { url }),
    }
}

/// The TLS configuration for `uri`: the files of `settings`, read now (they
/// may be rotated between connections).
///
/// # Errors
/// [`ConnectError::TlsFile`] for a file that cannot be read;
/// [`ConnectError::TlsWithoutAmqps`] for files set with a plain URL.
pub fn tls_config(uri: &AMQPUri, settings: &TlsSettings) -> Result<OwnedTLSConfig, ConnectError> {
    let any = settings.ca_file.is_some() || settings.cert_file.is_some();
    if uri.scheme != AMQPScheme::AMQPS {
        return if any {
            Err(ConnectError::TlsWithoutAmqps)
        } else {
            Ok(OwnedTLSConfig::default())
        };
    }
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ConnectError::TlsFile {
            source: Arc::new(source),
            path: path.to_owned(),
        })
    };
    let cert_chain = match &settings.ca_file {
        Some(path) => Some(String::from_utf8_lossy(&read(path)?).into_owned()),
        None => None,
    };
    let identity = match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read(cert)?,
            key: read(key)?,
        }),
        _ => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_in_the_settings_are_configuration_errors() {
        let unreadable = || Arc::new(std::io::Error::from(std::io::ErrorKind::NotFound));
        for error in [
            ConnectError::InvalidUrl("no scheme".into()),
            ConnectError::TlsFile {
                path: "ca.pem".into(),
                source: unreadable(),
            },
            ConnectError::PasswordFile {
                path: "password".into(),
                source: unreadable(),
            },
            ConnectError::TlsWithoutAmqps,
        ] {
            assert!(error.is_configuration(), "{error}");
        }
        let timed_out = ConnectError::TimedOut {
            url: "amqp://127.0.0.1:5672".into(),
        };
        assert!(!timed_out.is_configuration(), "{timed_out}");
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_no_configuration_error() {
        let amqp = settings("amqp://guest:guest@127.0.0.1:1/%2f");
        let error = connect(&amqp, "is-configuration-test")
            .await
            .expect_err("nothing listens on port 1");
        assert!(
            matches!(error, ConnectError::Unreachable { .. }),
            "{error:?}"
        );
        assert!(!error.is_configuration(), "{error}");
    }

    fn settings(url: &str) -> AmqpSettings {
        AmqpSettings {
            url: url.to_owned().into(),
            heartbeat: 10,
            password_file: None,
            tls: TlsSettings::default(),
            max_message_size: crate::settings::DEFAULT_MAX_MESSAGE_SIZE,
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
    fn a_password_file_replaces_the_urls_password_and_is_never_shown() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, b"fr0m-f1le\n").expect("write");
        let mut s = settings("amqp://producer@h:5672/greetings");
        s.password_file = Some(file.path().to_owned());
        let u = uri(&s).expect("valid");
        assert_eq!(u.authority.userinfo.password, "fr0m-f1le");
        assert!(!redacted(&u).contains("fr0m-f1le"));
        s.password_file = Some("/nonexistent/producer.password".into());
        let err = uri(&s).expect_err("missing file");
        assert!(
            err.to_string().contains("/nonexistent/producer.password"),
            "{err}"
        );
    }

    #[test]
    fn tls_files_need_amqps_and_must_be_readable() {
        let files = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        let plain = uri(&settings("amqp://u:p@h:5672/%2f")).expect("valid");
        assert!(matches!(
            tls_config(&plain, &files),
            Err(ConnectError::TlsWithoutAmqps)
        ));
        assert!(tls_config(&plain, &TlsSettings::default()).is_ok());
        let secure = uri(&settings("amqps://u:p@h:5671/%2f")).expect("valid");
        let err = tls_config(&secure, &files).expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn a_comma_separated_list_gives_every_address_with_the_same_settings() {
        let list = settings(
            "amqp://u:p@a:5672/%2f, amqp://u:p@b:5673/%2f,amqp://u:p@c:5674/%2f?heartbeat=2",
        );
        let all = uris(&list).expect("valid");
        let hosts: Vec<(String, u16, Option<u16>)> = all
            .iter()
            .map(|u| {
                (
                    u.authority.host.clone(),
                    u.authority.port,
                    u.query.heartbeat,
                )
            })
            .collect();
        assert_eq!(
            hosts,
            [
                ("a".to_owned(), 5672, Some(10)),
                ("b".to_owned(), 5673, Some(10)),
                ("c".to_owned(), 5674, Some(2)),
            ]
        );
        assert_eq!(uri(&list).expect("valid").authority.host, "a");
        let err = uris(&settings("amqp://u:s3cr3t@a:5672/%2f,http://u:s3cr3t@b"))
            .expect_err("second is not amqp");
        assert!(err.to_string().contains("address 2 of 2"), "{err}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }

    #[test]
    fn the_address_order_is_one_shuffle_per_process() {
        let order = address_order(5);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2, 3, 4], "a permutation");
        assert_eq!(
            address_order(5),
            order,
            "the same every time in one process"
        );
        assert_eq!(address_order(1), [0]);
    }

    #[test]
    fn an_invalid_url_is_refused_without_echoing_it() {
        let err = uri(&settings("http://user:s3cr3t@host")).expect_err("not amqp");
        assert!(err.to_string().starts_with("invalid AMQP URL"), "{err}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }
}
