//! The batching lane: the real `producer` binary fed names on stdin, as a
//! user runs it, against the system lane's consumers. Names per second for
//! each `--batch`, latency with one name in flight (the next name is written
//! only once the previous one's lines are out), and the producer's and
//! consumers' memory over a long run.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use rabbit_gather::Settings;
use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter},
    process::{Child, Command},
};

use crate::procs::{self, Children};

/// Lines the producer prints per name: one per expected consumer.
const LINES_PER_NAME: u64 = 2;

/// One bulk run: `names` names through `producer --batch <batch>`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Bulk {
    pub(crate) lane: &'static str,
    pub(crate) batch: usize,
    /// Requests in flight (`--concurrency`).
    pub(crate) in_flight: usize,
    pub(crate) names: u64,
    /// From the producer's start to its last line (start-up included).
    pub(crate) elapsed_s: f64,
    pub(crate) names_per_s: f64,
    pub(crate) producer_cpu_s: f64,
    pub(crate) consumers_cpu_s: f64,
    pub(crate) producer_peak_rss_kib: u64,
    /// Producer RSS when 10% and 95% of the names were answered.
    pub(crate) producer_rss_kib_at_10: u64,
    pub(crate) producer_rss_kib_at_95: u64,
    /// Largest consumer RSS at the same two points.
    pub(crate) consumers_rss_kib_at_10: u64,
    pub(crate) consumers_rss_kib_at_95: u64,
}

/// The `producer` binary with the lane's broker and prefix.
fn producer(settings: &Settings, batch: usize, in_flight: usize) -> anyhow::Result<Child> {
    Command::new(procs::sibling("producer")?)
        .args(["--batch", &batch.to_string()])
        .args(["--concurrency", &in_flight.to_string()])
        .args(["--timeout", "60s"])
        .env("AMQP_URL", settings.amqp.url.expose_secret())
        .env("GREETINGS_TOPOLOGY__PREFIX", &settings.topology.prefix)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the producer")
}

/// Sends `names` names through one producer run and times it.
pub(crate) async fn bulk(
    settings: &Settings,
    consumers: &Children,
    batch: usize,
    in_flight: usize,
    names: u64,
) -> anyhow::Result<Bulk> {
    let consumers_cpu = consumers.cpu_seconds();
    let started = Instant::now();
    let mut child = producer(settings, batch, in_flight)?;
    let pid = child.id().context("producer pid")?;
    let stdin = child.stdin.take().context("producer stdin")?;
    let writer = tokio::spawn(async move {
        let mut stdin = BufWriter::with_capacity(64 * 1024, stdin);
        for i in 0..names {
            stdin.write_all(format!("n{i}\n").as_bytes()).await?;
        }
        stdin.shutdown().await
    });
    let mut stdout =
        BufReader::with_capacity(64 * 1024, child.stdout.take().context("producer stdout")?);
    let total = names * LINES_PER_NAME;
    let (at_10, at_95) = (total / 10, total * 95 / 100);
    let mut samples = [(0, 0); 2];
    let mut lines = 0;
    let mut line = Vec::with_capacity(64);
    let mut cpu = 0.0;
    let mut peak = 0;
    loop {
        line.clear();
        if stdout.read_until(b'\n', &mut line).await? == 0 {
            break;
        }
        lines += 1;
        if lines == at_10 || lines == at_95 {
            let sample = (
                procs::memory(pid).map_or(0, |m| m.rss_kib),
                consumers.largest_rss_kib(),
            );
            samples[usize::from(lines == at_95)] = sample;
        }
        if lines == total {
            // Read before the process exits and /proc forgets it.
            cpu = procs::cpu_seconds(pid).unwrap_or(0.0);
            peak = procs::memory(pid).map_or(0, |m| m.peak_rss_kib);
        }
    }
    let elapsed = started.elapsed();
    let status = child.wait().await?;
    writer.await.context("stdin writer")??;
    if !status.success() || lines != total {
        bail!(
            "producer --batch {batch} exited with {status} after {lines} of {total} lines (its stderr is above)"
        );
    }
    Ok(Bulk {
        lane: "batching",
        batch,
        in_flight,
        names,
        elapsed_s: elapsed.as_secs_f64(),
        names_per_s: names as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        producer_cpu_s: cpu,
        consumers_cpu_s: consumers.cpu_seconds() - consumers_cpu,
        producer_peak_rss_kib: peak,
        producer_rss_kib_at_10: samples[0].0,
        producer_rss_kib_at_95: samples[1].0,
        consumers_rss_kib_at_10: samples[0].1,
        consumers_rss_kib_at_95: samples[1].1,
    })
}

/// Latency per name with one name in flight: `warmup + names` names written
/// one at a time to one `producer --batch <batch>`, each after the previous
/// one's lines; from the write to the name's last line.
pub(crate) async fn one_in_flight(
    settings: &Settings,
    batch: usize,
    warmup: u64,
    names: u64,
) -> anyhow::Result<Histogram<u64>> {
    let mut child = producer(settings, batch, 64)?;
    let mut stdin = child.stdin.take().context("producer stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().context("producer stdout")?);
    let mut latency = Histogram::new_with_bounds(1, 60_000_000, 3)?;
    let mut line = Vec::new();
    for i in 0..warmup + names {
        let sent = Instant::now();
        stdin.write_all(format!("n{i}\n").as_bytes()).await?;
        stdin.flush().await?;
        for _ in 0..LINES_PER_NAME {
            line.clear();
            if stdout.read_until(b'\n', &mut line).await? == 0 {
                bail!("producer --batch {batch} stopped after {i} names (its stderr is above)");
            }
        }
        if i >= warmup {
            let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
            latency.saturating_record(us.max(1));
        }
    }
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .context("producer did not exit after its stdin closed")??;
    anyhow::ensure!(
        status.success(),
        "producer --batch {batch} exited with {status}"
    );
    Ok(latency)
}

/// Header of the bulk table.
pub(crate) const HEADER: &str = "lane      batch in-flight    names  seconds   names/s  cpu(prod/cons)s  rss(prod@10%/@95%/peak)MB  rss(cons@10%/@95%)MB";

/// One bulk table line.
pub(crate) fn line(b: &Bulk) -> String {
    let mb = |kib: u64| kib as f64 / 1024.0;
    format!(
        "{:<9} {:>5} {:>9} {:>8} {:>8.2} {:>9.0}  {:>6.1}/{:>6.1}    {:>6.1}/{:>6.1}/{:>6.1}         {:>6.1}/{:>6.1}",
        b.lane,
        b.batch,
        b.in_flight,
        b.names,
        b.elapsed_s,
        b.names_per_s,
        b.producer_cpu_s,
        b.consumers_cpu_s,
        mb(b.producer_rss_kib_at_10),
        mb(b.producer_rss_kib_at_95),
        mb(b.producer_peak_rss_kib),
        mb(b.consumers_rss_kib_at_10),
        mb(b.consumers_rss_kib_at_95),
    )
}
