//! [`TestApp`]: one test's private world on a broker: its own uuid-named
//! prefix, hence its own exchanges and queues, so tests run in parallel.
//! Dropping it stops the consumers it started and deletes the topology, even
//! when the test panicked.

use std::{ffi::OsStr, process::Stdio, sync::Mutex};

use rabbit_gather::{
    Settings, protocol::Contract, rpc::RpcClient, service::ConsumerService,
    shutdown::CancellationToken, topology::Word,
};
use tokio::{process::Command, task::AbortHandle};

use crate::{
    broker::{amqp_url, probe},
    cleanup::Doomed,
    consumer::{RunningConsumer, TestHandler},
    consumer_process::ConsumerProcess,
    logs,
    process::bin,
    raw::Raw,
};

/// One test's private world: its own prefix, hence its own exchanges and
/// queues, on the broker it names.
pub struct TestApp {
    /// Settings for this test's clients and consumers (its broker and prefix,
    /// RPC timeout 10 s).
    pub settings: Settings,
    /// This test's topology prefix, `test.<12 hex digits>`.
    pub prefix: String,
    /// The broker this test uses (the main one, or a private node).
    pub url: String,
    /// Words served under the prefix, whose queues go with it.
    words: Mutex<Vec<Word>>,
    /// Queues a test declared itself, deleted with the test's own.
    extra_queues: Mutex<Vec<String>>,
    /// Consumers started in process, stopped (and aborted) on drop.
    consumers: Mutex<Vec<(CancellationToken, AbortHandle)>>,
}

impl TestApp {
    /// A test on the machine's broker (`AMQP_URL`).
    pub async fn new() -> Self {
        Self::on(&amqp_url()).await
    }

    /// A test on the broker at `url` (e.g. a private node); fails at once,
    /// saying what to start, when it cannot be reached.
    pub async fn on(url: &str) -> Self {
        logs::init();
        probe(url).await;
        let prefix = format!("test.{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let env = [
            ("AMQP_URL".to_owned(), url.to_owned()),
            ("GREETINGS_TOPOLOGY__PREFIX".to_owned(), prefix.clone()),
            ("GREETINGS_RPC__TIMEOUT".to_owned(), "10s".to_owned()),
        ];
        let settings = Settings::load_from(None, env).expect("test settings load");
        Self {
            settings,
            prefix,
            url: url.to_owned(),
            // A word some tests declare by hand to watch a queue vanish.
            words: Mutex::new(vec![word("victim")]),
            extra_queues: Mutex::new(Vec::new()),
            consumers: Mutex::new(Vec::new()),
        }
    }

    /// Registers a queue the test declares itself, so that it is deleted
    /// with this test's queues, even when the test panics.
    pub fn own_queue(&self, queue: &str) {
        self.extra_queues
            .lock()
            .expect("queues lock")
            .push(queue.to_owned());
    }

    /// Registers `word`, so that its queues are deleted with this test's.
    pub fn remember(&self, name: &str) {
        let name = word(name);
        let mut words = self.words.lock().expect("words lock");
        if !words.contains(&name) {
            words.push(name);
        }
    }

    /// Starts an in-process greetings consumer of `word` with this test's
    /// settings; when this returns it is consuming.
    pub async fn consumer(&self, word: &str) -> RunningConsumer {
        self.consumer_with(word, &self.settings, None).await
    }

    /// Starts the two greetings consumers most tests need, `hello` and
    /// `goodbye`, with this test's settings; both are consuming when this
    /// returns. [`stop_all`](crate::stop_all) stops them.
    pub async fn greeters(&self) -> (RunningConsumer, RunningConsumer) {
        (self.consumer("hello").await, self.consumer("goodbye").await)
    }

    /// Starts an in-process greetings consumer of `word` with `settings`,
    /// answering with `handler` (the default greeter when `None`); when this
    /// returns it is consuming.
    pub async fn consumer_with(
        &self,
        name: &str,
        settings: &Settings,
        handler: Option<TestHandler>,
    ) -> RunningConsumer {
        let service = ConsumerService::greetings(settings, word(name));
        let service = match handler {
            Some(handler) => service.with_handler(handler),
            None => service,
        };
        self.serve(name, service).await
    }

    /// Runs any consumer `service` of `word` (e.g. another application's
    /// responder) under this test; when this returns it is consuming.
    pub async fn serve(&self, name: &str, service: ConsumerService) -> RunningConsumer {
        // Expected panics of test handlers are not noise in the output.
        logs::quiet_expected_panics();
        self.remember(name);
        let running = RunningConsumer::spawn(name, service);
        self.consumers
            .lock()
            .expect("consumers lock")
            .push(running.handles());
        running.wait_for_sessions(1).await;
        running
    }

    /// A greetings RPC client with this test's settings.
    pub async fn client(&self) -> RpcClient {
        RpcClient::connect_with(&self.settings, Contract::GREETINGS)
            .await
            .expect("RPC client connects")
    }

    /// Raw AMQP on this test's broker and prefix.
    pub async fn raw(&self) -> Raw {
        Raw::open(&self.url, &self.prefix).await
    }

    /// Environment for the binaries: the test broker and this test's prefix.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AMQP_URL".to_owned(), self.url.clone()),
            ("GREETINGS_TOPOLOGY__PREFIX".to_owned(), self.prefix.clone()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ]
    }

    /// `program` aimed at this test's broker and prefix: stdout and stderr
    /// piped, no stdin, killed when dropped, and the user's default log
    /// filter (no `RUST_LOG`) unless the caller sets one.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .envs(self.env())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Starts the real `consumer` binary; when this returns it is consuming.
    pub async fn consumer_bin(&self, word: &str, extra_env: &[(&str, &str)]) -> ConsumerProcess {
        self.remember(word);
        ConsumerProcess::start(&bin("consumer"), word, self.env(), extra_env).await
    }

    /// Starts `gated-consumer` (the consumer service with a handler that
    /// holds every request until [`ConsumerProcess::open_gate`]); when this
    /// returns it is consuming.
    pub async fn gated_consumer_bin(&self, word: &str) -> ConsumerProcess {
        self.remember(word);
        ConsumerProcess::start(&bin("gated-consumer"), word, self.env(), &[]).await
    }
}

impl Drop for TestApp {
    /// Stops this test's consumers and deletes its exchanges and queues, even
    /// when the test panicked.
    fn drop(&mut self) {
        let consumers =
            std::mem::take(&mut *self.consumers.lock().unwrap_or_else(|p| p.into_inner()));
        for (stop, task) in consumers {
            stop.cancel();
            // Not awaited (drop cannot): aborted, so no session outlives the
            // test to declare its queue again.
            task.abort();
        }
        let words = self.words.lock().map(|w| w.clone()).unwrap_or_default();
        let extra = self
            .extra_queues
            .lock()
            .map(|q| q.clone())
            .unwrap_or_default();
        Doomed::topology(&self.prefix, &words, &extra).delete(&self.url);
    }
}

/// `name` as a word; the tests name only valid ones.
fn word(name: &str) -> Word {
    Word::parse(name).unwrap_or_else(|e| panic!("{name:?} is not a valid word: {e}"))
}
