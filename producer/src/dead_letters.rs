//! The `dead-letters` binary's logic: list, replay and purge the letters in
//! `<prefix>.dead` (docs/operations.md, "Dead letters").
//!
//! `src/bin/dead-letters.rs` only parses flags and maps the result to an exit
//! code; tests call [`run`] directly or run the binary.

pub mod attempt;
pub mod cli;
pub mod letter;
mod list;
pub mod replay;
pub mod text;

use std::io::Write;

use lapin::{
    Channel, Connection, ExchangeKind,
    options::{BasicNackOptions, ExchangeDeclareOptions, QueueDeclareOptions, QueuePurgeOptions},
    protocol::{AMQPErrorKind, AMQPSoftError},
    types::FieldTable,
};
use rabbit_gather::{
    Settings,
    amqp::{self, ConnectError},
    shutdown::CancellationToken,
    topology::Topology,
};

pub use cli::{Cli, Command, ReplayArgs};
pub use letter::Letter;
pub use replay::{ReplayReport, Selection};

/// Exit codes of `dead-letters` (also in `dead-letters --help`): the
/// producer's, with the same numbers for the same kinds of outcome.
pub mod exit {
    pub use crate::exit::{BROKER, FAILURE, INTERRUPTED, OK, USAGE};
    /// A selected letter's replay was nacked (the letter is kept), or a
    /// requested correlation id is not in the queue.
    pub const INCOMPLETE: u8 = crate::exit::INCOMPLETE;
    /// Nothing for this prefix: the dead-letter queue or the request exchange
    /// does not exist, or no queue is bound to the exchange (the letters are
    /// kept).
    pub const NO_ROUTE: u8 = crate::exit::NO_ROUTE;
}

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum DeadLettersError {
    /// `purge` without `--yes`.
    #[error(
        "purge deletes every letter in {queue} for good; run `dead-letters purge --yes` to do it"
    )]
    NotConfirmed {
        /// The queue it would purge.
        queue: String,
    },
    /// Bad settings, or the broker cannot be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The dead-letter queue does not exist.
    #[error(
        "{queue} does not exist: no consumer has run with prefix {prefix:?} on this broker and \
         vhost (check --prefix and the URL)"
    )]
    MissingQueue {
        /// The queue.
        queue: String,
        /// The prefix it was derived from.
        prefix: String,
    },
    /// The request exchange does not exist: nothing to replay to.
    #[error(
        "the request exchange {exchange} does not exist: no producer or consumer has run with \
         this prefix on this broker and vhost; nothing was replayed"
    )]
    MissingExchange {
        /// The exchange.
        exchange: String,
    },
    /// The broker refused an operation or the connection was lost.
    #[error("{doing}")]
    Broker {
        /// What was being done.
        doing: &'static str,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// stdout or stderr could not be written (letters held are put back).
    #[error("cannot write output")]
    Output(#[from] std::io::Error),
}

impl DeadLettersError {
    /// The documented exit code for this failure.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NotConfirmed { .. } => exit::USAGE,
            Self::Connect(e) if e.is_configuration() => exit::USAGE,
            Self::Connect(_) | Self::Broker { .. } => exit::BROKER,
            Self::MissingQueue { .. } | Self::MissingExchange { .. } => exit::NO_ROUTE,
            Self::Output(_) => exit::FAILURE,
        }
    }
}

/// Maps a lapin error to [`DeadLettersError::Broker`] saying what was being done.
fn broker(doing: &'static str) -> impl FnOnce(lapin::Error) -> DeadLettersError {
    move |source| DeadLettersError::Broker { doing, source }
}

