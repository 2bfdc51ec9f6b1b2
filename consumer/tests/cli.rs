//! Black-box checks of the `consumer` executable that need no broker. (The
//! end-to-end ones live in the `greetings-tests` crate.) Their presence also
//! makes `cargo test --workspace` build the binary those tests run.

use std::process::Command;

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
fn an_unreachable_broker_exits_4_without_showing_the_password() {
    let output = Command::new(CONSUMER)
        .args(["--amqp-url", "amqp://guest:s3cr3t@127.0.0.1:1/%2f", "hello"])
        .output()
        .expect("run consumer");
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("guest:***@127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
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
