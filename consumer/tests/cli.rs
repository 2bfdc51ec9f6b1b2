//! Black-box checks of the `consumer` executable that need no broker. (The
//! end-to-end ones live in the `greetings-tests` crate.) Their presence also
//! makes `cargo test --workspace` build the binary those tests run. What
//! they share with the other test crates comes from the workspace's one
//! harness, `testkit`.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

const CONSUMER: &str = env!("CARGO_BIN_EXE_consumer");

#[test]
fn an_invalid_word_exits_2() {
    let output = Command::new(CONSUMER)
        .arg("hello world")
        .output()
        .expect("run consumer");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid consumer word"), "{stderr}");
}

#[test]
fn an_unreachable_broker_is_retried_until_sigterm_without_showing_the_password() {
    let mut child = Command::new(CONSUMER)
        .args(["--amqp-url", "amqp://guest:s3cr3t@127.0.0.1:1/%2f", "hello"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("run consumer");
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Two connection attempts logged: the service keeps trying. It never
    // connected, so it says so (not "session lost").
    let mut retries = Vec::new();
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    while retries.len() < 2 {
        assert!(
            std::time::Instant::now() < give_up,
            "no retry logged in 30 s: {retries:?}"
        );
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the consumer logs its connection attempts");
        assert!(!line.contains("session lost"), "{line}");
        if line.contains("cannot reach the broker yet; retrying") {
            retries.push(line);
        }
    }
    assert!(
        retries[0].contains("guest:***@127.0.0.1:1"),
        "{}",
        retries[0]
    );
    assert!(retries.iter().all(|l| !l.contains("s3cr3t")), "{retries:?}");
    assert!(child.try_wait().expect("poll").is_none(), "still running");

    testkit::sigterm(child.id());
    let exit = child.wait().expect("wait");
    assert_eq!(
        exit.code(),
        Some(0),
        "SIGTERM while reconnecting is a clean exit"
    );
}

#[test]
fn a_missing_config_file_exits_2() {
    let output = Command::new(CONSUMER)
        .args(["--config", "/nonexistent/greetings.toml", "hello"])
        .output()
        .expect("run consumer");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot load configuration"), "{stderr}");
}
