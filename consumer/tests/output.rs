//! Black-box checks of what the `consumer` executable prints for people:
//! `--help` (the word required, the exit codes), usage errors as one
//! `consumer: ...` line like the producer's, and one human line when it
//! stops (against the test broker, `AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`; no broker is a failure, never a
//! skipped test).

// A failed expectation is a failed test: panicking is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

const CONSUMER: &str = env!("CARGO_BIN_EXE_consumer");

#[test]
fn help_shows_the_word_as_required_and_lists_every_exit_code() {
    let output = Command::new(CONSUMER)
        .arg("--help")
        .output()
        .expect("run consumer");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("Usage: consumer [OPTIONS] <WORD>"),
        "usage names <WORD>:\n{help}"
    );
    assert!(
        help.contains("  <WORD>"),
        "argument list names <WORD>:\n{help}"
    );
    assert!(!help.contains("[WORD]"), "{help}");
    for code in [
        "0  stopped by SIGINT",
        "1  any other",
        "2  bad usage",
        "4  the broker refused",
    ] {
        assert!(help.contains(code), "missing {code:?} in:\n{help}");
    }
}

/// Runs `consumer ARGS` as a user would (no `RUST_LOG`), expecting it to
/// exit 2 with exactly one stderr line starting with `expected`.
fn refused_in_one_line(args: &[&str], expected: &str) {
    let output = Command::new(CONSUMER)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run consumer");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with(expected), "{stderr}");
}

#[test]
fn an_invalid_word_is_one_consumer_line_not_a_log_record() {
    refused_in_one_line(
        &["hello world"],
        "consumer: invalid consumer word \"hello world\"",
    );
}

#[test]
fn an_http_address_in_use_is_one_consumer_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    refused_in_one_line(
        &["--http-addr", &addr, "hello"],
        &format!("consumer: cannot serve HTTP on {addr}"),
    );
}

#[tokio::test]
async fn stopping_prints_one_human_line_of_what_it_did() {
    let app = testkit::TestApp::new().await;
    // Started like run.sh starts it: ready once it logs ` consuming `.
    let mut consumer = app.consumer_bin("hello", &[]).await;
    consumer.sigterm();
    assert_eq!(
        consumer.exit_code().await,
        0,
        "{:#?}",
        consumer.stderr_lines()
    );
    consumer.wait_for_stderr("consumer: hello stopped").await;
    let human: Vec<String> = consumer
        .stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("consumer: "))
        .collect();
    assert_eq!(
        human,
        [
            "consumer: hello stopped after 0 requests (0 answered, 0 dead-lettered, \
          0 retries scheduled, 0 reconnects)"
        ],
        "{:#?}",
        consumer.stderr_lines()
    );
}
