//! Backpressure: a bounded request queue (`topology.max_length`, overflow
//! `reject-publish`) under a producer faster than its consumer. Every name
//! is answered or reported overloaded (exit 6); none is silently lost.

use std::time::Duration;

use futures::FutureExt;

use crate::helpers::{TestApp, TestHandler, run_producer};

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

#[tokio::test]
async fn a_full_queue_gets_names_reported_overloaded_and_none_silently_lost() {
    const NAMES: usize = 300;
    let app = TestApp::new().await;
    let mut settings = app.settings.clone();
    settings.topology.max_length = 5;
    let hello = app
        .consumer_with("hello", &settings, Some(slow_greeter()))
        .await;
    let input: String = (0..NAMES).map(|i| format!("n{i}\n")).collect();
    let run = run_producer(
        &app,
        &[
            "--json",
            "--expect",
            "hello",
            "--concurrency",
            "64",
            "--timeout",
            "30s",
        ],
        Some(&input),
    )
    .await;

    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let (results, summary) = lines.split_at(lines.len() - 1);
    let summary = &summary[0]["summary"];
    let answered = results
        .iter()
        .filter(|r| r["replies"]["hello"].as_str().is_some())
        .count();
    let overloaded = results.iter().filter(|r| r["overloaded"] == true).count();
    let stats = hello.counters.snapshot();
    println!(
        "overload: {NAMES} names, {answered} answered, {overloaded} overloaded, exit {}; \
         consumer answered {}",
        run.code, stats.ok
    );
    assert_eq!(results.len(), NAMES, "one result per name");
    assert_eq!(
        answered + overloaded,
        NAMES,
        "every name answered or reported"
    );
    assert!(overloaded > 0, "the bound was never reached: {summary}");
    assert!(answered > 0, "{summary}");
    assert_eq!(summary["overloaded"], overloaded);
    assert_eq!(summary["complete"], answered);
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("producer: overloaded:").count(),
        overloaded,
        "one line per overloaded name"
    );
    assert_eq!(
        stats.ok as usize, answered,
        "the consumer answered exactly those"
    );
    hello.stop().await;
}

/// Defect: with `--retries` above 0, one nacked request retired the shared
/// connection: every call in flight on it failed as "connection lost" and
/// was resent (the queues that had stored them got duplicates), and a call
/// with no retry left ended the run with exit 4 where an overloaded name
/// means exit 6. A nack now resends only the nacked request.
#[tokio::test]
async fn with_retries_a_nack_resends_only_its_own_request_and_overload_is_still_exit_6() {
    const NAMES: usize = 300;
    let app = TestApp::new().await;
    let mut settings = app.settings.clone();
    settings.topology.max_length = 5;
    let hello = app
        .consumer_with("hello", &settings, Some(slow_greeter()))
        .await;
    let input: String = (0..NAMES).map(|i| format!("n{i}\n")).collect();
    let run = run_producer(
        &app,
        &[
            "--json",
            "--expect",
            "hello",
            "--concurrency",
            "64",
            "--timeout",
            "30s",
            "--retries",
            "1",
        ],
        Some(&input),
    )
    .await;
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let (results, summary) = lines.split_at(lines.len() - 1);
    let summary = &summary[0]["summary"];
    let answered = results
        .iter()
        .filter(|r| r["replies"]["hello"].as_str().is_some())
        .count();
    let overloaded = results.iter().filter(|r| r["overloaded"] == true).count();
    let stats = hello.counters.snapshot();
    println!(
        "overload with --retries 1: {NAMES} names, {answered} answered, {overloaded} overloaded, \
         exit {}; consumer handled {}; summary {summary}",
        run.code, stats.handled
    );
    assert_eq!(results.len(), NAMES, "one result per name");
    assert_eq!(
        answered + overloaded,
        NAMES,
        "every name answered or reported"
    );
    assert!(overloaded > 0, "the bound was never reached: {summary}");
    assert!(
        !run.stderr.contains("connection"),
        "no connection was given up: {}",
        run.stderr
    );
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert_eq!(
        stats.handled as usize, answered,
        "no stored request was sent twice"
    );
    assert_eq!(summary["duplicate_replies"], 0);
    hello.stop().await;
}
