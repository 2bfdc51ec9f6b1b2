//! Layered configuration: built-in defaults, then an optional file, then
//! `GREETINGS_`-prefixed environment variables (`__` separates sections), then
//! `AMQP_URL`; the binaries apply their flags last.
//!
//! The defaults are written once, in the `Default` impls of [`Settings`] and
//! its sections (with a `DEFAULT_*` constant for each value a flag's help or
//! a doc shows): [`Settings::default()`] is a working configuration for a
//! local broker, and [`Settings::load`] fills every key that the file and
//! the environment leave out from it. Every setting, with its environment
//! variable, is listed in docs/operations.md (Configuration).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use config::{Config, Environment, File};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{duration, naming::Word};

/// Default of `amqp.url`: a broker on this host, as RabbitMQ's `guest` user
/// (which RabbitMQ admits only from localhost).
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Default of `topology.prefix`.
pub const DEFAULT_PREFIX: &str = "greetings";
/// Default of `rpc.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of `rpc.concurrency`.
pub const DEFAULT_RPC_CONCURRENCY: usize = 64;
/// Default of `rpc.batch`: one name per request, in contract v1 form, which
/// consumers of any version answer.
pub const DEFAULT_BATCH: usize = 1;
/// Default of `rpc.expect`.
pub const DEFAULT_EXPECT: &[&str] = &["hello", "goodbye"];
/// Default of `rpc.retries`.
pub const DEFAULT_RETRIES: u32 = 0;
/// Default of `consumer.prefetch`.
pub const DEFAULT_PREFETCH: u16 = 1;
/// Default of `consumer.concurrency`.
pub const DEFAULT_CONSUMER_CONCURRENCY: u16 = 1;

/// Everything a producer or consumer needs to know, in one typed tree.
///
/// `Settings::default()` works as it is against a local broker; a key that
/// a file or the environment leaves out keeps its default (`#[serde(default)]`
/// on every section), so an embedder may deserialize a partial tree too.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Broker connection.
    pub amqp: AmqpSettings,
    /// Names of exchanges and queues.
    pub topology: TopologySettings,
    /// Producer-side RPC behaviour.
    pub rpc: RpcSettings,
    /// Consumer-side behaviour.
    pub consumer: ConsumerSettings,
    /// Logging.
    pub log: LogSettings,
}

/// Logging settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// `text` (default) or `json`: one JSON object per line on stderr.
    pub format: LogFormat,
}

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the fields of the spans it is in.
    Json,
}

impl LogFormat {
    /// The setting's value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

/// Broker connection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port/vhost`, or several, comma-separated
    /// (a list in a config file): the nodes of a cluster, tried in turn;
    /// redacted in Debug output and logs. Default [`DEFAULT_AMQP_URL`].
    #[serde(deserialize_with = "url_or_list")]
    pub url: SecretString,
    /// Heartbeat interval in seconds negotiated with the broker (0 disables).
    pub heartbeat: u16,
    /// A file holding the password (a generated credential, a Docker or
    /// Kubernetes secret): it replaces the URL's password, read at each
    /// connection; one trailing newline is ignored.
    pub password_file: Option<PathBuf>,
    /// Certificates for `amqps://` URLs.
    pub tls: TlsSettings,
    /// The largest message body the broker accepts (its `max_message_size`),
    /// in bytes: no request or reply is ever larger. Batches are cut to fit,
    /// and a batch's answer goes in parts. Default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`], the repository's broker setting
    /// (`rabbitmq/rabbitmq.conf`); RabbitMQ's own default is 16 MiB on 4.x,
    /// 128 MiB on 3.x. At least [`MIN_MESSAGE_SIZE`](crate::protocol::MIN_MESSAGE_SIZE).
    pub max_message_size: usize,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: DEFAULT_AMQP_URL.into(),
            heartbeat: 10,
            password_file: None,
            tls: TlsSettings::default(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// Default of `amqp.max_message_size`: the `max_message_size` of the
/// repository's broker configuration (`rabbitmq/rabbitmq.conf`, which the
/// compose stack runs), 64 KiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// RabbitMQ's hard limit for `max_message_size`: 512 MiB.
const BROKER_MAX_MESSAGE_SIZE: usize = 512 * 1024 * 1024;

/// Certificates for `amqps://` URLs (PEM files). The broker's certificate is
/// always checked: against `ca_file` when set, else the system's roots, and
/// for the URL's host name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TlsSettings {
    /// CA certificates that sign the broker's certificate.
    pub ca_file: Option<PathBuf>,
    /// This client's certificate, for mutual TLS (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// This client's private key (PKCS#8 PEM), for mutual TLS (with `cert_file`).
    pub key_file: Option<PathBuf>,
}

/// Names of the exchanges and queues.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TopologySettings {
    /// Prefix of every exchange and queue name. Default [`DEFAULT_PREFIX`].
    pub prefix: String,
    /// Queue-name prefix a `reply_to` may use besides direct reply-to and
    /// server-named queues; defaults to `<prefix>.reply.`.
    pub reply_prefix: Option<String>,
    /// A word's queue unused this long (no consumer, not re-declared) is
    /// deleted by the broker (`x-expires`), so a retired word stops
    /// collecting requests. Zero: never. (Its retry queue has no such lease:
    /// nothing consumes it, so it would expire under a running consumer.)
    #[serde(deserialize_with = "duration::deserialize")]
    pub queue_expires: Duration,
    /// Most messages the dead-letter queue keeps (`x-max-length`; the oldest
    /// are dropped first). Zero: no limit.
    pub dead_letter_max_length: u32,
    /// How long the dead-letter queue keeps a message (`x-message-ttl`).
    /// Zero: for ever.
    #[serde(deserialize_with = "duration::deserialize")]
    pub dead_letter_ttl: Duration,
    /// Most requests a word's queue holds (`x-max-length`); a request
    /// beyond it is refused (`overflow = reject-publish`: the producer gets a
    /// nack, reported per name as overloaded). Zero: no bound.
    pub max_length: u32,
    /// The type of the queues the consumers declare: `classic` (default) or
    /// `quorum` (replicated on a cluster).
    pub queue_type: QueueType,
}

