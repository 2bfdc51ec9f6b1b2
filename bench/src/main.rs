//! `bench`: throughput and latency of the greetings RPC system against the
//! local broker, beside a raw-broker ceiling lane, with sweeps and a plot.
//!
//! ```text
//! bench --spawn-consumers --baseline           # system vs ceiling, A B A B
//! bench --spawn-consumers --sweep              # prefetch x in-flight x replicas table
//! bench --spawn-consumers --baseline --plot latency.svg
//! bench --memory                               # bytes per request in flight
//! bench --spawn-consumers --batching --batch-plot batching.svg
//! bench stock --warehouses 2 -n 20000          # the stock example, in process
//! ```

mod batching;
mod echo;
mod lanes;
mod load;
mod memory;
mod peers;
mod plot;
mod procs;
mod report;
mod stock;

use std::{alloc::System, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use lanes::{Deployment, Lane, ResponderArgs};
use procs::Children;
use rabbit_gather::{Settings, cli::SharedArgs, duration, settings::ReplyQueue};
use report::{Row, UsageMeter};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// Counts allocations, for the exact heap cost of a request in flight.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes allocated and not yet freed by this process.
fn live_heap_bytes() -> u64 {
    let stats = ALLOCATOR.stats();
    u64::try_from(
        stats
            .bytes_allocated
            .saturating_sub(stats.bytes_deallocated),
    )
    .unwrap_or(u64::MAX)
}

/// Benchmarks the greetings RPC system (see docs/performance.md).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    shared: SharedArgs,
    /// Measured requests per run.
    #[arg(short = 'n', long, default_value_t = 20_000)]
    requests: u64,
    /// Unmeasured requests before each run.
    #[arg(long, default_value_t = 2_000)]
    warmup: u64,
    /// Requests in flight (closed loop).
    #[arg(short, long, default_value_t = 64)]
    concurrency: usize,
    /// Requests per second (open loop) instead of a closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Per-call deadline.
    #[arg(long, value_parser = duration::parse, default_value = "10s")]
    timeout: Duration,
    #[command(flatten)]
    responders: ResponderArgs,
    /// Consumer processes per word.
    #[arg(long, default_value_t = 1)]
    replicas: u16,
    /// Start hello and goodbye consumer processes (else they must be running).
    #[arg(long)]
    spawn_consumers: bool,
    /// Also run the ceiling lane, alternating with the system lane.
    #[arg(long)]
    baseline: bool,
    /// With --baseline, also one run of the ceiling lane with requests
    /// neither confirmed nor mandatory (`ceiling-unconfirmed`): what weaker
    /// request guarantees buy, beside peers that have them.
    #[arg(long)]
    unconfirmed_ceiling: bool,
    /// System/ceiling pairs to run with --baseline.
    #[arg(long, default_value_t = 3)]
    pairs: usize,
    /// Transient requests (delivery mode 1) in both lanes.
    #[arg(long)]
    transient: bool,
    /// Sweep prefetch (1,8,32,128) x in-flight (1,16,64,512) x replicas (1,2,4).
    #[arg(long)]
    sweep: bool,
    /// Draw latency percentiles against throughput over a sweep of in-flight values.
    #[arg(long, value_name = "SVG")]
    plot: Option<std::path::PathBuf>,
    /// In-flight values for --plot.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64,256")]
    plot_concurrency: Vec<usize>,
    /// Measure memory per request in flight (10,000 unanswered requests).
    #[arg(long)]
    memory: bool,
    /// Peer lanes to run after the system/ceiling pairs, at the same load
    /// (seed-py: the Python seed design on aio-pika; ruststream: the
    /// ruststream-lapin framework at its defaults; ruststream-confirmed: the
    /// same with persistent requests and confirmed replies).
    #[arg(long, value_enum, value_delimiter = ',')]
    peers: Vec<peers::Peer>,
    /// Batching lane: the `producer` binary fed names on stdin at each
    /// --batch-sizes (names/s), then latency with one name in flight at
    /// --batch 1 and 100 alternating (--pairs times).
    #[arg(long)]
    batching: bool,
    /// Batch sizes of the batching lane.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    batch_sizes: Vec<usize>,
    /// Names per bulk run of the batching lane.
    #[arg(long, default_value_t = 50_000)]
    batch_names: u64,
    /// Names per one-in-flight latency run of the batching lane (after 200
    /// unmeasured).
    #[arg(long, default_value_t = 2_000)]
    latency_names: u64,
    /// Then one bulk run of this many names at --memory-batch, for names/s
    /// over a long input and the producer's and consumers' memory (0: none).
    #[arg(long, default_value_t = 0)]
    memory_names: u64,
    /// Batch size of the --memory-names run.
    #[arg(long, default_value_t = 1000)]
    memory_batch: usize,
    /// Draw names/s against the batch size.
    #[arg(long, value_name = "SVG")]
    batch_plot: Option<std::path::PathBuf>,
    /// Where the replies come back to, in both the system and the ceiling
    /// lane (overrides `rpc.reply_queue`).
    #[arg(long, value_enum)]
    reply_queue: Option<ReplyQueue>,
    /// Also append every result to FILE as JSON lines, after one line that
    /// says what was run (scripts/bench.sh's goals table reads these).
    #[arg(long, value_name = "FILE")]
    record: Option<std::path::PathBuf>,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// (internal) An echo responder of the ceiling lane.
    #[command(hide = true)]
    Echo {
        #[arg(long)]
        queue: String,
        #[arg(long)]
        prefetch: u16,
        #[arg(long)]
        concurrency: u16,
        #[arg(long)]
        amqp_url: String,
        /// Where replies to reply queues go (the lane's reply exchange).
        #[arg(long)]
        reply_exchange: String,
    },
    /// The stock example: in-process warehouses, calls with Until::All and
    /// Until::Live (see bench/src/stock.rs).
    Stock(stock::StockArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    rabbit_gather::telemetry::init(tracing::Level::WARN);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Mode::Echo {
        queue,
        prefetch,
        concurrency,
        amqp_url,
        reply_exchange,
    }) = &cli.mode
    {
        return echo::respond(amqp_url, queue, *prefetch, *concurrency, reply_exchange).await;
    }
    let mut settings = cli.shared.load()?;
    if let Some(reply_queue) = cli.reply_queue {
        settings.rpc.reply_queue = reply_queue;
    }
    if let Some(path) = &cli.record {
        let header = serde_json::json!({
            "kind": "run",
            "args": std::env::args().skip(1).collect::<Vec<_>>(),
            "reply_queue": settings.rpc.reply_queue.as_str(),
        });
        report::record_to(path, &header)?;
    }
    if let Some(Mode::Stock(args)) = &cli.mode {
        return stock::run(settings, args, cli.json).await;
    }
    // The bench owns (and deletes afterwards) the queues under a private
    // prefix; with consumers already running it uses theirs and deletes only
    // its ceiling lane's.
    let owns_system_lane = cli.spawn_consumers || cli.memory;
    if owns_system_lane {
        settings.topology.prefix = format!(
            "{}.bench.{}",
            cli.shared.prefix.as_deref().unwrap_or("greetings"),
            std::process::id()
        );
    }
    settings.rpc.timeout = cli.timeout;
    settings.rpc.persistent = !cli.transient;
    settings.validate()?;
    let bench = Bench {
        cli: &cli,
        settings: &settings,
    };
    let result = if cli.memory {
        memory::per_request(&settings).await
    } else if cli.batching {
        bench.batching().await
    } else if cli.sweep {
        bench.sweep().await
    } else if let Some(path) = &cli.plot {
        bench.plot(path).await
    } else {
        bench.compare().await
    };
    lanes::clean_up(&settings, owns_system_lane).await?;
    result
}

