//! Backpressure: a bounded request queue (`topology.max_length`, overflow
//! `reject-publish`) under a producer faster than its consumer. Every name
//! is answered or reported overloaded (exit 6); none is silently lost.

use std::time::Duration;

use futures::FutureExt;

use testkit::{TestApp, TestHandler, run_producer};

/// A consumer that takes 20 ms per request: slower than the producer.
fn slow_greeter() -> TestHandler {
    Box::new(|name, cx| {
        async move {
            // Simulated work, not synchronisation: it makes the consumer slow.
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(format!("{} {}", cx.word, name.as_str()))
        }
        .boxed()
    })
}

/// What a producer run against a 5-deep queue and a slow consumer gave.
struct Overload {
    run: testkit::ProducerRun,
    /// One JSON object per name.
    results: Vec<serde_json::Value>,
    summary: serde_json::Value,
    answered: usize,
    overloaded: usize,
    stats: rabbit_gather::service::ServiceStats,
}

impl Overload {
    /// What every overloaded run must show: one result per name, each name
    /// answered or reported overloaded, the bound reached, exit 6.
    fn assert_every_name_accounted_for(&self) {
        let Self {
            run,
            results,
            summary,
            answered,
            overloaded,
            ..
        } = self;
        assert_eq!(results.len(), NAMES, "one result per name");
        assert_eq!(
            answered + overloaded,
            NAMES,
            "every name answered or reported"
        );
        assert!(*overloaded > 0, "the bound was never reached: {summary}");
        assert_eq!(run.code, 6, "{}", run.stderr);
    }
}

/// `NAMES` names at 64 in flight into a queue bounded at 5 that a 20 ms
/// consumer drains, with `extra` producer flags; prints its figures and
/// checks what every overloaded run must show.
async fn overload(extra: &[&str]) -> Overload {
    let app = TestApp::new().await;
    let mut settings = app.settings.clone();
    settings.topology.max_length = 5;
    let hello = app
        .consumer_with("hello", &settings, Some(slow_greeter()))
        .await;
    let input: String = (0..NAMES).map(|i| format!("n{i}\n")).collect();
    let mut args = vec![
        "--json",
        "--expect",
        "hello",
        "--concurrency",
        "64",
        "--timeout",
        "30s",
    ];
    args.extend_from_slice(extra);
    let run = run_producer(&app, &args, Some(&input)).await;
    let mut results: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let summary = results.pop().expect("a summary line")["summary"].clone();
    let answered = results
        .iter()
        .filter(|r| r["replies"]["hello"].as_str().is_some())
        .count();
    let overloaded = results.iter().filter(|r| r["overloaded"] == true).count();
    let stats = hello.counters.snapshot();
    hello.stop().await;
    println!(
        "overload {extra:?}: {NAMES} names, {answered} answered, {overloaded} overloaded, \
         exit {}; consumer handled {}, answered {}; summary {summary}",
        run.code, stats.handled, stats.ok
    );
    let outcome = Overload {
        run,
        results,
        summary,
        answered,
        overloaded,
        stats,
    };
    outcome.assert_every_name_accounted_for();
    outcome
}

const NAMES: usize = 300;

#[tokio::test]
async fn a_full_queue_gets_names_reported_overloaded_and_none_silently_lost() {
    let Overload {
        run,
        summary,
        answered,
        overloaded,
        stats,
        ..
    } = overload(&[]).await;
    assert!(answered > 0, "{summary}");
    assert_eq!(summary["overloaded"], overloaded);
    assert_eq!(summary["complete"], answered);
    assert_eq!(
        run.stderr.matches("producer: overloaded:").count(),
        overloaded,
        "one line per overloaded name"
    );
    assert_eq!(
        stats.ok as usize, answered,
        "the consumer answered exactly those"
    );
}

/// Defect: with `--retries` above 0, one nacked request retired the shared
/// connection: every call in flight on it failed as "connection lost" and
/// was resent (the queues that had stored them got duplicates), and a call
/// with no retry left ended the run with exit 4 where an overloaded name
/// means exit 6. A nack now resends only the nacked request.
#[tokio::test]
async fn with_retries_a_nack_resends_only_its_own_request_and_overload_is_still_exit_6() {
    let Overload {
        run,
        summary,
        answered,
        stats,
        ..
    } = overload(&["--retries", "1"]).await;
    assert!(
        !run.stderr.contains("connection"),
        "no connection was given up: {}",
        run.stderr
    );
    assert_eq!(
        stats.handled as usize, answered,
        "no stored request was sent twice"
    );
    assert_eq!(summary["duplicate_replies"], 0);
}
