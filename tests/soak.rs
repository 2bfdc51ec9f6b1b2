//! 100,000 requests through one producer process and one consumer of each
//! word: the processes' memory stays flat and the in-flight map ends empty.
//! (`GREETINGS_SOAK_REQUESTS` changes the count.) Figures are printed; the
//! only memory assertion is a generous leak bound, not a performance target.
//!
//! A target of its own, left out of a plain `cargo test` (it takes minutes):
//! `cargo test -p greetings-tests --test soak -- --nocapture` (scripts/test.sh
//! runs it).

// A failed expectation is a failed test: panicking is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{process::Stdio, time::Duration};

use tokio::{io::AsyncWriteExt, process::Command};

use testkit::support::ledger::Ledger;
use testkit::{TestApp, bin};

/// Resident set size of a process, in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::test]
async fn a_hundred_thousand_requests_keep_memory_flat_and_leave_nothing_in_flight() {
    let count: usize = std::env::var("GREETINGS_SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let app = TestApp::new().await;
    let hello = app.consumer_bin("hello", &[]).await;
    let goodbye = app.consumer_bin("goodbye", &[]).await;
    let pids = [
        ("hello", hello.child.id().expect("pid")),
        ("goodbye", goodbye.child.id().expect("pid")),
    ];

    let mut producer = Command::new(bin("producer"))
        .args(["--concurrency", "64", "--timeout", "30s"])
        .envs(app.env())
        .env("GREETINGS_RPC__PERSISTENT", "false")
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn producer");
    let producer_pid = producer.id().expect("pid");
    let mut stdin = producer.stdin.take().expect("stdin");
    let names: Vec<String> = (0..count).map(|i| format!("n{i}")).collect();
    let input: String = names.iter().map(|n| format!("{n}\n")).collect();
    tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
    });
    let output = tokio::spawn(producer.wait_with_output());

    // First sample once warm (10% done), last near the end (95% done).
    let sample = |label: &'static str| {
        let mut all = vec![("producer", producer_pid)];
        all.extend(pids);
        let taken: Vec<(&str, u64)> = all
            .iter()
            .map(|(who, pid)| (*who, rss_kib(*pid).unwrap_or(0)))
            .collect();
        println!("rss [{label}]: {taken:?} KiB");
        taken
    };
    let printed = || hello.stdout_lines().len();
    wait_until_long(|| printed() >= count / 10).await;
    let first = sample("10%");
    wait_until_long(|| printed() >= count * 95 / 100).await;
    let last = sample("95%");

    let output = tokio::time::timeout(Duration::from_secs(600), output)
        .await
        .expect("producer finishes")
        .expect("task")
        .expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let run = testkit::ProducerRun {
        code: output.status.code().unwrap_or(-1),
        stdout: stdout.to_string(),
        stderr: stderr.to_string(),
        elapsed: Duration::ZERO,
    };
    let handled: Vec<String> = hello
        .stdout_lines()
        .into_iter()
        .chain(goodbye.stdout_lines())
        .collect();
    let ledger = Ledger::from_output(&names, &["hello", "goodbye"], &stdout)
        .with_handled(handled.iter().map(String::as_str))
        .with_duplicate_replies(run.duplicate_replies());
    ledger.print(&format!("soak {count}"));
    assert_eq!(output.status.code(), Some(0), "stderr:\n{stderr}");
    // No fault here: nothing is redelivered, so nothing is handled twice.
    assert_eq!(
        (
            ledger.lost,
            ledger.printed_twice,
            ledger.unexpected,
            ledger.handled_twice
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(ledger.duplicate_replies, Some(0));
    let stats = stderr
        .lines()
        .find(|l| l.contains("run statistics"))
        .expect("the producer logs its final statistics");
    assert!(stats.contains("in_flight=0"), "{stats}");
    assert!(stats.contains(&format!("complete={count}")), "{stats}");
    for ((who, before), (_, after)) in first.iter().zip(&last) {
        // A leak of even 100 bytes per request would add ~9 MiB here.
        assert!(
            *after <= before + 16 * 1024,
            "{who} grew from {before} KiB to {after} KiB"
        );
    }
}

/// Like `helpers::wait_until`, for a long run: the soak takes minutes in a debug build.
async fn wait_until_long(mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "the soak run stalled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
