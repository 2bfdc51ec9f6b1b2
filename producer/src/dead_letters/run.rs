//! [`run`]: one `dead-letters` command against the dead-letter queue of a
//! prefix, and the passive checks it makes first.

use std::io::Write;

use lapin::{
    Connection, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueDeclareOptions, QueuePurgeOptions},
    protocol::{AMQPErrorKind, AMQPSoftError},
    types::FieldTable,
};
use rabbit_gather::{Settings, amqp, shutdown::CancellationToken, topology::Topology};

use super::{
    cli::Command,
    error::{DeadLettersError, broker},
    exit, list, replay,
};

/// Runs `command` against the dead-letter queue of `settings`' prefix:
/// letters and results to `out`, problems and summaries to `err`. `shutdown`
/// stops a replay between two letters.
///
/// # Errors
/// [`DeadLettersError`]; each variant has its
/// [`exit_code`](DeadLettersError::exit_code). An `Ok` code may still say
/// that not everything was done (a replay's [`ReplayReport::exit_code`](replay::ReplayReport::exit_code)).
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
