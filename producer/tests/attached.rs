//! Black-box checks, against the test broker (`AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`), that `producer` says before
//! sending which expected word has no consumer attached to its queue (one
//! stopped, or none ever started), and says it again in that word's missing
//! replies; and that it says nothing when every word has one. No broker is
//! a failure, never a skipped test.
//!
//! Its helpers are local on purpose (a uuid-named prefix, in-process
//! consumers, cleanup of the prefix's queues and exchanges on drop) while
//! the shared test support is being moved; they belong in that harness.

// A failed expectation is a failed test: panicking is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{process::Stdio, time::Duration};

use lapin::{
    Connection, ConnectionProperties,
    options::{QueueDeclareOptions, QueueDeleteOptions},
    types::FieldTable,
};
use rabbit_gather::{
    Settings,
    service::{ConsumerService, ServiceError},
    settings::DEFAULT_AMQP_URL,
    shutdown::CancellationToken,
    topology::Word,
};
use tokio::{process::Command, task::JoinHandle};

const PRODUCER: &str = env!("CARGO_BIN_EXE_producer");

/// Longest any expected event may take before a test fails: a failure
/// bound, not a speed target (the machines are shared).
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

type Running = (CancellationToken, JoinHandle<Result<(), ServiceError>>);

/// One test's prefix on the broker and its consumers.
struct Prefix {
    url: String,
    name: String,
    settings: Settings,
    words: Vec<String>,
    running: Vec<(String, Running)>,
}

impl Prefix {
    async fn new() -> Self {
        let url = std::env::var("AMQP_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_AMQP_URL.to_owned());
        let probe = tokio::time::timeout(
            Duration::from_secs(10),
            Connection::connect(&url, ConnectionProperties::default()),
        )
        .await;
        match probe {
            Ok(Ok(connection)) => {
                let _ = connection.close(200, "probe".into()).await;
            }
            Ok(Err(e)) => panic!(
                "cannot reach the test broker at {url} (AMQP_URL): {e}. Start one with \
                 scripts/ensure-rabbitmq.sh"
            ),
            Err(_) => panic!("the test broker at {url} did not answer within 10 s"),
        }
        let name = format!("test.{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let env = [
            ("AMQP_URL".to_owned(), url.clone()),
            ("GREETINGS_TOPOLOGY__PREFIX".to_owned(), name.clone()),
        ];
        let settings = Settings::load_from(None, env).expect("test settings load");
        Self {
            url,
            name,
            settings,
            words: Vec::new(),
            running: Vec::new(),
        }
    }

    /// Starts an in-process consumer of `word`; when this returns it is
    /// consuming.
    async fn start(&mut self, word: &str) {
        self.words.push(word.to_owned());
        let service =
            ConsumerService::greetings(&self.settings, Word::parse(word).expect("valid word"))
                .with_printer(|_| {});
        let mut sessions = service.sessions();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(service.run(stop.clone()));
        self.running.push((word.to_owned(), (stop, handle)));
        let started = tokio::time::timeout(EVENT_TIMEOUT, sessions.wait_for(|n| *n >= 1)).await;
        assert!(
            matches!(started, Ok(Ok(_))),
            "the {word} consumer did not start consuming"
        );
    }

    /// Stops the consumer of `word` and waits until the broker counts no
    /// consumer on its queue, which stays.
    async fn stop(&mut self, word: &str) {
        let at = self
            .running
            .iter()
            .position(|(w, _)| w == word)
            .expect("a running consumer");
        let (_, (stop, handle)) = self.running.remove(at);
        stop.cancel();
        let stopped = tokio::time::timeout(EVENT_TIMEOUT, handle)
            .await
            .expect("the consumer stops in time")
            .expect("the consumer task ends");
        assert!(stopped.is_ok(), "{stopped:?}");
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("connect");
        let queue = format!("{}.{word}", self.name);
        let detached = tokio::time::timeout(EVENT_TIMEOUT, async {
            let mut every = tokio::time::interval(Duration::from_millis(50));
            loop {
                every.tick().await;
                let channel = connection.create_channel().await.expect("channel");
                let passive = QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                };
                let declared = channel
                    .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                    .await
                    .expect("the queue stays after its consumer stops");
                let _ = channel.close(200, "checked".into()).await;
                if declared.consumer_count() == 0 {
                    break;
                }
            }
        })
        .await;
        let _ = connection.close(200, "checked".into()).await;
        assert!(detached.is_ok(), "{queue} still has a consumer after 30 s");
    }