impl Default for TopologySettings {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            reply_prefix: None,
            queue_expires: Duration::from_secs(3600),
            dead_letter_max_length: 10_000,
            dead_letter_ttl: Duration::from_secs(7 * 24 * 3600),
            max_length: 0,
            queue_type: QueueType::default(),
        }
    }
}

/// The type of the consumers' queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// Classic queues, on one node.
    #[default]
    Classic,
    /// Quorum queues (Raft-replicated over a majority of a cluster's nodes),
    /// with the broker's delivery limit as a backstop for poison messages and
    /// at-least-once dead-lettering.
    Quorum,
}

impl QueueType {
    /// The `x-queue-type` value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Quorum => "quorum",
        }
    }
}

/// Producer-side RPC settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RpcSettings {
    /// How long a call waits for all expected replies; also the request's
    /// broker-side `expiration`. Default [`DEFAULT_TIMEOUT`].
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// Requests in flight at once. Default [`DEFAULT_RPC_CONCURRENCY`].
    pub concurrency: usize,
    /// Most names per request (contract v1.1 batches): names waiting while
    /// requests are in flight are sent together. 1 sends each name alone in
    /// v1 form, for consumers that know only v1. Default [`DEFAULT_BATCH`].
    pub batch: usize,
    /// Consumer words whose replies a call waits for, in output order.
    /// Default [`DEFAULT_EXPECT`].
    pub expect: Vec<String>,
    /// Publish requests as persistent messages (delivery mode 2).
    pub persistent: bool,
    /// Times a call is retried after the connection is lost (each retry on a
    /// new connection, with the full timeout). Default [`DEFAULT_RETRIES`].
    pub retries: u32,
    /// Where this client's replies come back to: an `exclusive` reply queue
    /// per connection (default) or `direct` reply-to.
    pub reply_queue: ReplyQueue,
}

impl Default for RpcSettings {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_RPC_CONCURRENCY,
            batch: DEFAULT_BATCH,
            expect: DEFAULT_EXPECT.iter().map(|&word| word.to_owned()).collect(),
            persistent: true,
            retries: DEFAULT_RETRIES,
            reply_queue: ReplyQueue::default(),
        }
    }
}

/// Where a client's replies come back to (`rpc.reply_queue`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ReplyQueue {
    /// RabbitMQ's direct reply-to pseudo-queue: no queue to declare, replies
    /// pushed straight to the client's channel. At-most-once, and from 4.2 a
    /// "volatile" queue type the broker may drop replies from.
    Direct,
    /// An exclusive queue per client connection, named under
    /// `topology.reply_prefix`, bound to the reply exchange and deleted with
    /// the connection; replies are mandatory, so a consumer notices a client
    /// that has gone.
    #[default]
    Exclusive,
}

