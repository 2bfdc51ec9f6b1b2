//! Shared test fixtures: a uniquely prefixed topology per test (removed when
//! the test ends, pass or fail), in-process consumers, raw AMQP access for
//! contract-level checks, and the real binaries.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex, Once},
    time::{Duration, Instant},
};

use futures::{FutureExt, StreamExt, future::BoxFuture};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    message::Delivery,
    options::{
        BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::FieldTable,
};
use rabbit_gather::{
    Settings,
    protocol::{Contract, Name},
    rpc::RpcClient,
    service::{ConsumerService, Context, HandlerError, ServiceCounters, ServiceError},
    settings::DEFAULT_AMQP_URL,
    topology::Word,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::watch,
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

/// A handler a test plugs into an in-process consumer.
pub(crate) type TestHandler =
    Box<dyn Fn(Name, Context) -> BoxFuture<'static, Result<String, HandlerError>> + Send + Sync>;

/// A [`TestHandler`] from a plain function of the name and context.
pub(crate) fn test_handler<F>(f: F) -> TestHandler
where
    F: Fn(&Name, &Context) -> Result<String, HandlerError> + Send + Sync + 'static,
{
    Box::new(move |name, cx| {
        let result = f(&name, &cx);
        async move { result }.boxed()
    })
}

/// Longest any single expected event may take before a test fails.
/// A failure bound, not a speed target: generous, since the machines are
/// shared and the suite boots private nodes in parallel.
pub(crate) const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn amqp_url() -> String {
    std::env::var("AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_AMQP_URL.to_owned())
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            rabbit_gather::telemetry::init(tracing::Level::INFO);
        }
    });
}

/// A raw connection to the test broker, or a clear failure.
pub(crate) async fn connect_raw(url: &str) -> Connection {
    match tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => panic!(
            "cannot reach the test broker at {url} (AMQP_URL, default {DEFAULT_AMQP_URL}): {e}. \
             Start one with scripts/ensure-rabbitmq.sh"
        ),
        Err(_) => panic!("the test broker did not answer within 10 s; is RabbitMQ running?"),
    }
}

/// One test's private world: its own prefix, hence its own exchanges and queues.
pub(crate) struct TestApp {
    pub(crate) settings: Settings,
    pub(crate) prefix: String,
    /// The broker this test uses (the main one, or a private node).
    pub(crate) url: String,
    words: Mutex<Vec<String>>,
    /// Queues a test declared itself, deleted with the test's own.
    extra_queues: Mutex<Vec<String>>,
}

impl TestApp {
    /// A test on the machine's broker (`AMQP_URL`).
    pub(crate) async fn new() -> Self {
        Self::on(&amqp_url()).await
    }

