//! `bench stock`: the stock example (a second application built on the
//! library's public API) under load. N warehouses run in this process on a
//! fresh route; a closed loop of calls gathers every warehouse's level with
//! `Until::All(names)`, then fewer calls use `Until::Live`, which makes a
//! roll call before each call (it ends a stall of `ROLL_CALL_STALL` after
//! the last answer). Rows in the table of the other lanes; the route's
//! queues and exchanges are deleted afterwards.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use ::stock::{StockLevel, StockQuery, Warehouse, total};
use anyhow::Context as _;
use futures::{StreamExt, stream};
use lapin::{Connection, ConnectionProperties, options::QueueDeleteOptions};
use rabbit_gather::{
    Settings, duration,
    rpc::{ROLL_CALL_STALL, RpcClient, Until},
    service::{ConsumerService, ServiceError},
    shutdown::CancellationToken,
    topology::{Topology, Word},
};
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;

use crate::{
    lanes::{Deployment, ResponderArgs},
    load::Run,
    procs::Children,
    report::{self, Row, UsageMeter},
};

/// Flags of `bench stock`.
#[derive(Debug, clap::Args)]
pub(crate) struct StockArgs {
    /// Warehouses started in this process (wh1, wh2, ...); every call
    /// gathers each one's answer.
    #[arg(long, default_value_t = 2)]
    warehouses: usize,
    /// Measured calls with `Until::All(names)`.
    #[arg(short = 'n', long, default_value_t = 20_000)]
    requests: u64,
    /// Measured calls with `Until::Live` (each adds a roll call).
    #[arg(long, default_value_t = 1_000)]
    live_requests: u64,
    /// Unmeasured calls before the measured ones.
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
    /// Calls in flight (closed loop).
    #[arg(short = 'c', long, default_value_t = 64)]
    in_flight: usize,
    /// Per-call deadline.
    #[arg(long, value_parser = duration::parse, default_value = "10s")]
    timeout: Duration,
    #[command(flatten)]
    responders: ResponderArgs,
    /// Transient requests (delivery mode 1).
    #[arg(long)]
    transient: bool,
}

/// The item every call asks about; warehouse `i` (from 1) holds `i` units.
const ITEM: &str = "apple";