impl ReplyQueue {
    /// The setting's value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Exclusive => "exclusive",
        }
    }
}

/// Consumer-side settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ConsumerSettings {
    /// Unacknowledged deliveries the broker may push to one consumer.
    /// Default [`DEFAULT_PREFETCH`].
    pub prefetch: u16,
    /// Deliveries handled at once (their replies and confirms overlap); at
    /// most `prefetch`. Default [`DEFAULT_CONSUMER_CONCURRENCY`].
    pub concurrency: u16,
    /// Failed handling attempts after which a request is dead-lettered as poison.
    pub max_failures: u32,
    /// Delay before the first retry of a request whose handler failed; it
    /// doubles with each further failure.
    #[serde(deserialize_with = "duration::deserialize")]
    pub retry_delay: Duration,
    /// Longest delay between two attempts of one request.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_retry_delay: Duration,
    /// How far this consumer's clock may be off the producer's before a live
    /// request counts as expired (it is judged by `timestamp` + `expiration`).
    #[serde(deserialize_with = "duration::deserialize")]
    pub clock_skew: Duration,
    /// Address of the HTTP endpoint (`/healthz`, `/readyz`, `/metrics`);
    /// none by default.
    pub http_addr: Option<std::net::SocketAddr>,
    /// Longest one handling attempt may run, whatever the request's
    /// deadline: a request without one (no `timestamp` or `expiration`), or
    /// with a crafted far one, is bounded by it. Below the broker's
    /// `consumer_timeout` (5 min in the compose broker, 30 min by default),
    /// past which the broker would close the channel.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_handling_time: Duration,
    /// Answer `reply_to` addresses reached through the default exchange
    /// (direct reply-to, server-named queues), as contract v1 clients use;
    /// reply queues are always answered. `false` in a deployment whose
    /// consumer users may not write to the default exchange: such requests
    /// are then refused up front (dead-lettered with the reason).
    pub direct_reply_to: bool,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            prefetch: DEFAULT_PREFETCH,
            concurrency: DEFAULT_CONSUMER_CONCURRENCY,
            max_failures: 3,
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(30),
            clock_skew: Duration::from_secs(30),
            http_addr: None,
            max_handling_time: Duration::from_secs(60),
            direct_reply_to: true,
        }
    }
}

/// `amqp.url` as one string, or a list of strings joined with commas.
fn url_or_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<SecretString, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(url) => url.into(),
        OneOrMany::Many(urls) => urls.join(",").into(),
    })
}

