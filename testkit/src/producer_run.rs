//! [`ProducerRun`]: the real `producer` binary run to its end against a
//! test's broker and prefix.

use std::time::Duration;

use tokio::process::Command;

use crate::{
    app::TestApp,
    process::{bin, run_to_end},
};

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
    /// Asserts that the run exited with `code` and said `part` on stderr.
    pub fn assert_exit(&self, code: i32, part: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(
            self.stderr.contains(part),
            "stderr lacks {part:?}:\n{}",
            self.stderr
        );
    }

    /// Asserts that the run exited with `code`, said `part` on stderr, and
    /// ended within `bound` (a deadline kept, not a speed: `bound` is the
    /// run's own deadline plus a margin).
    pub fn assert_ended(&self, code: i32, part: &str, bound: Duration) {
        self.assert_exit(code, part);
        assert!(
            self.elapsed < bound,
            "ended after {:?}, past {bound:?}",
            self.elapsed
        );
    }

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