/// Runs `command` against the dead-letter queue of `settings`' prefix:
/// letters and results to `out`, problems and summaries to `err`. `shutdown`
/// stops a replay between two letters.
///
/// # Errors
/// [`DeadLettersError`]; each variant has its
/// [`exit_code`](DeadLettersError::exit_code). An `Ok` code may still say
/// that not everything was done (a replay's [`ReplayReport::exit_code`]).
pub async fn run<O: Write, E: Write>(
    settings: &Settings,
    command: &Command,
    out: &mut O,
    err: &mut E,
    shutdown: CancellationToken,
) -> Result<u8, DeadLettersError> {
    let topology = Topology::new(&settings.topology.prefix);
    let queue = topology.dead_letter_queue();
    if let Command::Purge { yes: false } = command {
        return Err(DeadLettersError::NotConfirmed { queue });
    }
    let name = format!("greetings-dead-letters {}", settings.topology.prefix);
    let connection = amqp::connect(&settings.amqp, &name).await?;
    let result = async {
        let letters = count(&connection, &queue, &settings.topology.prefix).await?;
        match command {
            Command::List { json, limit } => {
                let options = list::Options {
                    json: *json,
                    limit: *limit,
                };
                list::list(&connection, &queue, letters, options, out, err).await?;
                Ok(exit::OK)
            }
            Command::Replay(args) => {
                let exchange = topology.exchange();
                check_exchange(&connection, &exchange).await?;
                let selection = args.selection();
                let plan = replay::Plan {
                    queue: &queue,
                    topology: &topology,
                    exchange: &exchange,
                    letters_at_start: letters,
                    selection: &selection,
                };
                let report = replay::replay(&connection, plan, out, err, &shutdown).await?;
                Ok(report.exit_code())
            }
            Command::Purge { .. } => {
                let channel = connection
                    .create_channel()
                    .await
                    .map_err(broker("opening a channel"))?;
                let purged = channel
                    .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
                    .await
                    .map_err(broker("purging the dead-letter queue"))?;
                let _ = channel.close(200, "purged".into()).await;
                let letters = if purged == 1 { "letter" } else { "letters" };
                writeln!(out, "purged {purged} {letters} from {queue}")?;
                Ok(exit::OK)
            }
        }
    }
    .await;
    let _ = tokio::time::timeout(
        rabbit_gather::timing::CLIENT_CLOSE_TIMEOUT,
        connection.close(200, "done".into()),
    )
    .await;
    result
}

/// Letters ready in `queue` (a passive declare, on a channel of its own as
/// a missing queue closes it).
async fn count(
    connection: &Connection,
    queue: &str,
    prefix: &str,
) -> Result<u32, DeadLettersError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(broker("opening a channel"))?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
    {
        Ok(declared) => {
            let _ = channel.close(200, "counted".into()).await;
            Ok(declared.message_count())
        }
        Err(error) if is_not_found(&error) => Err(DeadLettersError::MissingQueue {
            queue: queue.to_owned(),
            prefix: prefix.to_owned(),
        }),
        Err(error) => Err(broker("checking the dead-letter queue")(error)),
    }
}

/// Fails unless `exchange` exists (a passive declare: replaying never
/// creates it, since a fresh exchange has no queue bound anyway).
async fn check_exchange(connection: &Connection, exchange: &str) -> Result<(), DeadLettersError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(broker("opening a channel"))?;
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    match channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Fanout,
            passive,
            FieldTable::default(),
        )
        .await
    {
        Ok(()) => {
            let _ = channel.close(200, "checked".into()).await;
            Ok(())
        }
        Err(error) if is_not_found(&error) => Err(DeadLettersError::MissingExchange {
            exchange: exchange.to_owned(),
        }),
        Err(error) => Err(broker("checking the request exchange")(error)),
    }
}

fn is_not_found(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(e)
            if matches!(e.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
    )
}

/// Puts every letter still held on `channel` (taken up to `last_tag` and not
/// acked) back in its place in the queue, then closes the channel. Should
/// either step fail, the broker requeues them anyway when the channel or
/// connection goes.
async fn requeue_held(channel: &Channel, last_tag: Option<u64>) {
    if let Some(tag) = last_tag {
        let requeue = BasicNackOptions {
            multiple: true,
            requeue: true,
        };
        if let Err(error) = channel.basic_nack(tag, requeue).await {
            tracing::debug!(%error, "requeueing held letters; closing the channel requeues them");
        }
    }
    // The close is answered after the broker has handled the acks and nacks
    // before it.
    if let Err(error) = channel.close(200, "done".into()).await {
        tracing::debug!(%error, "closing the channel that held letters");
    }
}
