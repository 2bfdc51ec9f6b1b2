//! Results: one row per measured run, printed as a table for people or as
//! JSON lines for machines.

use std::{
    fs::File,
    io::Write,
    path::Path,
    sync::{Mutex, OnceLock, PoisonError},
};

use anyhow::Context;
use serde::Serialize;

use crate::{
    lanes::Deployment,
    load::Run,
    procs::{self, Children},
};

/// One measured run of one lane.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) lane: &'static str,
    #[serde(flatten)]
    pub(crate) deployment: Deployment,
    /// Requests in flight (closed loop) or 0 for an open loop.
    pub(crate) in_flight: usize,
    /// Target rate of an open loop, or 0.
    pub(crate) rate: f64,
    pub(crate) requests: u64,
    pub(crate) rps: f64,
    pub(crate) p50_us: u64,
    pub(crate) p90_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
    pub(crate) lost: u64,
    pub(crate) errors: u64,
    pub(crate) duplicates: u64,
    pub(crate) bench_cpu_s: f64,
    pub(crate) consumers_cpu_s: f64,
    pub(crate) broker_cpu_s: Option<f64>,
    pub(crate) bench_peak_rss_kib: u64,
    pub(crate) consumers_peak_rss_kib: u64,
}

/// CPU and memory read around a run.
pub(crate) struct Usage {
    pub(crate) bench_cpu_s: f64,
    pub(crate) consumers_cpu_s: f64,
    pub(crate) broker_cpu_s: Option<f64>,
    pub(crate) bench_peak_rss_kib: u64,
    pub(crate) consumers_peak_rss_kib: u64,
}

/// CPU counters read before a run, to take the run's [`Usage`] from after it.
pub(crate) struct UsageMeter {
    broker: Option<u32>,
    bench_cpu_s: f64,
    consumers_cpu_s: f64,
    broker_cpu_s: Option<f64>,
}

impl UsageMeter {
    /// Reads this process's, the `consumers`' and the broker's CPU time now.
    pub(crate) fn start(consumers: &Children) -> Self {
        let broker = procs::broker_pid();
        Self {
            broker,
            bench_cpu_s: procs::cpu_seconds(std::process::id()).unwrap_or(0.0),
            consumers_cpu_s: consumers.cpu_seconds(),
            broker_cpu_s: broker.and_then(procs::cpu_seconds),
        }
    }

    /// The CPU time used since [`UsageMeter::start`], and the peak memory so far.
    pub(crate) fn usage(&self, consumers: &Children) -> Usage {
        let me = std::process::id();
        Usage {
            bench_cpu_s: procs::cpu_seconds(me).unwrap_or(0.0) - self.bench_cpu_s,
            consumers_cpu_s: consumers.cpu_seconds() - self.consumers_cpu_s,
            broker_cpu_s: self
                .broker
                .and_then(procs::cpu_seconds)
                .zip(self.broker_cpu_s)
                .map(|(after, before)| after - before),
            bench_peak_rss_kib: procs::memory(me).map_or(0, |m| m.peak_rss_kib),
            consumers_peak_rss_kib: consumers.peak_rss_kib(),
        }
    }
}

impl Row {
    pub(crate) fn new(
        lane: &'static str,
        deployment: Deployment,
        in_flight: usize,
        rate: f64,
        run: &Run,
        duplicates: u64,
        usage: Usage,
    ) -> Self {
        let h = &run.latency_us;
        Self {
            lane,
            deployment,
            in_flight,
            rate,
            requests: h.len(),
            rps: run.rps(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            lost: run.lost,
            errors: run.errors,
            duplicates,
            bench_cpu_s: usage.bench_cpu_s,
            consumers_cpu_s: usage.consumers_cpu_s,
            broker_cpu_s: usage.broker_cpu_s,
            bench_peak_rss_kib: usage.bench_peak_rss_kib,
            consumers_peak_rss_kib: usage.consumers_peak_rss_kib,
        }
    }

    pub(crate) fn plot_point(&self) -> crate::plot::PlotPoint {
        crate::plot::PlotPoint {
            concurrency: self.in_flight,
            rps: self.rps,
            p50_us: self.p50_us,
            p90_us: self.p90_us,
            p99_us: self.p99_us,
            p999_us: self.p999_us,
        }
    }
}

pub(crate) const HEADER: &str = "lane                prefetch conc replicas in-flight   RPC/s   p50ms   p90ms   p99ms p99.9ms   maxms lost dup  cpu(bench/cons/broker)s  rss(bench/cons)MB";

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// One table line.
pub(crate) fn line(r: &Row) -> String {
    let broker = r
        .broker_cpu_s
        .map_or_else(|| "n/a".to_owned(), |s| format!("{s:.1}"));
    format!(
        "{:<19} {:>8} {:>4} {:>8} {:>9} {:>7.0} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>4} {:>3}  {:>6.1}/{:>5.1}/{:>5}  {:>6.1}/{:>5.1}",
        r.lane,
        r.deployment.prefetch,
        r.deployment.concurrency,
        r.deployment.replicas,
        if r.rate > 0.0 {
            format!("@{:.0}/s", r.rate)
        } else {
            r.in_flight.to_string()
        },
        r.rps,
        ms(r.p50_us),
        ms(r.p90_us),
        ms(r.p99_us),
        ms(r.p999_us),
        ms(r.max_us),
        r.lost + r.errors,
        r.duplicates,
        r.bench_cpu_s,
        r.consumers_cpu_s,
        broker,
        r.bench_peak_rss_kib as f64 / 1024.0,
        r.consumers_peak_rss_kib as f64 / 1024.0,
    )
}

/// Where `--record` sends a copy of every result as a JSON line.
static RECORD: OnceLock<Mutex<File>> = OnceLock::new();

/// Appends every later result to `path` as JSON lines (`--record`),
/// starting with `header`.
///
/// # Errors
///
/// Fails if the file cannot be opened or written, or if called twice.
pub(crate) fn record_to(path: &Path, header: &impl Serialize) -> anyhow::Result<()> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    RECORD
        .set(Mutex::new(file))
        .map_err(|_| anyhow::anyhow!("--record given twice"))?;
    record(&serde_json::to_string(header)?)
}

fn record(line: &str) -> anyhow::Result<()> {
    if let Some(file) = RECORD.get() {
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        writeln!(file, "{line}").context("writing the --record file")?;
    }
    Ok(())
}

/// Prints one result, as a JSON line with `--json` or else as `human`
/// (one or more lines), and appends it to the `--record` file if any.
///
/// # Errors
///
/// Fails if the value cannot be serialised or the record written.
pub(crate) fn out<T: Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let line = serde_json::to_string(value)?;
    record(&line)?;
    if json {
        println!("{line}");
    } else {
        println!("{}", human());
    }
    Ok(())
}

/// Prints a row as a JSON line or as a table line (see [`out`]).
///
/// # Errors
///
/// Fails if the row cannot be serialised.
pub(crate) fn emit(row: &Row, json: bool) -> anyhow::Result<()> {
    out(json, row, || line(row))
}

/// Median of a non-empty list.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