struct Bench<'a> {
    cli: &'a Cli,
    settings: &'a Settings,
}

impl Bench<'_> {
    fn deployment(&self, prefetch: u16, replicas: u16) -> Deployment {
        Deployment {
            prefetch,
            concurrency: self.cli.responders.concurrency_at(prefetch),
            replicas,
        }
    }

    fn header(&self) {
        if !self.cli.json {
            println!("{}", report::HEADER);
        }
    }

    fn emit(&self, row: &Row) -> anyhow::Result<()> {
        report::emit(row, self.cli.json)
    }

    async fn start(&self, lane: &str, deployment: Deployment) -> anyhow::Result<(Lane, Children)> {
        match lane {
            "system" => lanes::system(self.settings, deployment, self.cli.spawn_consumers).await,
            "ceiling" => lanes::baseline(self.settings, deployment, true).await,
            "ceiling-unconfirmed" => lanes::baseline(self.settings, deployment, false).await,
            other => anyhow::bail!("no lane called {other}"),
        }
    }

    /// Runs one lane once at `in_flight` (or the open-loop rate).
    async fn measure(
        &self,
        name: &'static str,
        lane: &Lane,
        children: &Children,
        deployment: Deployment,
        in_flight: usize,
    ) -> anyhow::Result<Row> {
        let meter = UsageMeter::start(children);
        let run = match self.cli.rate {
            Some(rate) => {
                load::open(
                    lane,
                    self.cli.requests,
                    self.cli.warmup,
                    rate,
                    self.cli.timeout,
                    100_000,
                )
                .await?
            }
            None => {
                load::closed(
                    lane,
                    self.cli.requests,
                    self.cli.warmup,
                    in_flight,
                    self.cli.timeout,
                )
                .await?
            }
        };
        let usage = meter.usage(children);
        Ok(Row::new(
            name,
            deployment,
            in_flight,
            self.cli.rate.unwrap_or(0.0),
            &run,
            lane.duplicates(),
            usage,
        ))
    }

    async fn once(
        &self,
        name: &'static str,
        deployment: Deployment,
        in_flight: usize,
    ) -> anyhow::Result<Row> {
        let (lane, children) = self.start(name, deployment).await?;
        let row = self
            .measure(name, &lane, &children, deployment, in_flight)
            .await?;
        lane.close().await;
        drop(children);
        self.emit(&row)?;
        Ok(row)
    }

    /// The system lane, and with --baseline the ceiling lane, alternating
    /// A B A B; prints the ratio of each pair and their median.
    async fn compare(&self) -> anyhow::Result<()> {
        let deployment = self.deployment(self.cli.responders.prefetch, self.cli.replicas);
        self.header();
        if !self.cli.baseline {
            self.once("system", deployment, self.cli.concurrency)
                .await?;
            return Ok(());
        }
        let (mut throughput, mut p50, mut system_rps) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..self.cli.pairs {
            let system = self
                .once("system", deployment, self.cli.concurrency)
                .await?;
            let ceiling = self
                .once("ceiling", deployment, self.cli.concurrency)
                .await?;
            throughput.push(system.rps / ceiling.rps);
            system_rps.push(system.rps);
            p50.push(system.p50_us as f64 / ceiling.p50_us.max(1) as f64);
        }
        let system_rps = {
            let mut rps = system_rps;
            report::median(&mut rps)
        };
        let unconfirmed_rps = if self.cli.unconfirmed_ceiling {
            let row = self
                .once("ceiling-unconfirmed", deployment, self.cli.concurrency)
                .await?;
            Some(row.rps)
        } else {
            None
        };
        let mut peer_ratios = serde_json::Map::new();
        if !self.cli.peers.is_empty() && !self.cli.json {
            println!("{}", peers::HEADER);
        }
        for &peer in &self.cli.peers {
            let row = peers::run(
                peer,
                self.settings,
                self.cli.concurrency,
                self.cli.requests,
                self.cli.warmup,
                self.cli.timeout,
            )
            .await?;
            report::out(self.cli.json, &row, || peers::line(&row))?;
            peer_ratios.insert(row.lane.clone(), (system_rps / row.rps).into());
        }
        let summary = serde_json::json!({
            "kind": "compare",
            "in_flight": self.cli.concurrency,
            "system_rps_median": system_rps,
            "ceiling_unconfirmed_rps": unconfirmed_rps,
            "system_over_peer_throughput": peer_ratios,
            "pairs": throughput.len(),
            "throughput_ratios": throughput,
            "p50_ratios": p50,
            "median_throughput_ratio": report::median(&mut throughput.clone()),
            "median_p50_ratio": report::median(&mut p50.clone()),
        });
        report::out(self.cli.json, &summary, || {
            let list = |v: &[f64]| {
                v.iter()
                    .map(|r| format!("{r:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let mut human = format!(
                "system/ceiling throughput per pair: {} -> median {:.2} ({:.0}% of what this broker can do here)\n\
                 system/ceiling p50 latency per pair: {} -> median {:.2}",
                list(&throughput),
                report::median(&mut throughput.clone()),
                100.0 * report::median(&mut throughput.clone()),
                list(&p50),
                report::median(&mut p50.clone())
            );
            if let Some(rps) = unconfirmed_rps {
                human.push_str(&format!(
                    "\nsystem (median of the pairs) over ceiling-unconfirmed: {:.2}x the throughput",
                    system_rps / rps
                ));
            }
            for (lane, ratio) in &peer_ratios {
                human.push_str(&format!(
                    "\nsystem (median of the pairs) over {lane}: {:.2}x the throughput",
                    ratio.as_f64().unwrap_or(f64::NAN)
                ));
            }
            human
        })
    }

    /// The batching lane (see [`batching`]): bulk runs per batch size, the
    /// one-in-flight latency pairs, the memory run and the plot.
    async fn batching(&self) -> anyhow::Result<()> {
        let deployment = self.deployment(self.cli.responders.prefetch, self.cli.replicas);
        let (lane, children) = self.start("system", deployment).await?;
        let result = self.batching_runs(&children).await;
        lane.close().await;
        drop(children);
        result
    }

    fn emit_bulk(&self, bulk: &batching::Bulk) -> anyhow::Result<()> {
        report::out(self.cli.json, bulk, || batching::line(bulk))
    }

    async fn batching_runs(&self, consumers: &Children) -> anyhow::Result<()> {
        if !self.cli.json {
            println!("{}", batching::HEADER);
        }
        let mut runs = Vec::new();
        for &batch in &self.cli.batch_sizes {
            let bulk = batching::bulk(
                self.settings,
                consumers,
                batch,
                self.cli.concurrency,
                self.cli.batch_names,
            )
            .await?;
            self.emit_bulk(&bulk)?;
            runs.push(bulk);
        }
        let rate = |batch: usize| {
            runs.iter()
                .find(|b| b.batch == batch)
                .map(|b| b.names_per_s)
        };
        let mut over_batch_1 = serde_json::Map::new();
        if let Some(one) = rate(1) {
            for bulk in runs.iter().filter(|b| b.batch > 1) {
                over_batch_1.insert(bulk.batch.to_string(), (bulk.names_per_s / one).into());
            }
        }
        let ratios = self.one_in_flight_pairs().await?;
        let median_ratio = report::median(&mut ratios.clone());
        let mut long_run_over_batch_1 = None;
        if self.cli.memory_names > 0 {
            let bulk = batching::bulk(
                self.settings,
                consumers,
                self.cli.memory_batch,
                self.cli.concurrency,
                self.cli.memory_names,
            )
            .await?;
            self.emit_bulk(&bulk)?;
            long_run_over_batch_1 = rate(1).map(|one| bulk.names_per_s / one);
        }
        let summary = serde_json::json!({
            "kind": "batching",
            "names_per_s_over_batch_1": over_batch_1,
            "long_run_batch": self.cli.memory_batch,
            "long_run_over_batch_1": long_run_over_batch_1,
            "one_in_flight_p50_ratios_batch_100_over_1": ratios,
            "median_one_in_flight_p50_ratio": median_ratio,
        });
        report::out(self.cli.json, &summary, || {
            let mut human = String::new();
            for (batch, ratio) in &over_batch_1 {
                human.push_str(&format!(
                    "names/s at --batch {batch} over --batch 1: {:.1}x\n",
                    ratio.as_f64().unwrap_or(f64::NAN)
                ));
            }
            if let Some(ratio) = long_run_over_batch_1 {
                human.push_str(&format!(
                    "names/s of the {}-name run at --batch {} over --batch 1: {ratio:.1}x\n",
                    self.cli.memory_names, self.cli.memory_batch
                ));
            }
            let list: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
            human.push_str(&format!(
                "one name in flight, p50 at --batch 100 over --batch 1 per pair: {} -> median {median_ratio:.2}",
                list.join(" ")
            ));
            human
        })?;
        if let Some(path) = &self.cli.batch_plot {
            let title = format!(
                "names/s from producer stdin vs --batch ({} requests in flight, prefetch {})",
                self.cli.concurrency, self.cli.responders.prefetch
            );
            let points: Vec<_> = runs.iter().map(|b| (b.batch, b.names_per_s)).collect();
            plot::write_batching_plot(path, &title, &points)?;
            eprintln!("bench: wrote {}", path.display());
        }
        Ok(())
    }

    /// Latency with one name in flight at --batch 1 and 100, alternating
    /// --pairs times; the p50 ratio (100 over 1) of each pair.
    async fn one_in_flight_pairs(&self) -> anyhow::Result<Vec<f64>> {
        let mut ratios = Vec::new();
        for _ in 0..self.cli.pairs {
            let mut p50 = [0.0; 2];
            for (i, batch) in [1, 100].into_iter().enumerate() {
                let h = batching::one_in_flight(self.settings, batch, 200, self.cli.latency_names)
                    .await?;
                p50[i] = h.value_at_quantile(0.5) as f64;
                let ms = |us: u64| us as f64 / 1000.0;
                let row = serde_json::json!({
                    "lane": "one-in-flight", "batch": batch, "names": h.len(),
                    "p50_us": h.value_at_quantile(0.5), "p90_us": h.value_at_quantile(0.9),
                    "p99_us": h.value_at_quantile(0.99), "max_us": h.max(),
                });
                report::out(self.cli.json, &row, || {
                    format!(
                        "one name in flight, --batch {batch:>3}: p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms ({} names)",
                        ms(h.value_at_quantile(0.5)),
                        ms(h.value_at_quantile(0.9)),
                        ms(h.value_at_quantile(0.99)),
                        ms(h.max()),
                        h.len()
                    )
                })?;
            }
            ratios.push(p50[1] / p50[0].max(1.0));
        }
        Ok(ratios)
    }

    /// prefetch x replicas x in-flight, consumers started once per
    /// (prefetch, replicas).
    async fn sweep(&self) -> anyhow::Result<()> {
        self.header();
        for prefetch in [1, 8, 32, 128] {
            for replicas in [1, 2, 4] {
                let deployment = self.deployment(prefetch, replicas);
                let (lane, children) = self.start("system", deployment).await?;
                for in_flight in [1, 16, 64, 512] {
                    let row = self
                        .measure("system", &lane, &children, deployment, in_flight)
                        .await?;
                    self.emit(&row)?;
                }
                lane.close().await;
                drop(children);
            }
        }
        Ok(())
    }

    /// Latency against throughput over --plot-concurrency, both lanes if
    /// --baseline.
    async fn plot(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let deployment = self.deployment(self.cli.responders.prefetch, self.cli.replicas);
        self.header();
        let mut system = Vec::new();
        let mut ceiling = Vec::new();
        for &in_flight in &self.cli.plot_concurrency {
            system.push(
                self.once("system", deployment, in_flight)
                    .await?
                    .plot_point(),
            );
            if self.cli.baseline {
                ceiling.push(
                    self.once("ceiling", deployment, in_flight)
                        .await?
                        .plot_point(),
                );
            }
        }
        let title = format!(
            "greetings RPC: latency vs throughput, {} reply queue (prefetch {}, consumer concurrency {}, {} replica(s) per word)",
            self.settings.rpc.reply_queue.as_str(),
            deployment.prefetch,
            deployment.concurrency,
            deployment.replicas
        );
        plot::write_latency_plot(path, &title, &system, &ceiling)?;
        eprintln!("bench: wrote {}", path.display());
        Ok(())
    }
}
