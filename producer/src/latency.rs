//! How long each name's call took, summarised as percentiles. The durations
//! go into a fixed-size HdrHistogram, never a list: a producer may stream
//! millions of names from stdin, and its memory must not grow with them.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Longest call the histogram tells apart; longer ones count as this long.
/// Twice the longest `rpc.timeout` the settings accept (24 h): a call ends by
/// its deadline, so only a stdout blocked for a day could reach it.
const HIGHEST: Duration = Duration::from_secs(48 * 3600);

/// Significant decimal digits kept: a figure is within 0.1% of the truth.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Percentiles of the time each name's call took, from sending the request to
/// the end of the call (every expected reply in, or the deadline), to three
/// significant digits. The end is seen when the producer next polls its calls,
/// which it does between writing results: a stdout that blocks delays it.
/// Each figure is the highest value of its histogram bucket, so
/// `p50 <= p90 <= p99 <= max` always holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest call.
    pub max: Duration,
}

/// Records call durations in constant memory (about 230 KiB, whatever the
/// number of calls), at microsecond resolution.
#[derive(Debug)]
pub(crate) struct Recorder {
    micros: Histogram<u64>,
}

impl Recorder {
    pub(crate) fn new() -> Self {
        let highest = u64::try_from(HIGHEST.as_micros()).unwrap_or(u64::MAX);
        #[allow(
            clippy::expect_used,
            reason = "constant bounds the histogram accepts (1 <= highest, 3 digits), \
                      exercised by every test that records"
        )]
        let micros = Histogram::new_with_bounds(1, highest, SIGNIFICANT_DIGITS)
            .expect("valid histogram bounds");
        Self { micros }
    }

    /// Counts one call that took `took`.
    pub(crate) fn record(&mut self, took: Duration) {
        // Clamped to HIGHEST: an absurd duration still counts, as the longest.
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.micros.saturating_record(micros);
    }

    /// The percentiles, or `None` when no call was recorded.
    pub(crate) fn latency(&self) -> Option<Latency> {
        if self.micros.is_empty() {
            return None;
        }
        let at = |quantile: f64| Duration::from_micros(self.micros.value_at_quantile(quantile));
        Some(Latency {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: Duration::from_micros(self.micros.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_recorded_is_no_latency_not_zeros() {
        assert_eq!(Recorder::new().latency(), None);
    }

    #[test]
    fn percentiles_of_1_to_100_ms_are_ordered_and_within_a_tenth_of_a_percent() {
        let mut recorder = Recorder::new();
        // Reversed: the order of the calls must not matter.
        for ms in (1..=100).rev() {
            recorder.record(Duration::from_millis(ms));
        }
        let latency = recorder.latency().expect("recorded");
        for (got, want) in [
            (latency.p50, 50),
            (latency.p90, 90),
            (latency.p99, 99),
            (latency.max, 100),
        ] {
            let want = Duration::from_millis(want);
            assert!(
                got >= want && got <= want + want / 1000,
                "{got:?} for {want:?}"
            );
        }
        assert!(latency.p50 <= latency.p90 && latency.p90 <= latency.p99);
        assert!(latency.p99 <= latency.max);
    }

    #[test]
    fn one_call_is_every_percentile() {
        let mut recorder = Recorder::new();
        recorder.record(Duration::from_micros(1234));
        let latency = recorder.latency().expect("recorded");
        let exact = Duration::from_micros(1234);
        assert_eq!(
            (latency.p50, latency.p90, latency.p99, latency.max),
            (exact, exact, exact, exact)
        );
    }

    #[test]
    fn zero_and_overlong_calls_are_clamped_not_lost() {
        let mut recorder = Recorder::new();
        recorder.record(Duration::ZERO);
        recorder.record(Duration::from_secs(365 * 24 * 3600));
        let latency = recorder.latency().expect("recorded");
        assert_eq!(latency.p50, Duration::ZERO);
        assert!(latency.max >= HIGHEST, "{:?}", latency.max);
        assert!(latency.max <= HIGHEST + HIGHEST / 1000, "{:?}", latency.max);
    }
}
