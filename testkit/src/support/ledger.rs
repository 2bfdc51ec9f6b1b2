//! A Jepsen-style ledger of one fault-injection run: what was sent, what came
//! back, what was lost, and the duplicates where they happen: a name handled
//! twice by a word (the consumers' `W NAME` lines, across replicas: an
//! at-least-once redelivery, reported, not hidden) and a reply the client
//! received twice (its own count; it prints each reply once).

use std::collections::{HashMap, HashSet};

/// Counts for one run, printed by every fault test.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ledger {
    /// Requests the producer sent (each expects one reply per word).
    pub sent: usize,
    /// Replies expected: `sent` x words.
    pub expected: usize,
    /// Replies received (lines printed by the producer).
    pub received: usize,
    /// Expected replies never received by the deadline.
    pub lost: usize,
    /// Lines the producer printed more than once (its output contract: never).
    pub printed_twice: usize,
    /// Replies nobody asked for.
    pub unexpected: usize,
    /// `W NAME` handled more than once, summed over every word and replica
    /// (extra handlings, so 0 when each was handled exactly once).
    pub handled_twice: usize,
    /// Replies the client received more than once for one call (and dropped);
    /// `None` when the run could not report it.
    pub duplicate_replies: Option<u64>,
}

impl Ledger {
    /// Builds the ledger from the producer's stdout (`W NAME` lines).
    pub fn from_output(names: &[String], words: &[&str], stdout: &str) -> Self {
        let seen = count(stdout.lines());
        let expected: HashSet<String> = names
            .iter()
            .flat_map(|n| words.iter().map(move |w| format!("{w} {n}")))
            .collect();
        let lost = expected
            .iter()
            .filter(|e| !seen.contains_key(e.as_str()))
            .count();
        let unexpected = seen
            .keys()
            .filter(|line| !expected.contains(**line))
            .count();
        Self {
            sent: names.len(),
            expected: expected.len(),
            received: stdout.lines().count(),
            lost,
            printed_twice: extra(&seen),
            unexpected,
            handled_twice: 0,
            duplicate_replies: None,
        }
    }

    /// Adds the `W NAME` lines every consumer replica printed.
    pub fn with_handled<'a>(mut self, lines: impl IntoIterator<Item = &'a str>) -> Self {
        self.handled_twice = extra(&count(lines));
        self
    }

    /// Adds the client's count of duplicate replies.
    pub fn with_duplicate_replies(mut self, duplicates: Option<u64>) -> Self {
        self.duplicate_replies = duplicates;
        self
    }

    /// Prints the ledger (visible with `--nocapture`, and in CI logs on failure).
    pub fn print(&self, title: &str) {
        let replies = self
            .duplicate_replies
            .map_or_else(|| "n/a".to_owned(), |n| n.to_string());
        println!(
            "ledger [{title}]: sent={} expected={} received={} lost={} unexpected={} printed_twice={} \
             handled_twice={} duplicate_replies={replies}",
            self.sent,
            self.expected,
            self.received,
            self.lost,
            self.unexpected,
            self.printed_twice,
            self.handled_twice,
        );
    }
}

fn count<'a>(lines: impl IntoIterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for line in lines {
        *seen.entry(line).or_default() += 1;
    }
    seen
}

/// Occurrences beyond the first, summed.
fn extra(seen: &HashMap<&str, usize>) -> usize {
    seen.values().map(|n| n.saturating_sub(1)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_counted_where_they_happen() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        let ledger = Ledger::from_output(&names, &["hello"], "hello a\nhello b\n")
            .with_handled(["hello a", "hello b", "hello a"])
            .with_duplicate_replies(Some(1));
        assert_eq!(
            (ledger.lost, ledger.printed_twice, ledger.handled_twice),
            (0, 0, 1)
        );
        let lossy = Ledger::from_output(&names, &["hello"], "hello a\nhello a\n");
        assert_eq!((lossy.lost, lossy.printed_twice), (1, 1));
    }
}
