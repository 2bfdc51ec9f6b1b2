//! [`run`]: one run of the producer, from a stream of names to the
//! results in input order and a [`Summary`]; and [`print_responders`].

use std::{
    io::Write,
    sync::atomic::{AtomicBool, Ordering},
};

use futures::{FutureExt, StreamExt};
use rabbit_gather::shutdown::CancellationToken;
use rabbit_gather::{
    Settings,
    protocol::{Contract, Name, Outcome},
    rpc::{self, CallOptions, Called, ReconnectingClient, RpcError, Until},
};

use crate::{
    attached,
    error::ProducerError,
    input::Names,
    latency::{self, Latency},
    output::{self, Format},
    progress,
    sinks::Sinks,
    summary::Summary,
};

/// Calls every consumer for each name of `names`, at most
/// `settings.rpc.concurrency` names in flight, and writes each result in input
/// order as soon as it and every name before it are done. Stops reading input
/// when `shutdown` is cancelled, and finishes the names already in flight.
///
/// At the end, interrupted or not, writes the [`Summary`] as the last line of
/// [`Format::Json`] output and logs it at `info`. A run that fails writes no
/// summary: the error is its result, and the missing last line tells a reader
/// of the output that it was cut short.
///
/// # Errors
/// [`ProducerError`] when the broker is unreachable, the connection is lost,
/// no consumer queue is bound (at once, not after a timeout), or output fails.
pub async fn run<O: Write, E: Write>(
    settings: &Settings,
    names: Names,
    format: Format,
    sinks: &mut Sinks<O, E>,
    shutdown: CancellationToken,
) -> Result<Summary, ProducerError> {
    // Words named in `rpc.expect` are checked for a consumer while the
    // client connects; those of a roll call (`all`) are live by definition.
    let named = settings.rpc.expect != [EXPECT_ALL];
    let (client, unattached) = tokio::join!(
        ReconnectingClient::connect_with(settings, Contract::GREETINGS),
        async {
            if named {
                attached::unattached(settings, &settings.rpc.expect).await
            } else {
                Vec::new()
            }
        }
    );
    let client = client?;
    // No expected word has a queue: the first publish is then most likely
    // unroutable, and its one line (exit 5) says it all.
    let none_declared =
        unattached.len() == settings.rpc.expect.len() && unattached.iter().all(|u| u.no_queue);
    let warned = sinks.progress.suspend(|| {
        unattached
            .iter()
            .filter(|_| !none_declared)
            .try_for_each(|u| writeln!(sinks.err, "producer: {}", u.warning()))
    });
    let unattached: Vec<String> = unattached.into_iter().map(|u| u.word).collect();
    let result = match (warned, expected(&client, settings).await) {
        (Err(error), _) => Err(error.into()),
        (Ok(()), Ok(expect)) => {
            let expected = output::Expected {
                words: &expect,
                timeout: settings.rpc.timeout,
                unattached: &unattached,
            };
            call_all(&client, settings, &expected, names, format, sinks, shutdown).await
        }
        (Ok(()), Err(error)) => Err(error),
    };
    let stats = client.stats();
    client.close().await;
    sinks.progress.finish_and_clear();
    let mut summary = result?;
    summary.stats = stats;
    output::write_summary(&mut sinks.out, format, &summary)?;
    sinks.out.flush()?;
    log_summary(&summary);
    Ok(summary)
}

/// The summary for humans, on stderr at `info` (shown with
/// `RUST_LOG=producer=info`): the figures of the JSON summary and a few more
/// counters of the client. Percentiles are absent when no name was sent.
fn log_summary(summary: &Summary) {
    let stats = &summary.stats;
    let ms = |pick: fn(&Latency) -> std::time::Duration| {
        summary.latency.as_ref().map(|l| output::millis(pick(l)))
    };
    tracing::info!(
        sent = summary.sent,
        complete = summary.complete,
        incomplete = summary.incomplete,
        invalid = summary.invalid,
        error_replies = summary.error_replies,
        overloaded = summary.overloaded,
        interrupted = summary.interrupted,
        p50_ms = ms(|l| l.p50),
        p90_ms = ms(|l| l.p90),
        p99_ms = ms(|l| l.p99),
        max_ms = ms(|l| l.max),
        in_flight = stats.in_flight,
        stray = stats.stray,
        duplicates = stats.duplicates,
        malformed = stats.malformed,
        retries = stats.retries,
        reconnects = stats.reconnects,
        "run statistics"
    );
}

/// The value of `rpc.expect` (`--expect`) that stands for every live word.
pub const EXPECT_ALL: &str = "all";

