//! A Jepsen-style ledger of one fault-injection run: what was sent, what came
//! back, and what was lost, duplicated or unexpected.

use std::collections::{HashMap, HashSet};

/// Counts for one run, printed by every fault test.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Ledger {
    /// Requests the producer sent (each expects one reply per word).
    pub(crate) sent: usize,
    /// Replies expected: `sent` x words.
    pub(crate) expected: usize,
    /// Replies received (lines printed by the producer).
    pub(crate) received: usize,
    /// Expected replies never received by the deadline.
    pub(crate) lost: usize,
    /// Replies received more than once.
    pub(crate) duplicated: usize,
    /// Replies nobody asked for.
    pub(crate) unexpected: usize,
}

impl Ledger {
    /// Builds the ledger from the producer's stdout (`W NAME` lines).
    pub(crate) fn from_output(names: &[String], words: &[&str], stdout: &str) -> Self {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for line in stdout.lines() {
            *seen.entry(line).or_default() += 1;
        }
        let expected: HashSet<String> = names
            .iter()
            .flat_map(|n| words.iter().map(move |w| format!("{w} {n}")))
            .collect();
        let lost = expected
            .iter()
            .filter(|e| !seen.contains_key(e.as_str()))
            .count();
        let duplicated = seen.values().filter(|&&n| n > 1).map(|n| n - 1).sum();
        let unexpected = seen
            .keys()
            .filter(|line| !expected.contains(**line))
            .count();
        Self {
            sent: names.len(),
            expected: expected.len(),
            received: stdout.lines().count(),
            lost,
            duplicated,
            unexpected,
        }
    }

    /// Prints the ledger (visible with `--nocapture`, and in CI logs on failure).
    pub(crate) fn print(&self, title: &str) {
        println!(
            "ledger [{title}]: sent={} expected={} received={} lost={} duplicated={} unexpected={}",
            self.sent, self.expected, self.received, self.lost, self.duplicated, self.unexpected
        );
    }
}
