//! Black-box checks of the `producer` executable that need no broker. (The
//! end-to-end ones live in the `greetings-tests` crate.) Their presence also
//! makes `cargo test --workspace` build the binary those tests run.

use std::process::Command;

const PRODUCER: &str = env!("CARGO_BIN_EXE_producer");

#[test]
fn help_documents_every_exit_code() {
    let output = Command::new(PRODUCER)
        .arg("--help")
        .output()
        .expect("run producer");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for code in [
        "0  every name",
        "2  bad usage",
        "3  incomplete",
        "4  broker",
        "5  no queue",
    ] {
        assert!(help.contains(code), "missing {code:?} in:\n{help}");
    }
}

#[test]
fn an_invalid_name_exits_2_before_connecting() {
    // Port 1 is closed: were anything sent, this would exit 4 instead.
    let output = Command::new(PRODUCER)
        .args([
            "--amqp-url",
            "amqp://guest:guest@127.0.0.1:1/%2f",
            "Ada",
            "bad\u{7}name",
        ])
        .output()
        .expect("run producer");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("argument 2: invalid name"), "{stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");
}

#[test]
fn an_invalid_broker_url_is_bad_usage_exit_2() {
    for url in [
        "http://x",
        "not a url",
        "amqp://guest:s3cr3t@host:notaport/%2f",
    ] {
        let output = Command::new(PRODUCER)
            .args(["--amqp-url", url, "Ada"])
            .env_remove("AMQP_URL")
            .env_remove("RUST_LOG")
            .output()
            .expect("run producer");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{url}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{url}: {stderr}");
        assert!(
            lines[0].starts_with("producer: invalid AMQP URL: "),
            "{url}: {stderr}"
        );
        assert!(!stderr.contains("s3cr3t"), "{url}: {stderr}");
    }
}