    /// A test on the broker at `url` (e.g. a private node).
    pub(crate) async fn on(url: &str) -> Self {
        init_logs();
        // Fail early and clearly when there is no broker.
        connect_raw(url).await.close(200, "probe".into()).await.ok();
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
            words: Mutex::new(vec!["victim".to_owned()]),
            extra_queues: Mutex::new(Vec::new()),
        }
    }

    /// Registers a queue the test declares itself, so that it is deleted
    /// with this test's queues, even when the test panics.
    pub(crate) fn own_queue(&self, queue: &str) {
        self.extra_queues
            .lock()
            .expect("queues lock")
            .push(queue.to_owned());
    }

    fn remember(&self, word: &str) {
        let mut words = self.words.lock().expect("words lock");
        if !words.iter().any(|w| w == word) {
            words.push(word.to_owned());
        }
    }

    /// Starts an in-process consumer; when this returns it is consuming.
    pub(crate) async fn consumer(&self, word: &str) -> RunningConsumer {
        self.consumer_with(word, &self.settings, None).await
    }

    pub(crate) async fn consumer_with(
        &self,
        word: &str,
        settings: &Settings,
        handler: Option<TestHandler>,
    ) -> RunningConsumer {
        // Expected panics of test handlers are not noise in the output.
        quiet_expected_panics();
        self.remember(word);
        let printed = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&printed);
        let service = ConsumerService::greetings(settings, Word::parse(word).expect("valid word"))
            .with_printer(move |line| sink.lock().expect("lock").push(line.to_owned()));
        let service = match handler {
            Some(handler) => service.with_handler(handler),
            None => service,
        };
        let sessions = service.sessions();
        let losses = service.losses();
        let counters = service.counters();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(service.run(stop.clone()));
        let running = RunningConsumer {
            stop,
            handle,
            printed,
            sessions,
            losses,
            counters,
        };
        running.wait_for_sessions(1).await;
        running
    }
    pub(crate) async fn client(&self) -> RpcClient {
        RpcClient::connect_with(&self.settings, Contract::GREETINGS)
            .await
            .expect("RPC client connects")
    }

    pub(crate) async fn raw(&self) -> Raw {
        Raw::open(&self.url, &self.prefix).await
    }

    /// Environment for the binaries: the test broker and this test's prefix.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AMQP_URL".to_owned(), self.url.clone()),
            ("GREETINGS_TOPOLOGY__PREFIX".to_owned(), self.prefix.clone()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ]
    }

    /// Starts the real `consumer` binary; when this returns it is consuming.
    pub(crate) async fn consumer_bin(
        &self,
        word: &str,
        extra_env: &[(&str, &str)],
    ) -> ConsumerProcess {
        self.start_bin("consumer", &self.url, word, extra_env).await
    }

    /// Starts `gated-consumer` (the consumer service with a handler that
    /// holds every request until [`ConsumerProcess::open_gate`]); when this
    /// returns it is consuming.
    pub(crate) async fn gated_consumer_bin(&self, word: &str) -> ConsumerProcess {
        self.start_bin("gated-consumer", &self.url, word, &[]).await
    }

    async fn start_bin(
        &self,
        program: &str,
        url: &str,
        word: &str,
        extra_env: &[(&str, &str)],
    ) -> ConsumerProcess {
        self.remember(word);
        let mut command = Command::new(bin(program));
        command
            .arg(word)
            .envs(self.env())
            .env("AMQP_URL", url)
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
            "{program} {word} did not start consuming; stderr:\n{}",
            stderr.lock().expect("lock").join("\n")
        );
        ConsumerProcess {
            child,
            stdin,
            stdout,
            stderr,
        }
    }
}

impl Drop for TestApp {
    /// Deletes this test's exchanges and queues, even when the test panicked.
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        let url = self.url.clone();
        let words = self.words.lock().map(|w| w.clone()).unwrap_or_default();
        let extra_queues = self
            .extra_queues
            .lock()
            .map(|q| q.clone())
            .unwrap_or_default();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                let Ok(connection) =
                    Connection::connect(&url, ConnectionProperties::default()).await
                else {
                    return;
                };
                let Ok(channel) = connection.create_channel().await else {
                    return;
                };
                let mut queues: Vec<String> = words
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
                let retry_exchanges: Vec<String> = words
                    .iter()
                    .map(|w| format!("{prefix}.{w}.retry"))
                    .collect();
                queues.push(format!("{prefix}.dead"));
                queues.extend(extra_queues);
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

/// An in-process consumer service.
pub(crate) struct RunningConsumer {
    stop: CancellationToken,
    handle: JoinHandle<Result<(), ServiceError>>,
    printed: Arc<Mutex<Vec<String>>>,
    sessions: watch::Receiver<u64>,
    losses: watch::Receiver<u64>,
    pub(crate) counters: Arc<ServiceCounters>,
}

impl RunningConsumer {
    /// Waits until the service has started consuming `n` times (1 = up,
    /// 2 = recovered once, ...).
    pub(crate) async fn wait_for_sessions(&self, n: u64) {
        let mut sessions = self.sessions.clone();
        let reached = tokio::time::timeout(EVENT_TIMEOUT, sessions.wait_for(|s| *s >= n)).await;
        assert!(
            matches!(reached, Ok(Ok(_))),
            "consumer did not reach {n} consuming sessions (it has {})",
            *self.sessions.borrow()
        );
    }

    /// Sessions started so far.
    pub(crate) fn sessions_now(&self) -> watch::Ref<'_, u64> {
        self.sessions.borrow()
    }

