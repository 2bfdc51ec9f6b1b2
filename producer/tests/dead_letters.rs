//! Black-box checks of the `dead-letters` executable that need no broker.
//! (The ones against a broker live in the `greetings-tests` crate.)

use std::process::Command;

const DEAD_LETTERS: &str = env!("CARGO_BIN_EXE_dead-letters");

/// Port 1 is closed: a command that connected would exit 4.
const CLOSED: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

#[test]
fn help_documents_every_exit_code() {
    let output = Command::new(DEAD_LETTERS)
        .arg("--help")
        .output()
        .expect("run dead-letters");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for text in [
        "list",
        "replay",
        "purge",
        "0  done",
        "2  bad usage",
        "3  replay",
        "4  broker",
        "5  nothing",
        "130 interrupted",
    ] {
        assert!(help.contains(text), "missing {text:?} in:\n{help}");
    }
}

#[test]
fn purge_without_yes_refuses_before_connecting() {
    let output = Command::new(DEAD_LETTERS)
        .args(["purge", "--amqp-url", CLOSED, "--prefix", "p"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run dead-letters");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr,
        "dead-letters: purge deletes every letter in p.dead for good; \
         run `dead-letters purge --yes` to do it\n"
    );
}

#[test]
fn an_unreachable_broker_is_one_line_and_exit_4() {
    let output = Command::new(DEAD_LETTERS)
        .args(["--amqp-url", CLOSED, "list"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run dead-letters");
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("dead-letters: cannot connect to amqp://guest:***@127.0.0.1:1/"),
        "{stderr}"
    );
}
