//! Command-line flags of `producer` and how they layer over the settings.

use std::time::Duration;

use clap::Parser;
use rabbit_gather::{
    Settings,
    cli::{SharedArgs, with_default},
    duration,
    settings::{
        DEFAULT_BATCH, DEFAULT_EXPECT, DEFAULT_RETRIES, DEFAULT_RPC_CONCURRENCY, DEFAULT_TIMEOUT,
        ReplyQueue,
    },
};

/// Sends each NAME to every greeting consumer and prints their replies:
/// `producer Ada Bob` prints `hello Ada`, `goodbye Ada`, `hello Bob`, `goodbye Bob`.
///
/// With no NAME (or `-`), reads one name per line from stdin.
#[derive(Debug, Parser)]
#[command(version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Names to greet (1-100 characters, not only whitespace, no control characters).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// `rpc.expect`, when given.
    #[arg(
        short,
        long,
        value_delimiter = ',',
        value_name = "WORDS",
        help = with_default(
            "Consumers to wait for, in output order, or `all`: every consumer live at the \
             start of the run (a roll call), named when it does not answer. Replies from \
             others are printed after them only if they arrive before these complete the \
             call; later ones are counted as stray, not printed",
            DEFAULT_EXPECT.join(","),
        )
    )]
    pub expect: Option<Vec<String>>,
    /// `rpc.timeout`, when given.
    #[arg(
        short,
        long,
        value_parser = duration::parse,
        value_name = "DURATION",
        help = with_default(
            "Deadline for all replies to one name, retries included: 5, 2.5, 500ms, 5s",
            duration::format(DEFAULT_TIMEOUT),
        )
    )]
    pub timeout: Option<Duration>,
    /// `rpc.concurrency`, when given.
    #[arg(
        short,
        long,
        value_name = "N",
        help = with_default("Requests in flight at once", DEFAULT_RPC_CONCURRENCY)
    )]
    pub concurrency: Option<usize>,
    /// `rpc.batch`, when given.
    #[arg(
        short,
        long,
        value_name = "N",
        help = with_default(
            "Send up to N names per request: names waiting while requests are in flight \
             go together (contract v1.1), with no added delay; 1 to 1000",
            format!(
                "{DEFAULT_BATCH}, as consumers that know only contract v1 cannot answer batches"
            ),
        )
    )]
    pub batch: Option<usize>,
    /// `rpc.retries`, when given.
    #[arg(
        short,
        long,
        value_name = "N",
        help = with_default(
            "Resend a name this many times when the connection is lost or the broker \
             refuses it (nack), within its timeout",
            DEFAULT_RETRIES,
        )
    )]
    pub retries: Option<u32>,
    /// `rpc.reply_queue`, when given.
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        help = with_default(
            "Where replies come back to: an exclusive queue of this connection's own, or \
             RabbitMQ's direct reply-to (at-most-once; from RabbitMQ 4.2 it may drop \
             replies under load)",
            ReplyQueue::default().as_str(),
        )
    )]
    pub reply_queue: Option<ReplyQueue>,
    /// Print one JSON object per name instead of greeting lines, then one
    /// `{"summary":{...}}` object (counts and latency percentiles) as the last line.
    #[arg(long)]
    pub json: bool,
    /// Print the consumers live now (those answering a roll call), one word
    /// per line, and send nothing.
    #[arg(long, conflicts_with_all = ["names", "json"])]
    pub responders: bool,
    /// Config file, broker URL and prefix.
    #[command(flatten)]
    pub shared: SharedArgs,
}

const EXIT_CODES: &str = "\
Exit codes:
  0  every name got a greeting from every expected consumer
  1  unexpected failure (e.g. stdout closed)
  2  bad usage (including an invalid broker URL) or invalid name (nothing is sent for an invalid name)
  3  incomplete: a reply missing by the deadline, or an error reply
  4  broker unreachable, or connection lost
  5  no consumer is running: no queue bound to the exchange, or (--expect all, --responders) no answer to a roll call
  6  overloaded: the broker refused some names (a consumer's queue is full)
  130 interrupted";

impl Cli {
    /// Loads the layered settings and applies the flags on top.
    ///
    /// # Errors
    /// A message naming the bad setting, or saying why the broker URL is
    /// invalid.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = self.shared.load()?;
        if let Some(expect) = &self.expect {
            settings.rpc.expect.clone_from(expect);
        }
        if let Some(timeout) = self.timeout {
            settings.rpc.timeout = timeout;
        }
        if let Some(retries) = self.retries {
            settings.rpc.retries = retries;
        }
        if let Some(concurrency) = self.concurrency {
            settings.rpc.concurrency = concurrency;
        }
        if let Some(batch) = self.batch {
            settings.rpc.batch = batch;
        }
        if let Some(mode) = self.reply_queue {
            settings.rpc.reply_queue = mode;
        }
        settings.validate()?;
        // A URL that cannot parse is bad usage (exit 2), found before
        // anything connects.
        rabbit_gather::amqp::uri(&settings.amqp)?;
        Ok(settings)
    }

    /// Whether names come from stdin.
    #[must_use]
    pub fn reads_stdin(&self) -> bool {
        self.names.is_empty() || self.names == ["-"]
    }
}
