//! A private world on the test broker (`AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`) for black-box runs of the
//! `producer` binary: a uuid-named prefix, so tests run in parallel;
//! in-process consumers; and, when the test ends, pass or fail, the removal of
//! every queue and exchange under the prefix. No broker is a clear failure,
//! never a skipped test.

use std::{process::Stdio, time::Duration};

use lapin::{Connection, ConnectionProperties, options::QueueDeleteOptions};
use rabbit_gather::{
    Settings,
    protocol::Name,
    service::{ConsumerService, Handler, ServiceError},
    settings::DEFAULT_AMQP_URL,
    shutdown::CancellationToken,
    topology::Word,
};
use tokio::{process::Command, task::JoinHandle};

/// Longest any expected event may take before a test fails: a failure
/// bound, not a speed target (the machines are shared).
pub(crate) const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

const PRODUCER: &str = env!("CARGO_BIN_EXE_producer");

fn amqp_url() -> String {
    std::env::var("AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_AMQP_URL.to_owned())
}

/// One run of the `producer` binary, finished.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Every stdout line parsed as JSON (a line that is not fails the test).
    pub(crate) fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{self:?}"))
            })
            .collect()
    }
}

/// One test's prefix on the broker, and the consumers it started.
pub(crate) struct World {
    url: String,
    prefix: String,
    settings: Settings,
    words: Vec<String>,
    consumers: Vec<(CancellationToken, JoinHandle<Result<(), ServiceError>>)>,
}

impl World {
    /// A fresh prefix on the test broker; fails the test when there is none.
    pub(crate) async fn new() -> Self {
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
                "cannot reach the test broker at {url} (AMQP_URL, default {DEFAULT_AMQP_URL}): \
                 {e}. Start one with scripts/ensure-rabbitmq.sh"
            ),
            Err(_) => panic!("the test broker at {url} did not answer within 10 s"),
        }
        let prefix = format!("test.{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let env = [
            ("AMQP_URL".to_owned(), url.clone()),
            ("GREETINGS_TOPOLOGY__PREFIX".to_owned(), prefix.clone()),
        ];
        let settings = Settings::load_from(None, env).expect("test settings load");
        Self {
            url,
            prefix,
            settings,
            words: Vec::new(),
            consumers: Vec::new(),
        }
    }

    /// Starts an in-process consumer of `word` with the default greeter;
    /// when this returns it is consuming.
    pub(crate) async fn consumer(&mut self, word: &str) {
        let service = self.service(word);
        self.start(word, service).await;
    }

    /// Like [`consumer`](Self::consumer), answering with `handler`.
    pub(crate) async fn consumer_with(&mut self, word: &str, handler: impl Handler<Name, String>) {
        let service = self.service(word).with_handler(handler);
        self.start(word, service).await;
    }

    fn service(&mut self, word: &str) -> ConsumerService {
        self.words.push(word.to_owned());
        // What consumers print is not what these tests check.
        ConsumerService::greetings(&self.settings, Word::parse(word).expect("valid word"))
            .with_printer(|_| {})
    }

    async fn start(&mut self, word: &str, service: ConsumerService) {
        let mut sessions = service.sessions();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(service.run(stop.clone()));
        self.consumers.push((stop, handle));
        let started = tokio::time::timeout(EVENT_TIMEOUT, sessions.wait_for(|n| *n >= 1)).await;
        assert!(
            matches!(started, Ok(Ok(_))),
            "the {word} consumer did not start consuming"
        );
    }

    /// The `producer` binary aimed at this world, its stdout and stderr
    /// piped, no stdin, and the user's default log filter unless `RUST_LOG`
    /// is set on the command.
    pub(crate) fn producer(&self, args: &[&str]) -> Command {
        let mut command = Command::new(PRODUCER);
        command
            .args(args)
            .env("AMQP_URL", &self.url)
            .env("GREETINGS_TOPOLOGY__PREFIX", &self.prefix)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs `command` (from [`producer`](Self::producer)) to its end.
    pub(crate) async fn run(mut command: Command) -> Run {
        let output = tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .expect("the producer finishes within 120 s")
            .expect("the producer runs");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Drop for World {
    /// Stops the consumers and deletes this prefix's queues and exchanges,
    /// even when the test panicked.
    fn drop(&mut self) {
        for (stop, handle) in &self.consumers {
            stop.cancel();
            // Not awaited (Drop cannot): aborted, so no session outlives
            // the test to declare its queue again.
            handle.abort();
        }
        let prefix = self.prefix.clone();
        let url = self.url.clone();
        let mut queues: Vec<String> = self
            .words
            .iter()
            .flat_map(|w| {
                [
                    format!("{prefix}.{w}"),
                    format!("{prefix}.{w}.retry"),
                    format!("{prefix}.{w}.due"),
                ]
            })
            .collect();
        // Each word's retry exchange shares its retry queue's name.
        let retry_exchanges: Vec<String> = self
            .words
            .iter()
            .map(|w| format!("{prefix}.{w}.retry"))
            .collect();
        queues.push(format!("{prefix}.dead"));
        // Its own thread and runtime: this one may be shutting down.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(connection) =
                    Connection::connect(&url, ConnectionProperties::default()).await
                else {
                    return;
                };
                let Ok(channel) = connection.create_channel().await else {
                    return;
                };
                for queue in queues {
                    let _ = channel
                        .queue_delete(queue.into(), QueueDeleteOptions::default())
                        .await;
                }
                let fixed = [
                    prefix.clone(),
                    format!("{prefix}.dlx"),
                    format!("{prefix}.reply"),
                ];
                for exchange in fixed.into_iter().chain(retry_exchanges) {
                    let _ = channel
                        .exchange_delete(exchange.into(), Default::default())
                        .await;
                }
                let _ = connection.close(200, "cleanup".into()).await;
            });
        });
        let _ = cleanup.join();
    }
}
