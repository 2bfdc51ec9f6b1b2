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
