//! The workspace's binaries run black-box: where they are, how to stop one,
//! and commands run to their end (see [`crate::consumer_process`] and
//! [`crate::producer_run`] for the consumer and producer binaries).

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{io::AsyncWriteExt, process::Command};

/// Longest a command run to its end may take (a producer sending thousands
/// of names on a shared machine).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Path of a workspace binary beside the running test binary (Cargo builds
/// the `producer` and `consumer` binaries for `cargo test --workspace`, as
/// their packages have black-box tests; `gated-consumer` is the tests
/// crate's own). Inside the binary's own package, prefer
/// `env!("CARGO_BIN_EXE_<name>")`.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// Sends SIGTERM to process `pid` (which goes on running until it exits).
pub fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid} failed");
}

/// A command run to its end.
#[derive(Debug)]
pub struct Finished {
    /// Its exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Its standard output, lossily decoded.
    pub stdout: String,
    /// Its standard error, lossily decoded.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

/// Runs `command` to its end (at most [`RUN_TIMEOUT`]), writing `stdin` to
/// it when given (else it reads nothing), its output captured.
pub async fn run_to_end(command: &mut Command, stdin: Option<String>) -> Finished {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command.spawn().expect("the command starts");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin piped");
        tokio::spawn(async move {
            let _ = pipe.write_all(text.as_bytes()).await;
        });
    }
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the command did not end within {RUN_TIMEOUT:?}"))
        .expect("the command's output is read");
    Finished {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}