/// Configuration that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file, an environment variable or a default could not be read or
    /// typed (the cause says which).
    #[error("cannot load configuration")]
    Load(#[from] config::ConfigError),
    /// A value was read but is out of its allowed range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Loads `file` (if any), then the process environment, over
    /// [`Settings::default()`].
    ///
    /// # Errors
    /// [`SettingsError`] when the file is missing or malformed, a value has the
    /// wrong type, or a value is out of range.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Settings::load`] with an explicit environment, for tests.
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let env: HashMap<String, String> = env.into_iter().collect();
        // No defaults here: a key left out below takes its value from
        // `Settings::default()` (`#[serde(default)]` on every section).
        let mut builder = Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).required(true));
        }
        builder = builder.add_source(
            Environment::with_prefix("GREETINGS")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("rpc.expect")
                .try_parsing(true)
                .source(Some(env.clone().into_iter().collect())),
        );
        if let Some(url) = env.get("AMQP_URL").filter(|url| !url.is_empty()) {
            builder = builder.set_override("amqp.url", url.as_str())?;
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks ranges that types alone cannot express. Binaries call it again
    /// after applying their flags.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the setting and the allowed range.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |msg: String| Err(SettingsError::Invalid(msg));
        if self.topology.prefix.starts_with("amq.") {
            return invalid(format!(
                "topology.prefix {:?} must not start with 'amq.': RabbitMQ reserves those names",
                self.topology.prefix
            ));
        }
        if !crate::naming::is_valid_prefix(&self.topology.prefix) {
            return invalid(format!(
                "topology.prefix {:?} must be 1-100 characters of letters, digits, '.', '-' or '_'",
                self.topology.prefix
            ));
        }
        if let Some(prefix) = &self.topology.reply_prefix
            && (prefix.is_empty() || prefix.starts_with("amq."))
        {
            return invalid(format!(
                "topology.reply_prefix {prefix:?} must be non-empty and must not start with 'amq.'"
            ));
        }
        let size = self.amqp.max_message_size;
        if !(crate::protocol::MIN_MESSAGE_SIZE..=BROKER_MAX_MESSAGE_SIZE).contains(&size) {
            return invalid(format!(
                "amqp.max_message_size must be from {} to {} bytes, as the broker's \
                 max_message_size (got {size})",
                crate::protocol::MIN_MESSAGE_SIZE,
                BROKER_MAX_MESSAGE_SIZE
            ));
        }
        if self.rpc.timeout.is_zero() || self.rpc.timeout > Duration::from_secs(24 * 3600) {
            return invalid(format!(
                "rpc.timeout must be more than 0 and at most 24h (got {})",
                humantime::format_duration(self.rpc.timeout)
            ));
        }
        let tls = &self.amqp.tls;
        if (tls.ca_file.is_some() || tls.cert_file.is_some())
            && !self.amqp.url.expose_secret().starts_with("amqps://")
        {
            return invalid("amqp.tls files are set but amqp.url is not amqps://".to_owned());
        }
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return invalid(
                "amqp.tls.cert_file and amqp.tls.key_file go together (mutual TLS needs both)"
                    .to_owned(),
            );
        }
        if self.consumer.retry_delay.is_zero()
            || self.consumer.max_retry_delay < self.consumer.retry_delay
        {
            return invalid(format!(
                "consumer.retry_delay ({}) must be more than 0 and at most consumer.max_retry_delay ({})",
                humantime::format_duration(self.consumer.retry_delay),
                humantime::format_duration(self.consumer.max_retry_delay)
            ));
        }
        // Broker-side limits: x-expires and x-message-ttl are 32-bit ms.
        for (setting, value) in [
            ("topology.queue_expires", self.topology.queue_expires),
            ("topology.dead_letter_ttl", self.topology.dead_letter_ttl),
            ("consumer.max_retry_delay", self.consumer.max_retry_delay),
        ] {
            if value.as_millis() > u128::from(u32::MAX) {
                return invalid(format!(
                    "{setting} must be at most 49 days (got {})",
                    humantime::format_duration(value)
                ));
            }
        }
        if self.rpc.concurrency == 0 || self.rpc.concurrency > 65_535 {
            return invalid(format!(
                "rpc.concurrency {} must be between 1 and 65535",
                self.rpc.concurrency
            ));
        }
        if self.rpc.batch == 0 || self.rpc.batch > crate::protocol::MAX_BATCH_NAMES {
            return invalid(format!(
                "rpc.batch {} must be between 1 and {}",
                self.rpc.batch,
                crate::protocol::MAX_BATCH_NAMES
            ));
        }
        if self.rpc.expect.is_empty() {
            return invalid("rpc.expect must name at least one consumer".to_owned());
        }
        for word in &self.rpc.expect {
            Word::parse(word).map_err(|e| SettingsError::Invalid(format!("rpc.expect: {e}")))?;
        }
        if self.consumer.max_handling_time.is_zero() {
            return invalid("consumer.max_handling_time must be more than 0".to_owned());
        }
        if self.consumer.max_failures == 0 {
            return invalid("consumer.max_failures must be at least 1".to_owned());
        }
        if self.consumer.prefetch == 0 {
            return invalid("consumer.prefetch must be at least 1".to_owned());
        }
        if self.consumer.concurrency == 0 || self.consumer.concurrency > self.consumer.prefetch {
            return invalid(format!(
                "consumer.concurrency {} must be between 1 and consumer.prefetch ({})",
                self.consumer.concurrency, self.consumer.prefetch
            ));
        }
        Ok(())
    }

    /// The `reply_to` prefix consumers accept besides `amq.*` reply addresses.
    #[must_use]
    pub fn reply_prefix(&self) -> String {
        self.topology
            .reply_prefix
            .clone()
            .unwrap_or_else(|| format!("{}.reply.", self.topology.prefix))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_list_of_urls_in_the_file_is_one_comma_separated_url() {
        use secrecy::ExposeSecret;
        let mut file = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .expect("temp file");
        std::io::Write::write_all(
            &mut file,
            b"[amqp]\nurl = [\"amqp://a:5672/%2f\", \"amqp://b:5673/%2f\"]\n",
        )
        .expect("write");
        let settings =
            super::Settings::load_from(Some(file.path()), std::iter::empty()).expect("loads");
        assert_eq!(
            settings.amqp.url.expose_secret(),
            "amqp://a:5672/%2f,amqp://b:5673/%2f"
        );
    }

    use std::io::Write;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_apply_without_file_or_environment() {
        let s = Settings::load_from(None, env(&[])).expect("defaults load");
        assert_eq!(s.amqp.url.expose_secret(), DEFAULT_AMQP_URL);
        assert_eq!(s.amqp.heartbeat, 10);
        assert_eq!(s.topology.prefix, "greetings");
        assert_eq!(s.reply_prefix(), "greetings.reply.");
        assert_eq!(s.rpc.reply_queue, super::ReplyQueue::Exclusive);
        assert!(s.consumer.direct_reply_to);
        assert_eq!(s.rpc.timeout, Duration::from_secs(5));
        assert_eq!(s.rpc.concurrency, 64);
        assert_eq!(s.rpc.expect, ["hello", "goodbye"]);
        assert_eq!(s.consumer.prefetch, 1);
        assert_eq!(s.consumer.clock_skew, Duration::from_secs(30));
        assert_eq!(s.consumer.retry_delay, Duration::from_secs(1));
        assert_eq!(s.topology.dead_letter_max_length, 10_000);
        assert_eq!(
            s.topology.dead_letter_ttl,
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(s.topology.queue_expires, Duration::from_secs(3600));
    }

    #[test]
    fn settings_default_is_what_loading_with_nothing_set_gives_and_is_valid() {
        let defaults = Settings::default();
        let loaded = Settings::load_from(None, env(&[])).expect("defaults load");
        // Debug shows every field but the URL, which it redacts.
        assert_eq!(format!("{defaults:#?}"), format!("{loaded:#?}"));
        assert_eq!(
            defaults.amqp.url.expose_secret(),
            loaded.amqp.url.expose_secret()
        );
        defaults.validate().expect("the defaults are valid");
    }

    #[test]
    fn a_section_the_file_names_in_part_keeps_the_defaults_of_the_rest() {
        let mut file = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .expect("temp file");
        writeln!(file, "[consumer]\nprefetch = 8\n[amqp.tls]").expect("write");
        let s = Settings::load_from(Some(file.path()), env(&[])).expect("loads");
        let defaults = Settings::default();
        assert_eq!(s.consumer.prefetch, 8);
        assert_eq!(s.consumer.concurrency, defaults.consumer.concurrency);
        assert_eq!(s.consumer.max_failures, defaults.consumer.max_failures);
        assert_eq!(s.consumer.retry_delay, defaults.consumer.retry_delay);
        assert_eq!(s.amqp.heartbeat, defaults.amqp.heartbeat);
        assert!(s.amqp.tls.ca_file.is_none());
    }

    #[test]
    fn file_overrides_defaults_and_environment_overrides_file() {
        let mut file = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .expect("temp file");
        writeln!(
            file,
            "[rpc]\ntimeout = \"2.5\"\nconcurrency = 8\n[topology]\nprefix = \"fromfile\"\n[consumer]\nprefetch = 4"
        )
        .expect("write");
        let s = Settings::load_from(
            Some(file.path()),
            env(&[
                ("GREETINGS_RPC__CONCURRENCY", "16"),
                ("GREETINGS_RPC__EXPECT", "hello,bonjour"),
                ("GREETINGS_AMQP__URL", "amqp://a:b@env:5672/%2f"),
            ]),
        )
        .expect("layered load");
        assert_eq!(s.rpc.timeout, Duration::from_millis(2500));
        assert_eq!(s.rpc.concurrency, 16);
        assert_eq!(s.rpc.expect, ["hello", "bonjour"]);
        assert_eq!(s.topology.prefix, "fromfile");
        assert_eq!(s.consumer.prefetch, 4);
        assert_eq!(s.amqp.url.expose_secret(), "amqp://a:b@env:5672/%2f");
    }

    #[test]
    fn amqp_url_beats_the_config_url() {
        let s = Settings::load_from(
            None,
            env(&[
                ("GREETINGS_AMQP__URL", "amqp://a:b@config:5672/%2f"),
                ("AMQP_URL", "amqp://c:d@plain:5672/%2f"),
            ]),
        )
        .expect("load");
        assert_eq!(s.amqp.url.expose_secret(), "amqp://c:d@plain:5672/%2f");
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let s = Settings::load_from(None, env(&[("AMQP_URL", "amqp://u:s3cr3t@h:5672/%2f")]))
            .expect("load");
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
    }

    /// The error and its causes, as a user sees them.
    fn chain(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        text
    }

    #[test]
    fn out_of_range_values_are_rejected_with_the_setting_named() {
        for (key, value, needle) in [
            ("GREETINGS_RPC__CONCURRENCY", "0", "rpc.concurrency"),
            ("GREETINGS_RPC__BATCH", "0", "rpc.batch"),
            ("GREETINGS_RPC__BATCH", "1001", "between 1 and 1000"),
            ("GREETINGS_RPC__TIMEOUT", "0", "rpc.timeout"),
            ("GREETINGS_RPC__TIMEOUT", "soon", "invalid duration"),
            ("GREETINGS_CONSUMER__PREFETCH", "0", "consumer.prefetch"),
            ("GREETINGS_CONSUMER__PREFETCH", "many", "prefetch"),
            (
                "GREETINGS_CONSUMER__CONCURRENCY",
                "2",
                "consumer.concurrency",
            ),
            (
                "GREETINGS_CONSUMER__CONCURRENCY",
                "0",
                "consumer.concurrency",
            ),
            (
                "GREETINGS_CONSUMER__MAX_FAILURES",
                "0",
                "consumer.max_failures",
            ),
            ("GREETINGS_TOPOLOGY__PREFIX", "has space", "topology.prefix"),
            ("GREETINGS_RPC__EXPECT", "hello,bad word", "rpc.expect"),
            ("GREETINGS_RPC__REPLY_QUEUE", "shared", "reply_queue"),
            (
                "GREETINGS_CONSUMER__MAX_HANDLING_TIME",
                "0",
                "max_handling_time",
            ),
            (
                "GREETINGS_CONSUMER__DIRECT_REPLY_TO",
                "maybe",
                "direct_reply_to",
            ),
            ("GREETINGS_TOPOLOGY__PREFIX", "amq.x", "RabbitMQ reserves"),
            ("GREETINGS_RPC__TIMEOUT", "0", "(got 0s)"),
            (
                "GREETINGS_CONSUMER__RETRY_DELAY",
                "0",
                "consumer.retry_delay",
            ),
            (
                "GREETINGS_CONSUMER__MAX_RETRY_DELAY",
                "10ms",
                "consumer.retry_delay",
            ),
            (
                "GREETINGS_TOPOLOGY__QUEUE_EXPIRES",
                "100d",
                "topology.queue_expires",
            ),
        ] {
            let err = Settings::load_from(None, env(&[(key, value)]))
                .expect_err(&format!("{key}={value} must be rejected"));
            let text = chain(&err);
            assert!(text.contains(needle), "{key}={value}: {text}");
        }
    }

    #[test]
    fn mutual_tls_needs_both_the_certificate_and_the_key() {
        let err = Settings::load_from(
            None,
            env(&[
                ("AMQP_URL", "amqps://u:p@h:5671/%2f"),
                ("GREETINGS_AMQP__TLS__CERT_FILE", "/client.pem"),
            ]),
        )
        .expect_err("cert without key");
        assert!(err.to_string().contains("go together"), "{err}");
        let s = Settings::load_from(
            None,
            env(&[
                ("AMQP_URL", "amqps://u:p@h:5671/%2f"),
                ("GREETINGS_AMQP__TLS__CA_FILE", "/ca.pem"),
                ("GREETINGS_AMQP__TLS__CERT_FILE", "/client.pem"),
                ("GREETINGS_AMQP__TLS__KEY_FILE", "/client.key"),
            ]),
        )
        .expect("amqps with every file");
        assert_eq!(s.amqp.tls.ca_file.as_deref(), Some(Path::new("/ca.pem")));
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let err = Settings::load_from(Some(Path::new("/nonexistent/greetings.toml")), env(&[]))
            .expect_err("missing file");
        let text = chain(&err);
        assert!(text.starts_with("cannot load configuration: "), "{text}");
        assert!(text.contains("/nonexistent/greetings.toml"), "{text}");
        // Said once, not repeated by the cause.
        assert_eq!(
            text.matches("cannot load configuration").count(),
            1,
            "{text}"
        );
        assert_eq!(text.matches("not found").count(), 1, "{text}");
    }
}
