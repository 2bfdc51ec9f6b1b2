//! The workspace's binaries run black-box: a long-running consumer process
//! with its output collected line by line, and commands run to their end.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::watch,
};

use crate::{
    TestApp,
    app::Lines,
    wait::{EVENT_TIMEOUT, wait_until},
};

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

/// Result of one run of the `producer` binary.
#[derive(Debug)]
pub struct ProducerRun {
    /// Its exit code (-1 for a signal).
    pub code: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl ProducerRun {
    /// Replies the producer's client received twice from one consumer for
    /// one call (and dropped), from its `run statistics` log line; `None`
    /// when the run logged none (see [`run_producer_with_stats`]).
    pub fn duplicate_replies(&self) -> Option<u64> {
        let line = self.stderr.lines().find(|l| l.contains("run statistics"))?;
        let value = line.split("duplicates=").nth(1)?;
        value
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    }
}

/// Runs the real `producer` binary to completion against `app`.
pub async fn run_producer(app: &TestApp, args: &[&str], stdin: Option<&str>) -> ProducerRun {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    run_producer_with(app.env(), args, stdin.map(str::to_owned)).await
}

/// Runs the real `producer` binary with the given environment; `'static`, so
/// a test can spawn it and break the broker meanwhile.
pub async fn run_producer_with(
    env: Vec<(String, String)>,
    args: Vec<String>,
    stdin: Option<String>,
) -> ProducerRun {
    run_producer_logging(env, args, stdin, None).await
}

/// Runs the real `producer` binary with its final statistics logged (for
/// [`ProducerRun::duplicate_replies`]).
pub async fn run_producer_with_stats(
    env: Vec<(String, String)>,
    args: Vec<String>,
    stdin: Option<String>,
) -> ProducerRun {
    run_producer_logging(env, args, stdin, Some("warn,producer=info")).await
}

async fn run_producer_logging(
    env: Vec<(String, String)>,
    args: Vec<String>,
    stdin: Option<String>,
    log: Option<&str>,
) -> ProducerRun {
    let mut command = Command::new(bin("producer"));
    command.args(&args).envs(env);
    match log {
        Some(filter) => command.env("RUST_LOG", filter),
        // What a user sees: the producer's own default log filter.
        None => command.env_remove("RUST_LOG"),
    };
    let run = run_to_end(&mut command, stdin).await;
    ProducerRun {
        code: run.code.unwrap_or(-1),
        stdout: run.stdout,
        stderr: run.stderr,
        elapsed: run.elapsed,
    }
}

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