/// The words each name waits for: `rpc.expect`, or with `all`, the words
/// live now (a roll call, once per run: a word that stops during the run
/// is named as missing, one that starts is printed when it answers in time).
///
/// # Errors
/// [`ProducerError::NoResponders`] when `all` finds none.
async fn expected(
    client: &ReconnectingClient,
    settings: &Settings,
) -> Result<Vec<String>, ProducerError> {
    if settings.rpc.expect != [EXPECT_ALL] {
        return Ok(settings.rpc.expect.clone());
    }
    let live = live_words(client, settings).await?;
    tracing::info!(?live, "the live words, from a roll call");
    Ok(live)
}

/// The words live now, from a roll call within `rpc.timeout`.
///
/// # Errors
/// [`ProducerError::NoResponders`] when none answers.
async fn live_words(
    client: &ReconnectingClient,
    settings: &Settings,
) -> Result<Vec<String>, ProducerError> {
    let live = client
        .responders(settings.rpc.timeout, rpc::ROLL_CALL_STALL)
        .await?;
    if live.is_empty() {
        return Err(ProducerError::NoResponders(settings.rpc.timeout));
    }
    Ok(live)
}

/// Prints the words live now, one per line, sorted (`producer
/// --responders`).
///
/// # Errors
/// As [`run`], and [`ProducerError::NoResponders`] when none answers.
pub async fn print_responders<O: Write>(
    settings: &Settings,
    out: &mut O,
) -> Result<(), ProducerError> {
    let client = ReconnectingClient::connect_with(settings, Contract::GREETINGS).await?;
    let live = live_words(&client, settings).await;
    client.close().await;
    for word in live? {
        writeln!(out, "{word}")?;
    }
    Ok(())
}

async fn call_all<O: Write, E: Write>(
    client: &ReconnectingClient,
    settings: &Settings,
    expected: &output::Expected<'_>,
    names: Names,
    format: Format,
    sinks: &mut Sinks<O, E>,
    shutdown: CancellationToken,
) -> Result<Summary, ProducerError> {
    let interrupted = AtomicBool::new(false);
    let stop = async {
        shutdown.cancelled().await;
        interrupted.store(true, Ordering::Relaxed);
    };
    let expect = expected.words;
    let options = CallOptions {
        until: Until::All(expect.to_vec()),
        timeout: settings.rpc.timeout,
        retries: settings.rpc.retries,
        batch: settings.rpc.batch,
        concurrency: settings.rpc.concurrency,
    };
    let mut results = rpc::call_each(client, names.take_until(Box::pin(stop)), &options);

    let mut summary = Summary::default();
    let mut timings = latency::Recorder::new();
    let mut paced = progress::Paced::new();
    let result: Result<(), ProducerError> = loop {
        // A buffered stdout goes out whenever no further result is ready:
        // in bulk one write per burst of results, not one per line, and a
        // reader waiting on a line (one name in flight) never waits on the
        // buffer.
        let next = match results.next().now_or_never() {
            Some(next) => next,
            None => {
                if let Err(e) = sinks.out.flush() {
                    break Err(e.into());
                }
                results.next().await
            }
        };
        let Some(item) = next else {
            break Ok(());
        };
        sinks.progress.inc(1);
        let Called {
            request: name,
            result,
            took,
        }: Called<Name, String> = match item {
            Ok(called) => called,
            Err(invalid) => {
                summary.invalid += 1;
                let Sinks { out, err, progress } = sinks;
                if let Err(e) = paced.write(progress, out, err, |out, err| {
                    // Earlier names' lines first (stdout may be buffered).
                    out.flush()?;
                    writeln!(err, "producer: {invalid}")
                }) {
                    break Err(e.into());
                }
                continue;
            }
        };
        summary.sent += 1;
        timings.record(took);
        let gathered = match result {
            Ok(gathered) => gathered,
            Err(RpcError::Nacked) => {
                summary.incomplete += 1;
                summary.overloaded += 1;
                let Sinks { out, err, progress } = sinks;
                if let Err(e) = paced.write(progress, out, err, |mut out, mut err| {
                    output::write_overloaded(&mut out, &mut err, format, &name, expect)
                }) {
                    break Err(e.into());
                }
                continue;
            }
            Err(fatal) => break Err(fatal.into()),
        };
        if gathered.is_complete() {
            summary.complete += 1;
        } else {
            summary.incomplete += 1;
        }
        if gathered
            .replies
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Error { .. }))
        {
            summary.error_replies += 1;
        }
        let Sinks { out, err, progress } = sinks;
        if let Err(e) = paced.write(progress, out, err, |mut out, mut err| {
            output::write_result(&mut out, &mut err, format, &name, expected, &gathered)
        }) {
            break Err(e.into());
        }
    };
    // What was collected for the names done is shown, even before an error.
    let Sinks { out, err, progress } = sinks;
    paced.flush(progress, out, err)?;
    out.flush()?;
    result?;
    summary.interrupted = interrupted.load(Ordering::Relaxed);
    summary.latency = timings.latency();
    Ok(summary)
}