    /// Runs the producer on this prefix to its end: (exit code, stdout, stderr).
    async fn producer(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let output = Command::new(PRODUCER)
            .args(args)
            .env("AMQP_URL", &self.url)
            .env("GREETINGS_TOPOLOGY__PREFIX", &self.name)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(120), output)
            .await
            .expect("the producer finishes within 120 s")
            .expect("the producer runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for Prefix {
    /// Stops the consumers and deletes this prefix's queues and exchanges,
    /// even when the test panicked.
    fn drop(&mut self) {
        for (_, (stop, handle)) in &self.running {
            stop.cancel();
            handle.abort();
        }
        let prefix = self.name.clone();
        let url = self.url.clone();
        let mut queues: Vec<String> = self
            .words
            .iter()
            .flat_map(|w| ["", ".retry", ".due"].map(|s| format!("{prefix}.{w}{s}")))
            .collect();
        queues.push(format!("{prefix}.dead"));
        let mut exchanges: Vec<String> = self
            .words
            .iter()
            .map(|w| format!("{prefix}.{w}.retry"))
            .collect();
        exchanges.extend([
            prefix.clone(),
            format!("{prefix}.dlx"),
            format!("{prefix}.reply"),
        ]);
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
                for exchange in exchanges {
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

#[tokio::test]
async fn a_word_whose_consumers_stopped_is_named_before_sending_and_in_its_missing_replies() {
    let mut prefix = Prefix::new().await;
    prefix.start("hello").await;
    prefix.start("goodbye").await;
    prefix.stop("goodbye").await;

    let (code, stdout, stderr) = prefix
        .producer(&["--expect", "hello,goodbye", "--timeout", "1s", "Ada"])
        .await;

    assert_eq!(code, Some(3), "incomplete, as documented: {stderr}");
    assert_eq!(stdout, "hello Ada\n");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "producer: no consumer is attached to {}.goodbye: replies from goodbye will be \
                 missing unless one starts",
                prefix.name
            )
            .as_str(),
            "producer: no reply from goodbye for \"Ada\" within 1s (no goodbye consumer was \
             attached at the start)",
        ],
        "{stderr}"
    );
}

#[tokio::test]
async fn a_word_with_no_queue_at_all_is_named_before_sending() {
    let mut prefix = Prefix::new().await;
    prefix.start("hello").await;

    let (code, stdout, stderr) = prefix
        .producer(&["--expect", "hello,nobody", "--timeout", "1s", "Ada"])
        .await;

    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(stdout, "hello Ada\n");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "producer: there is no queue {}.nobody: no nobody consumer has started (or its \
                 queue was deleted); replies from nobody will be missing unless one starts",
                prefix.name
            )
            .as_str(),
            "producer: no reply from nobody for \"Ada\" within 1s (no nobody consumer was \
             attached at the start)",
        ],
        "{stderr}"
    );
}

#[tokio::test]
async fn every_word_with_a_consumer_attached_gives_no_warning() {
    let mut prefix = Prefix::new().await;
    prefix.start("hello").await;
    prefix.start("goodbye").await;

    let (code, stdout, stderr) = prefix.producer(&["--expect", "hello,goodbye", "Ada"]).await;

    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "hello Ada\ngoodbye Ada\n");
    assert_eq!(stderr, "", "no warning, no missing reply");
}
