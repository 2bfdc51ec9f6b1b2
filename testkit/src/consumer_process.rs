//! [`ConsumerProcess`]: a running `consumer` (or `gated-consumer`) binary
//! with its output collected line by line.

use std::{
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::watch,
};

use crate::{
    lines::Lines,
    process::sigterm,
    wait::{EVENT_TIMEOUT, wait_until},
};

/// A running `consumer` (or `gated-consumer`) binary with its output
/// collected line by line.
pub struct ConsumerProcess {
    /// The process.
    pub child: Child,
    stdin: Option<ChildStdin>,
    /// Its stdout lines so far.
    pub stdout: Lines,
    /// Its stderr lines so far.
    pub stderr: Lines,
}

impl ConsumerProcess {
    /// Starts `program WORD` with `env` then `extra_env`; when this returns
    /// it logs that it is consuming.
    pub async fn start(
        program: &Path,
        word: &str,
        env: Vec<(String, String)>,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(program);
        command
            .arg(word)
            .envs(env)
            .envs(extra_env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn consumer binary");
        let stdin = child.stdin.take();
        let stdout = collect_lines(child.stdout.take().expect("stdout piped"), None);
        let (ready_tx, mut ready) = watch::channel(false);
        let stderr = collect_lines(child.stderr.take().expect("stderr piped"), Some(ready_tx));
        let started = tokio::time::timeout(EVENT_TIMEOUT, ready.wait_for(|r| *r)).await;
        assert!(
            matches!(started, Ok(Ok(_))),
            "{} {word} did not start consuming; stderr:\n{}",
            program.display(),
            stderr.lock().expect("lock").join("\n")
        );
        Self {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Its stdout lines so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().expect("lock").clone()
    }

    /// Its stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().expect("lock").clone()
    }

    /// Waits until stderr has a line containing `text`.
    pub async fn wait_for_stderr(&self, text: &str) {
        wait_until(&format!("the consumer logs {text:?}"), || {
            let found = self.stderr_lines().iter().any(|l| l.contains(text));
            async move { found }
        })
        .await;
    }

    /// Opens a `gated-consumer`'s gate: every request held is answered, and
    /// later ones pass at once.
    pub async fn open_gate(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin piped");
        stdin.write_all(b"open\n").await.expect("write to the gate");
        stdin.flush().await.expect("flush the gate");
    }

    /// Sends SIGTERM (the process goes on running).
    pub fn sigterm(&self) {
        sigterm(self.child.id().expect("consumer still running"));
    }

    /// Waits for the process to exit; its exit code (-1 for a signal).
    pub async fn exit_code(&mut self) -> i32 {
        let exit = tokio::time::timeout(EVENT_TIMEOUT, self.child.wait())
            .await
            .expect("consumer exits in time")
            .expect("wait for consumer");
        exit.code().unwrap_or(-1)
    }

    /// Waits until stdout has a line equal to `line`.
    pub async fn wait_for_stdout(&self, line: &str) {
        wait_until(&format!("consumer prints {line:?}"), || {
            let found = self.stdout_lines().iter().any(|l| l == line);
            async move { found }
        })
        .await;
    }

    /// Sends SIGTERM and returns the exit code and stdout lines.
    pub async fn terminate(mut self) -> (i32, Vec<String>) {
        self.sigterm();
        let code = self.exit_code().await;
        (code, self.stdout_lines())
    }
}

/// Reads `reader` line by line into a shared buffer; flips `ready` when the
/// consumer logs that it is consuming.
fn collect_lines(
    reader: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    ready: Option<watch::Sender<bool>>,
) -> Lines {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if let Some(ready) = &ready
                && (line.contains(" consuming ") || line.contains(r#""message":"consuming""#))
            {
                let _ = ready.send(true);
            }
            sink.lock().expect("lock").push(line);
        }
    });
    lines
}
