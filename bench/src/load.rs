//! Load generators: closed loop (C requests always in flight) and open loop
//! (a fixed rate, latency measured from each request's scheduled send time so
//! that a slow system cannot hide its queueing: no coordinated omission).

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use hdrhistogram::Histogram;

use crate::lanes::Lane;

/// What one measured phase produced.
pub(crate) struct Run {
    pub(crate) latency_us: Histogram<u64>,
    pub(crate) elapsed: Duration,
    pub(crate) complete: u64,
    pub(crate) lost: u64,
    pub(crate) errors: u64,
}

impl Run {
    /// An empty run, its histogram ready for latencies up to two minutes.
    ///
    /// # Errors
    ///
    /// Fails only if the histogram's bounds are invalid.
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(Self {
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3)?,
            elapsed: Duration::ZERO,
            complete: 0,
            lost: 0,
            errors: 0,
        })
    }

    /// Counts one request: its latency, and whether every responder answered
    /// (`Ok(true)`), some did not (`Ok(false)`) or the call failed.
    pub(crate) fn record(&mut self, latency: Duration, outcome: &anyhow::Result<bool>) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency_us.saturating_record(us);
        match outcome {
            Ok(true) => self.complete += 1,
            Ok(false) => self.lost += 1,
            Err(error) => {
                self.errors += 1;
                tracing::warn!(%error, "request failed");
            }
        }
    }

    /// Completed requests per second of the measured phase.
    pub(crate) fn rps(&self) -> f64 {
        self.complete as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Warms up with `warmup` requests, then measures `requests` with
/// `concurrency` always in flight.
pub(crate) async fn closed(
    lane: &Lane,
    requests: u64,
    warmup: u64,
    concurrency: usize,
    timeout: Duration,
) -> anyhow::Result<Run> {
    warm_up(lane, warmup, concurrency, timeout).await;
    let mut run = Run::new()?;
    let started = Instant::now();
    let mut results = stream::iter(warmup..warmup + requests)
        .map(|i| async move {
            let sent = Instant::now();
            let outcome = lane.call(i, timeout).await;
            (sent.elapsed(), outcome)
        })
        .buffer_unordered(concurrency);
    while let Some((latency, outcome)) = results.next().await {
        run.record(latency, &outcome);
    }
    run.elapsed = started.elapsed();
    Ok(run)
}

/// Warms up, then sends `requests` at `rate` per second whatever the
/// replies do (up to `max_in_flight`), latency counted from the schedule.
pub(crate) async fn open(
    lane: &Lane,
    requests: u64,
    warmup: u64,
    rate: f64,
    timeout: Duration,
    max_in_flight: usize,
) -> anyhow::Result<Run> {
    anyhow::ensure!(rate > 0.0, "--rate must be positive");
    warm_up(lane, warmup, 16, timeout).await;
    let mut run = Run::new()?;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = tokio::time::Instant::now();
    let mut results = stream::iter(0..requests)
        .map(|k| async move {
            let scheduled = started + interval.mul_f64(k as f64);
            tokio::time::sleep_until(scheduled).await;
            let outcome = lane.call(warmup + k, timeout).await;
            (scheduled.elapsed(), outcome)
        })
        .buffer_unordered(max_in_flight);
    while let Some((latency, outcome)) = results.next().await {
        run.record(latency, &outcome);
    }
    run.elapsed = started.elapsed();
    Ok(run)
}

/// Sends `warmup` unmeasured requests, `in_flight` at a time; their outcomes
/// do not count.
async fn warm_up(lane: &Lane, warmup: u64, in_flight: usize, timeout: Duration) {
    stream::iter(0..warmup)
        .map(|i| lane.call(i, timeout))
        .buffer_unordered(in_flight)
        .for_each(|_| async {})
        .await;
}
