//! `peer`: the greetings scatter-gather written on the `ruststream-lapin`
//! framework (0.7.2, on lapin 4), as a peer lane of the benchmark (`bench
//! --peers ruststream,ruststream-confirmed`, docs/performance.md): with the
//! framework's defaults, or with `--confirmed` as close to the system's
//! guarantees as its API goes (persistent requests that expire at their
//! deadline, replies confirmed before the ack; its requester has no publisher
//! confirms and no `mandatory`).
//!
//! ```text
//! peer respond --amqp-url URL --prefix P --word hello [--confirmed]
//! peer request --amqp-url URL --prefix P --requests N --warmup W --in-flight C --timeout-ms T [--confirmed]
//! ```
//!
//! The framework's request/reply ([`RequestReply::request`]) awaits one
//! reply per request, so a call sends the name to `P.hello` and `P.goodbye`
//! (two requests through the default exchange, concurrently) and ends when
//! both replies are in. The guarantees are the framework's defaults, listed
//! in this folder's README.

use std::{
    process::ExitCode,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use lapin::{Connection, ConnectionProperties, options::QueueDeclareOptions, types::FieldTable};
use ruststream::{ConnectedBroker, OutgoingMessage};
use ruststream_lapin::{AmqpError, LapinRequester, prelude::*};
use serde::{Deserialize, Serialize};

/// The greetings scatter-gather on ruststream-lapin (benchmark peer lane).
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Answer `WORD NAME` on `P.WORD` until SIGTERM/SIGINT.
    Respond {
        #[arg(long)]
        amqp_url: String,
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        word: String,
        /// Replies through the framework's confirms publisher: the request
        /// is acked only once its reply is confirmed (a failed reply
        /// requeues it).
        #[arg(long)]
        confirmed: bool,
    },
    /// Closed-loop calls; prints one JSON line.
    Request {
        #[arg(long)]
        amqp_url: String,
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        requests: u64,
        #[arg(long, default_value_t = 0)]
        warmup: u64,
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// Persistent requests (delivery mode 2) that expire at the deadline;
        /// the lane is named `ruststream-confirmed`.
        #[arg(long)]
        confirmed: bool,
    },
}

const WORDS: [&str; 2] = ["hello", "goodbye"];

#[derive(Debug, Serialize, Deserialize)]
struct Greet {
    name: String,
}

/// The reply goes where the request asked (direct reply-to).
#[derive(Debug, Serialize, Deserialize, Outgoing)]
struct Greeting {
    consumer: String,
    greeting: String,
}

/// This responder's word and queue, set once before the app starts.
static WORD: OnceLock<(String, String)> = OnceLock::new();

fn queue_name() -> String {
    WORD.get()
        .map(|(_, queue)| queue.clone())
        .unwrap_or_default()
}