/// Runs `bench stock` on a route of its own, then deletes the route.
pub(crate) async fn run(
    mut settings: Settings,
    args: &StockArgs,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(args.warehouses > 0, "--warehouses must be at least 1");
    settings.topology.prefix = format!("stock.bench.{}", std::process::id());
    settings.rpc.persistent = !args.transient;
    settings.consumer.prefetch = args.responders.prefetch;
    settings.consumer.concurrency = args.responders.concurrency_at(args.responders.prefetch);
    settings.validate()?;
    let names = (1..=args.warehouses)
        .map(|i| Word::parse(&format!("wh{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let stop = CancellationToken::new();
    let mut warehouses = Vec::new();
    let result = async {
        for (units, name) in (1..).zip(&names) {
            warehouses.push(start(&settings, name, units, &stop).await?);
        }
        measure(&settings, args, json, &names).await
    }
    .await;
    stop.cancel();
    for warehouse in warehouses {
        match warehouse.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "a warehouse stopped with an error"),
            Err(error) => tracing::warn!(%error, "a warehouse task failed"),
        }
    }
    let cleaned = clean_up(&settings, &names).await;
    result.and(cleaned)
}

/// Starts warehouse `name` holding `units` of [`ITEM`]; returns once it
/// consumes.
async fn start(
    settings: &Settings,
    name: &Word,
    units: u64,
    stop: &CancellationToken,
) -> anyhow::Result<JoinHandle<Result<(), ServiceError>>> {
    let warehouse = Warehouse::new(HashMap::from([(ITEM.to_owned(), units)]));
    let service = ConsumerService::new(settings, name.clone(), warehouse);
    let mut sessions = service.sessions();
    let task = tokio::spawn(service.run(stop.clone()));
    tokio::time::timeout(Duration::from_secs(30), sessions.wait_for(|n| *n >= 1))
        .await
        .with_context(|| format!("warehouse {name} did not start consuming within 30 s"))?
        .with_context(|| format!("warehouse {name} stopped before consuming"))?;
    Ok(task)
}

/// The measured runs: `Until::All` then `Until::Live`, one row each.
async fn measure(
    settings: &Settings,
    args: &StockArgs,
    json: bool,
    names: &[Word],
) -> anyhow::Result<()> {
    let client = RpcClient::connect(settings).await?;
    let all = Until::All(names.iter().map(ToString::to_string).collect());
    let expected = Expected {
        units: (1..=u64::try_from(names.len())?).sum(),
        warehouses: names.len(),
    };
    let deployment = Deployment {
        prefetch: settings.consumer.prefetch,
        concurrency: settings.consumer.concurrency,
        replicas: 1,
    };
    let setup = serde_json::json!({
        "lane": "stock-setup", "warehouses": names.len(),
        "route": settings.topology.prefix, "roll_call_stall_ms": ROLL_CALL_STALL.as_millis(),
    });
    report::out(json, &setup, || {
        format!(
            "stock: {} warehouses in this process (their CPU counts as bench CPU), {} calls in flight; \
             stk-all = Until::All(names), stk-live = Until::Live (a roll call per call, {} ms stall)\n{}",
            names.len(),
            args.in_flight,
            ROLL_CALL_STALL.as_millis(),
            report::HEADER
        )
    })?;
    let rows = async {
        closed(
            &client,
            &all,
            expected,
            args.warmup,
            args.in_flight,
            args.timeout,
        )
        .await?;
        let all_row = timed("stk-all", deployment, args.in_flight, &client, async {
            closed(
                &client,
                &all,
                expected,
                args.requests,
                args.in_flight,
                args.timeout,
            )
            .await
        })
        .await?;
        report::emit(&all_row, json)?;
        let live_row = timed("stk-live", deployment, args.in_flight, &client, async {
            closed(
                &client,
                &Until::Live,
                expected,
                args.live_requests,
                args.in_flight,
                args.timeout,
            )
            .await
        })
        .await?;
        report::emit(&live_row, json)?;
        anyhow::Ok((all_row, live_row))
    }
    .await;
    client.close().await;
    let (all_row, live_row) = rows?;
    let ratio = all_row.rps / live_row.rps.max(f64::EPSILON);
    report::out(
        json,
        &serde_json::json!({ "kind": "stock", "stock_all_over_live_throughput": ratio }),
        || {
            format!(
                "stock: Until::All {:.0} calls/s, Until::Live {:.0} calls/s ({ratio:.1}x fewer: the roll call)",
                all_row.rps, live_row.rps
            )
        },
    )
}

/// What a complete call gathers.
#[derive(Clone, Copy)]
struct Expected {
    units: u64,
    warehouses: usize,
}

/// Runs `calls` with `until`, `in_flight` at a time; complete when every
/// warehouse answered and the total is right.
async fn closed(
    client: &RpcClient,
    until: &Until,
    expected: Expected,
    calls: u64,
    in_flight: usize,
    timeout: Duration,
) -> anyhow::Result<Run> {
    let query = StockQuery::new(ITEM)?;
    let mut run = Run::new()?;
    let started = Instant::now();
    let mut results = stream::iter(0..calls)
        .map(|_| async {
            let sent = Instant::now();
            let called = client.call::<_, StockLevel>(&query, until, timeout).await;
            (sent.elapsed(), called)
        })
        .buffer_unordered(in_flight);
    while let Some((latency, called)) = results.next().await {
        let complete = called.map(|gathered| {
            let total = total(&gathered);
            total.is_complete()
                && total.units == expected.units
                && total.answered.len() == expected.warehouses
        });
        run.record(latency, &complete.map_err(anyhow::Error::from));
    }
    run.elapsed = started.elapsed();
    Ok(run)
}

/// One measured run as a row, with the CPU and memory it used.
async fn timed(
    lane: &'static str,
    deployment: Deployment,
    in_flight: usize,
    client: &RpcClient,
    run: impl Future<Output = anyhow::Result<Run>>,
) -> anyhow::Result<Row> {
    // The warehouses run in this process: no consumer processes to count.
    let consumers = Children::default();
    let meter = UsageMeter::start(&consumers);
    let duplicates_before = client.stats().duplicates;
    let run = run.await?;
    let usage = meter.usage(&consumers);
    let duplicates = client.stats().duplicates - duplicates_before;
    Ok(Row::new(
        lane, deployment, in_flight, 0.0, &run, duplicates, usage,
    ))
}

/// Deletes the route's queues and exchanges.
async fn clean_up(settings: &Settings, names: &[Word]) -> anyhow::Result<()> {
    let url = settings.amqp.url.expose_secret().to_owned();
    let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let topology = Topology::new(&settings.topology.prefix);
    let mut queues = vec![topology.dead_letter_queue()];
    let mut exchanges = vec![
        topology.exchange(),
        topology.reply_exchange(),
        topology.dead_letter_exchange(),
    ];
    for name in names {
        queues.extend([
            topology.queue(name),
            topology.retry_queue(name),
            topology.due_queue(name),
        ]);
        exchanges.push(topology.retry_exchange(name));
    }
    for queue in queues {
        channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await?;
    }
    for exchange in exchanges {
        channel
            .exchange_delete(exchange.into(), Default::default())
            .await?;
    }
    let _ = connection.close(200, "cleaned".into()).await;
    Ok(())
}