    /// Waits until `n` sessions have ended with a broker fault.
    pub(crate) async fn wait_for_losses(&self, n: u64) {
        let mut losses = self.losses.clone();
        let reached = tokio::time::timeout(EVENT_TIMEOUT, losses.wait_for(|s| *s >= n)).await;
        assert!(
            matches!(reached, Ok(Ok(_))),
            "consumer did not notice {n} broker faults"
        );
    }

    /// The `W NAME` lines the service has printed so far.
    pub(crate) fn printed(&self) -> Vec<String> {
        self.printed.lock().expect("lock").clone()
    }

    /// Signals shutdown and waits for a clean stop.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let result = tokio::time::timeout(EVENT_TIMEOUT, self.handle)
            .await
            .expect("consumer stops in time")
            .expect("consumer task did not panic");
        assert!(result.is_ok(), "consumer ended with {result:?}");
    }
}

/// A running `consumer` (or `gated-consumer`) binary with its output
/// collected line by line.
pub(crate) struct ConsumerProcess {
    pub(crate) child: Child,
    stdin: Option<tokio::process::ChildStdin>,
    pub(crate) stdout: Arc<Mutex<Vec<String>>>,
    pub(crate) stderr: Arc<Mutex<Vec<String>>>,
}

impl ConsumerProcess {
    pub(crate) fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().expect("lock").clone()
    }

    pub(crate) fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().expect("lock").clone()
    }

    /// Waits until stderr has a line containing `text`.
    pub(crate) async fn wait_for_stderr(&self, text: &str) {
        wait_until(&format!("the consumer logs {text:?}"), || {
            let found = self.stderr_lines().iter().any(|l| l.contains(text));
            async move { found }
        })
        .await;
    }

    /// Opens a `gated-consumer`'s gate: every request held is answered, and
    /// later ones pass at once.
    pub(crate) async fn open_gate(&mut self) {
        use tokio::io::AsyncWriteExt;
        let stdin = self.stdin.as_mut().expect("stdin piped");
        stdin.write_all(b"open\n").await.expect("write to the gate");
        stdin.flush().await.expect("flush the gate");
    }

    /// Sends SIGTERM (the process goes on running).
    pub(crate) fn sigterm(&self) {
        let pid = self.child.id().expect("consumer still running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the process to exit; its exit code (-1 for a signal).
    pub(crate) async fn exit_code(&mut self) -> i32 {
        let exit = tokio::time::timeout(EVENT_TIMEOUT, self.child.wait())
            .await
            .expect("consumer exits in time")
            .expect("wait for consumer");
        exit.code().unwrap_or(-1)
    }

    /// Waits until stdout has a line equal to `line`.
    pub(crate) async fn wait_for_stdout(&self, line: &str) {
        wait_until(&format!("consumer prints {line:?}"), || {
            let found = self.stdout_lines().iter().any(|l| l == line);
            async move { found }
        })
        .await;
    }

    /// Sends SIGTERM and returns the exit code.
    pub(crate) async fn terminate(mut self) -> (i32, Vec<String>) {
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
) -> Arc<Mutex<Vec<String>>> {
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

/// A greetings reply body decoded, its greeting as text.
pub(crate) fn greeting_reply(
    body: &[u8],
) -> Result<rabbit_gather::protocol::Reply<String>, rabbit_gather::protocol::MalformedReply> {
    let reply = rabbit_gather::protocol::Reply::decode(&Contract::GREETINGS, body)?;
    Ok(rabbit_gather::protocol::Reply {
        consumer: reply.consumer,
        outcome: reply.outcome.decode(),
    })
}

/// One call for "Ada" waiting for `words`, on a client of its own made with
/// `settings` (closed afterwards).
pub(crate) async fn call_ada(
    settings: &Settings,
    words: &[&str],
) -> rabbit_gather::rpc::Gathered<String> {
    let client = RpcClient::connect_with(settings, Contract::GREETINGS)
        .await
        .expect("RPC client connects");
    let expect: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    let gathered = client
        .call::<_, String>(
            &Name::parse("Ada").expect("valid"),
            &expect,
            Duration::from_secs(10),
        )
        .await
        .expect("call");
    client.close().await;
    gathered
}

/// Path of a workspace binary, built by `cargo test --workspace` (the
/// producer and consumer packages have black-box tests, so Cargo builds them).
pub(crate) fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/integration-<hash> -> target/<profile>/<name>
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

/// Result of one run of the `producer` binary.
#[derive(Debug)]
pub(crate) struct ProducerRun {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl ProducerRun {
    /// Replies the producer's client received twice from one consumer for
    /// one call (and dropped), from its `run statistics` log line; `None`
    /// when the run logged none (see [`run_producer_with_stats`]).
    pub(crate) fn duplicate_replies(&self) -> Option<u64> {
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

/// Runs the real `producer` binary to completion.
pub(crate) async fn run_producer(app: &TestApp, args: &[&str], stdin: Option<&str>) -> ProducerRun {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    run_producer_with(app.env(), args, stdin.map(str::to_owned)).await
}

/// Runs the real `producer` binary with the given environment; `'static`, so
/// a test can spawn it and break the broker meanwhile.
pub(crate) async fn run_producer_with(
    env: Vec<(String, String)>,
    args: Vec<String>,
    stdin: Option<String>,
) -> ProducerRun {
    run_producer_logging(env, args, stdin, None).await
}

/// Runs the real `producer` binary with its final statistics logged (for
/// [`ProducerRun::duplicate_replies`]).
pub(crate) async fn run_producer_with_stats(
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
    let mut child = command.spawn().expect("spawn producer binary");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin piped");
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = pipe.write_all(text.as_bytes()).await;
        });
    }
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("producer finishes")
        .expect("producer output");
    ProducerRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// `rabbitmqctl` for the broker under test: `TEST_RABBITMQCTL` (a command
/// and its leading arguments, split on whitespace, e.g. `docker exec
/// greetings-test-rabbitmq4 rabbitmqctl` for the RabbitMQ 4 container that
/// scripts/test.sh runs the suite against too), else the machine's own.
pub(crate) fn rabbitmqctl() -> tokio::process::Command {
    let line = std::env::var("TEST_RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".to_owned());
    let mut words = line.split_whitespace();
    let mut command = tokio::process::Command::new(words.next().unwrap_or("rabbitmqctl"));
    command.args(words);
    command
}

/// `rabbitmqctl list_queues <columns>` on the broker under test: one row of
/// fields per queue.
pub(crate) async fn list_queues(columns: &[&str]) -> Vec<Vec<String>> {
    let listed = rabbitmqctl()
        .args(["-q", "list_queues"])
        .args(columns)
        .output()
        .await
        .expect("rabbitmqctl list_queues runs (TEST_RABBITMQCTL)");
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// Closes, from the broker's side, the connections whose name contains `name`
/// (names carry the test's unique prefix, so parallel tests are unaffected).
pub(crate) async fn kill_connection(name: &str) {
    let output = rabbitmqctl()
        .args(["-q", "list_connections", "pid", "client_properties"])
        .output()
        .await
        .expect("rabbitmqctl runs (TEST_RABBITMQCTL; the tests need it, as root, on the broker's machine)");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut killed = 0;
    for line in text.lines().filter(|l| l.contains(name)) {
        let pid = line.split_whitespace().next().expect("pid column");
        let status = rabbitmqctl()
            .args(["-q", "close_connection", pid, "test closes the connection"])
            .status()
            .await
            .expect("rabbitmqctl close_connection");
        assert!(status.success());
        killed += 1;
    }
    assert!(killed > 0, "no connection named {name} found:\n{text}");
}

/// Polls `condition` until it holds, failing the test after [`EVENT_TIMEOUT`].
pub(crate) async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Raw AMQP access, for requests the RPC client would never send.
pub(crate) struct Raw {
    pub(crate) connection: Connection,
    pub(crate) channel: Channel,
    replies: Consumer,
    prefix: String,
}

impl Raw {
    async fn open(url: &str, prefix: &str) -> Self {
        let connection = connect_raw(url).await;
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let replies = consume_no_ack(&channel, "amq.rabbitmq.reply-to").await;
        Self {
            connection,
            channel,
            replies,
            prefix: prefix.to_owned(),
        }
    }

    /// Publishes `body` to the request exchange and waits for the confirm.
    pub(crate) async fn publish(&self, body: &[u8], properties: BasicProperties) {
        let confirmation = self
            .channel
            .basic_publish(
                self.prefix.as_str().into(),
                "".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(
            matches!(confirmation, Confirmation::Ack(None)),
            "request not routed: {confirmation:?}"
        );
    }

    /// The next reply on direct reply-to, failing the test after [`EVENT_TIMEOUT`].
    pub(crate) async fn next_reply(&mut self) -> Delivery {
        tokio::time::timeout(EVENT_TIMEOUT, self.replies.next())
            .await
            .expect("a reply arrives in time")
            .expect("reply stream open")
            .expect("reply delivery")
    }

    /// A consumer of this test's dead-letter queue.
    pub(crate) async fn dead_letters(&self) -> DeadLetters {
        let channel = self.connection.create_channel().await.expect("channel");
        let consumer = consume_no_ack(&channel, &format!("{}.dead", self.prefix)).await;
        DeadLetters {
            _channel: channel,
            consumer,
        }
    }

    /// Ready messages and consumers of `queue` (passive declare).
    pub(crate) async fn queue_counts(&self, queue: &str) -> (u32, u32) {
        queue_counts(&self.connection, queue).await
    }
}

/// Ready messages and consumers of `queue` (passive declare on a channel of
/// its own, as a missing queue closes the channel), failing when it is missing.
pub(crate) async fn queue_counts(connection: &Connection, queue: &str) -> (u32, u32) {
    passive_declare(connection, queue)
        .await
        .unwrap_or_else(|e| panic!("queue {queue} exists: {e}"))
}

/// Whether `queue` exists. A declare, even passive, renews an `x-expires`
/// lease: to watch a queue expire, publish to it instead.
pub(crate) async fn queue_exists(connection: &Connection, queue: &str) -> bool {
    passive_declare(connection, queue).await.is_ok()
}

async fn passive_declare(connection: &Connection, queue: &str) -> lapin::Result<(u32, u32)> {
    let channel = connection.create_channel().await.expect("channel");
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map(|q| (q.message_count(), q.consumer_count()));
    let _ = channel.close(200, "done".into()).await;
    declared
}

/// Declares a durable queue with `arguments` (as an earlier version, or a
/// test, would have).
pub(crate) async fn declare_durable(channel: &Channel, queue: &str, arguments: FieldTable) {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .unwrap_or_else(|e| panic!("declare {queue}: {e}"));
}

/// The `x-greetings-reason` header of a dead letter the service published.
pub(crate) fn reason(letter: &Delivery) -> Option<String> {
    match letter
        .properties
        .headers()
        .as_ref()?
        .inner()
        .get(rabbit_gather::protocol::names::REASON_HEADER)?
    {
        lapin::types::AMQPValue::LongString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// An auto-acked consumer of `queue`.
pub(crate) async fn consume_no_ack(channel: &Channel, queue: &str) -> Consumer {
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("consume {queue}: {e}"))
}

pub(crate) struct DeadLetters {
    _channel: Channel,
    consumer: Consumer,
}

impl DeadLetters {
    pub(crate) async fn next(&mut self) -> Delivery {
        tokio::time::timeout(EVENT_TIMEOUT, self.consumer.next())
            .await
            .expect("a dead letter arrives in time")
            .expect("dead-letter stream open")
            .expect("dead-letter delivery")
    }
}

/// A delivery's `correlation_id`, if any.
pub(crate) fn correlation_id(delivery: &Delivery) -> Option<String> {
    delivery
        .properties
        .correlation_id()
        .as_ref()
        .map(ToString::to_string)
}

/// Request properties with a reply address (`amq.rabbitmq.reply-to`).
pub(crate) fn answerable(correlation_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_correlation_id(correlation_id.into())
        .with_reply_to("amq.rabbitmq.reply-to".into())
}

/// Expected panics of test handlers (their message starts with "test
/// handler") are not printed, even with `RUST_BACKTRACE` set; any other
/// panic is, as usual.
pub(crate) fn quiet_expected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !message.starts_with("test handler") {
                default(info);
            }
        }));
    });
}