#[subscriber(
    RabbitQueue::new(queue_name()).prefetch(nonzero!(1)),
    reply("greetings.peer.unrouted")
)]
async fn greet(request: &Greet) -> Greeting {
    let word = WORD
        .get()
        .map(|(word, _)| word.as_str())
        .unwrap_or_default();
    Greeting {
        consumer: word.to_owned(),
        greeting: format!("{word} {}", request.name),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("peer: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.mode {
            Mode::Respond {
                amqp_url,
                prefix,
                word,
                confirmed,
            } => respond(amqp_url, &prefix, word, confirmed).await,
            Mode::Request {
                amqp_url,
                prefix,
                requests,
                warmup,
                in_flight,
                timeout_ms,
                confirmed,
            } => {
                let load = Load {
                    requests,
                    warmup,
                    in_flight: in_flight.max(1),
                    timeout: Duration::from_millis(timeout_ms),
                };
                request(&amqp_url, &prefix, load, confirmed).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("peer: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn respond(url: String, prefix: &str, word: String, confirmed: bool) -> anyhow::Result<()> {
    let queue = format!("{prefix}.{word}");
    WORD.set((word, queue))
        .map_err(|_| anyhow::anyhow!("word set twice"))?;
    let broker = LapinBroker::new(url).declare_topology(true);
    RustStream::new(AppInfo::new("greetings-peer", "0.1.0"))
        .with_broker(broker, |b| {
            // The reply policies are different types, hence two mounts.
            if confirmed {
                b.include(greet)
                    .out_reply(Publish::default().confirms())
                    .transform(DirectReplyTo);
            } else {
                b.include(greet)
                    .out_reply(Publish::default())
                    .transform(DirectReplyTo);
            }
        })
        .run()
        .await?;
    Ok(())
}

/// One measured run's shape.
struct Load {
    requests: u64,
    warmup: u64,
    in_flight: usize,
    timeout: Duration,
}

/// Waits (up to 30 s) until every responder queue has a consumer.
async fn wait_for_responders(url: &str, prefix: &str) -> anyhow::Result<()> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    for word in WORDS {
        let queue = format!("{prefix}.{word}");
        loop {
            let channel = connection.create_channel().await?;
            let declared = channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await;
            let _ = channel.close(200, "looked".into()).await;
            if declared.is_ok_and(|q| q.consumer_count() > 0) {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no responder consumes {queue} after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let _ = connection.close(200, "ready".into()).await;
    Ok(())
}

#[derive(Default)]
struct Tally {
    complete: AtomicU64,
    lost: AtomicU64,
    errors: AtomicU64,
}

/// One call: the name to every word's queue, both replies awaited.
async fn call(requester: &LapinRequester, prefix: &str, i: u64, timeout: Duration) -> &'static str {
    let body = match serde_json::to_vec(&Greet {
        name: format!("n{i}"),
    }) {
        Ok(body) => body,
        Err(_) => return "errors",
    };
    let queues: Vec<String> = WORDS.iter().map(|w| format!("{prefix}.{w}")).collect();
    let replies = futures::future::join_all(
        queues
            .iter()
            .map(|queue| requester.request(OutgoingMessage::new(queue, body.as_slice()), timeout)),
    )
    .await;
    let mut outcome = "complete";
    for reply in replies {
        match reply {
            Ok(_) => {}
            Err(AmqpError::RequestTimeout { .. }) => outcome = "lost",
            Err(error) => {
                eprintln!("peer: call failed: {error}");
                return "errors";
            }
        }
    }
    outcome
}

async fn closed_loop(
    requester: &LapinRequester,
    prefix: &str,
    total: u64,
    in_flight: usize,
    timeout: Duration,
    latency: Option<&std::sync::Mutex<Histogram<u64>>>,
    tally: &Tally,
) {
    let next = AtomicU64::new(0);
    let worker = || async {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= total {
                return;
            }
            let started = Instant::now();
            let outcome = call(requester, prefix, i, timeout).await;
            let counter = match outcome {
                "complete" => &tally.complete,
                "lost" => &tally.lost,
                _ => &tally.errors,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if let Some(latency) = latency {
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                if let Ok(mut h) = latency.lock() {
                    h.saturating_record(us.max(1));
                }
            }
        }
    };
    futures::future::join_all((0..in_flight).map(|_| worker())).await;
}

async fn request(url: &str, prefix: &str, load: Load, confirmed: bool) -> anyhow::Result<()> {
    let Load {
        requests,
        warmup,
        in_flight,
        timeout,
    } = load;
    wait_for_responders(url, prefix).await?;
    let connected = LapinBroker::new(url).connect().await?;
    // With --confirmed, requests are persistent and expire at the call's
    // deadline, as the system's do.
    let policy = if confirmed {
        LapinRequest::default().persistent(true).expiration(timeout)
    } else {
        LapinRequest::default()
    };
    let requester = connected.requester(policy);
    closed_loop(
        &requester,
        prefix,
        warmup,
        in_flight,
        timeout,
        None,
        &Tally::default(),
    )
    .await;
    let latency = std::sync::Mutex::new(Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?);
    let tally = Tally::default();
    let started = Instant::now();
    closed_loop(
        &requester,
        prefix,
        requests,
        in_flight,
        timeout,
        Some(&latency),
        &tally,
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let h = latency
        .into_inner()
        .map_err(|_| anyhow::anyhow!("latency lock poisoned"))?;
    let complete = tally.complete.load(Ordering::Relaxed);
    let line = serde_json::json!({
        "lane": if confirmed { "ruststream-confirmed" } else { "ruststream" },
        "in_flight": in_flight,
        "requests": requests,
        "complete": complete,
        "lost": tally.lost.load(Ordering::Relaxed),
        "errors": tally.errors.load(Ordering::Relaxed),
        "elapsed_s": elapsed,
        "rps": complete as f64 / elapsed.max(f64::EPSILON),
        "p50_us": h.value_at_quantile(0.5),
        "p90_us": h.value_at_quantile(0.9),
        "p99_us": h.value_at_quantile(0.99),
        "max_us": h.max(),
    });
    println!("{line}");
    let _ = connected.shutdown().await;
    Ok(())
}
