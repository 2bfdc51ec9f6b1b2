//! The one human line `consumer` prints on stderr when it stops: what the
//! service did, from its counters (the `/metrics` endpoint has them all).

use rabbit_gather::service::ServiceStats;

/// `consumer: hello stopped after 1,234 requests (1,230 answered, 4
/// dead-lettered, 0 retries scheduled, 0 reconnects)`: requests are those
/// the service finished with, answered or dead-lettered (by itself or, for
/// those it rejected, by the broker).
#[must_use]
pub fn line(word: &str, stats: &ServiceStats) -> String {
    let dead_lettered = stats.dead_lettered + stats.rejected;
    let requests = stats.ok + dead_lettered;
    format!(
        "consumer: {word} stopped after {} {} ({} answered, {} dead-lettered, {} {} scheduled, \
         {} {})",
        grouped(requests),
        plural(requests, "request", "requests"),
        grouped(stats.ok),
        grouped(dead_lettered),
        grouped(stats.retries_scheduled),
        plural(stats.retries_scheduled, "retry", "retries"),
        grouped(stats.reconnects),
        plural(stats.reconnects, "reconnect", "reconnects"),
    )
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// `n` with a comma between groups of three digits: `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn the_stop_line_is_one_human_sentence_not_a_debug_dump() {
        let stats = ServiceStats {
            ok: 1_230,
            dead_lettered: 3,
            rejected: 1,
            retries_scheduled: 1,
            ..ServiceStats::default()
        };
        assert_eq!(
            line("hello", &stats),
            "consumer: hello stopped after 1,234 requests (1,230 answered, 4 dead-lettered, \
             1 retry scheduled, 0 reconnects)"
        );
        assert_eq!(
            line("bonjour", &ServiceStats::default()),
            "consumer: bonjour stopped after 0 requests (0 answered, 0 dead-lettered, \
             0 retries scheduled, 0 reconnects)"
        );
    }
}
