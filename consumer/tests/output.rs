//! Black-box checks of what the `consumer` executable prints for people:
//! `--help` (the word required, the exit codes), usage errors as one
//! `consumer: ...` line like the producer's, and one human line when it
//! stops (against the test broker, `AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`; no broker is a failure, never a
//! skipped test).

// A failed expectation is a failed test: panicking is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use lapin::{Connection, ConnectionProperties, options::QueueDeleteOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

const CONSUMER: &str = env!("CARGO_BIN_EXE_consumer");

/// Longest any expected event may take before a test fails: a failure
/// bound, not a speed target (the machines are shared).
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

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

#[test]
fn an_invalid_word_is_one_consumer_line_not_a_log_record() {
    let output = Command::new(CONSUMER)
        .arg("hello world")
        .env_remove("RUST_LOG")
        .output()
        .expect("run consumer");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("consumer: invalid consumer word \"hello world\""),
        "{stderr}"
    );
}

#[test]
fn an_http_address_in_use_is_one_consumer_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let output = Command::new(CONSUMER)
        .args(["--http-addr", &addr, "hello"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run consumer");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("consumer: cannot serve HTTP on {addr}")),
        "{stderr}"
    );
}

fn amqp_url() -> String {
    std::env::var("AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Deletes what a `word` consumer declared under `prefix`.
async fn clean_up(url: &str, prefix: &str, word: &str) {
    let Ok(connection) = Connection::connect(url, ConnectionProperties::default()).await else {
        return;
    };
    let Ok(channel) = connection.create_channel().await else {
        return;
    };
    for queue in ["", ".retry", ".due"]
        .map(|s| format!("{prefix}.{word}{s}"))
        .into_iter()
        .chain([format!("{prefix}.dead")])
    {
        let _ = channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await;
    }
    for exchange in [
        prefix.to_owned(),
        format!("{prefix}.dlx"),
        format!("{prefix}.reply"),
        format!("{prefix}.{word}.retry"),
    ] {
        let _ = channel
            .exchange_delete(exchange.into(), Default::default())
            .await;
    }
    let _ = connection.close(200, "cleanup".into()).await;
}

#[tokio::test]
async fn stopping_prints_one_human_line_of_what_it_did() {
    let url = amqp_url();
    match tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(probe)) => {
            let _ = probe.close(200, "probe".into()).await;
        }
        Ok(Err(e)) => panic!(
            "cannot reach the test broker at {url} (AMQP_URL): {e}. Start one with \
             scripts/ensure-rabbitmq.sh"
        ),
        Err(_) => panic!("the test broker at {url} did not answer within 10 s"),
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    let prefix = format!("test.stopline{}x{nanos}", std::process::id());

    let mut child = tokio::process::Command::new(CONSUMER)
        .args(["--prefix", &prefix, "hello"])
        .env("AMQP_URL", &url)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run consumer");
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    // What run.sh waits for, too.
    let consuming = tokio::time::timeout(EVENT_TIMEOUT, async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if line.contains(" consuming ") {
                return true;
            }
        }
        false
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().expect("running").to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(EVENT_TIMEOUT, async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            rest.push(line);
        }
        child.wait().await.expect("wait")
    })
    .await;
    clean_up(&url, &prefix, "hello").await;

    assert!(
        matches!(consuming, Ok(true)),
        "the consumer logged no ` consuming ` line"
    );
    let exit = ended.expect("the consumer stops within 30 s of SIGTERM");
    assert_eq!(exit.code(), Some(0), "{rest:#?}");
    let human: Vec<&String> = rest
        .iter()
        .filter(|l| l.starts_with("consumer: "))
        .collect();
    assert_eq!(
        human,
        [
            "consumer: hello stopped after 0 requests (0 answered, 0 dead-lettered, \
          0 retries scheduled, 0 reconnects)"
        ],
        "{rest:#?}"
    );
}
