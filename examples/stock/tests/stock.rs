//! Stock against a real broker (`AMQP_URL`, default the local guest broker;
//! a test that cannot reach it fails, it never skips): in-process warehouses
//! on a route of the test's own, the library's client, and the `stock`
//! binary run black-box.
//!
//! Each test's exchanges and queues are deleted when it ends, pass or fail
//! (the approach of `tests/integration/helpers.rs`'s `TestApp`).

// A failed expectation is a failed test: panicking is the point here (the
// helpers outside `#[test]` functions too).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    process::{Output, Stdio},
    sync::Mutex,
    time::Duration,
};

use lapin::{Connection, ConnectionProperties, options::QueueDeleteOptions};
use rabbit_gather::{
    Settings,
    protocol::names::REQUEST_FAILED,
    rpc::{RpcClient, Until},
    service::{ConsumerService, Context, Handler, HandlerError, ServiceError},
    settings::DEFAULT_AMQP_URL,
    shutdown::CancellationToken,
    topology::{Topology, Word},
};
use stock::{StockLevel, StockQuery, Total, Warehouse, exit, total};
use tokio::{process::Command, task::JoinHandle};

const STOCK: &str = env!("CARGO_BIN_EXE_stock");

/// Longest any one expected event may take before a test fails: a failure
/// bound on a shared 2-core machine, not a speed target.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The deadline of a call that is expected to end by it (a warehouse
/// missing): short, since the test waits it out.
const SHORT_DEADLINE: Duration = Duration::from_secs(2);

fn amqp_url() -> String {
    std::env::var("AMQP_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_AMQP_URL.to_owned())
}

/// One test's route, `stock-test-<uuid>`: its settings, and the warehouses
/// started on it, whose queues and exchanges are deleted on drop.
struct Route {
    settings: Settings,
    prefix: String,
    url: String,
    names: Mutex<Vec<Word>>,
}

impl Route {
    /// A fresh route on the test broker, which must be reachable.
    async fn new() -> Self {
        let url = amqp_url();
        match tokio::time::timeout(
            Duration::from_secs(10),
            Connection::connect(&url, ConnectionProperties::default()),
        )
        .await
        {
            Ok(Ok(connection)) => {
                let _ = connection.close(200, "probe".into()).await;
            }
            Ok(Err(error)) => panic!(
                "cannot reach the test broker at {url} (AMQP_URL, default {DEFAULT_AMQP_URL}): \
                 {error}. Start one with scripts/ensure-rabbitmq.sh"
            ),
            Err(_) => panic!("the test broker at {url} did not answer within 10 s"),
        }
        let prefix = format!("stock-test-{}", uuid::Uuid::new_v4().simple());
        let mut settings = Settings::default();
        settings.amqp.url = url.clone().into();
        settings.topology.prefix.clone_from(&prefix);
        settings.validate().expect("test settings are valid");
        Self {
            settings,
            prefix,
            url,
            names: Mutex::new(Vec::new()),
        }
    }

    /// Starts warehouse `name` holding `spec`; when this returns it consumes.
    async fn warehouse(&self, name: &str, spec: &str) -> Running {
        let warehouse: Warehouse = spec.parse().expect("valid stock spec");
        self.responder(name, warehouse).await
    }

    /// Starts a responder `name` with any stock handler; when this returns
    /// it consumes.
    async fn responder(
        &self,
        name: &str,
        handler: impl Handler<StockQuery, StockLevel>,
    ) -> Running {
        let word = Word::parse(name).expect("valid warehouse name");
        self.names.lock().expect("names lock").push(word.clone());
        let service = ConsumerService::new(&self.settings, word, handler);
        let mut sessions = service.sessions();
        let stop = CancellationToken::new();
        let task = tokio::spawn(service.run(stop.clone()));
        let consuming = tokio::time::timeout(EVENT_TIMEOUT, sessions.wait_for(|n| *n >= 1)).await;
        assert!(
            matches!(consuming, Ok(Ok(_))),
            "warehouse {name} did not start consuming within {EVENT_TIMEOUT:?}"
        );
        Running {
            name: name.to_owned(),
            stop,
            task,
        }
    }

    async fn client(&self) -> RpcClient {
        RpcClient::connect(&self.settings)
            .await
            .expect("the RPC client connects")
    }

    /// Runs the `stock` binary on this route with `args`.
    async fn stock_bin(&self, args: &[&str]) -> Output {
        run_stock(Command::new(STOCK).args(args).args([
            "--route",
            &self.prefix,
            "--amqp-url",
            &self.url,
        ]))
        .await
    }
}

impl Drop for Route {
    /// Deletes the route's queues and exchanges, even when the test panicked
    /// (on a thread of its own: the test's runtime may be gone or busy).
    fn drop(&mut self) {
        let topology = Topology::new(&self.prefix);
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        let mut queues = vec![topology.dead_letter_queue()];
        let mut exchanges = vec![
            topology.exchange(),
            topology.reply_exchange(),
            topology.dead_letter_exchange(),
        ];
        for name in &names {
            queues.extend([
                topology.queue(name),
                topology.due_queue(name),
                topology.retry_queue(name),
            ]);
            exchanges.push(topology.retry_exchange(name));
        }
        let url = self.url.clone();
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

/// A warehouse service running in this process.
struct Running {
    name: String,
    stop: CancellationToken,
    task: JoinHandle<Result<(), ServiceError>>,
}

impl Running {
    /// Stops the service and waits for a clean stop.
    async fn stop(self) {
        self.stop.cancel();
        let stopped = tokio::time::timeout(EVENT_TIMEOUT, self.task)
            .await
            .unwrap_or_else(|_| panic!("warehouse {} did not stop in time", self.name))
            .expect("the warehouse task did not panic");
        assert!(
            stopped.is_ok(),
            "warehouse {} ended with {stopped:?}",
            self.name
        );
    }
}

/// Runs the `stock` binary to its end (at most [`EVENT_TIMEOUT`]).
async fn run_stock(command: &mut Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the stock binary starts");
    tokio::time::timeout(EVENT_TIMEOUT, child.wait_with_output())
        .await
        .expect("the stock binary ends in time")
        .expect("the stock binary's output is read")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn apple() -> StockQuery {
    StockQuery::new("apple").expect("valid item")
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|&name| name.to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_live_warehouse_answers_and_the_total_is_their_sum() {
    let route = Route::new().await;
    let east = route.warehouse("east", "apple=3,pear=5").await;
    let west = route.warehouse("west", "apple=5").await;
    let north = route.warehouse("north", "pear=1").await;
    let client = route.client().await;

    let gathered = client
        .call::<_, StockLevel>(&apple(), Until::Live, EVENT_TIMEOUT)
        .await
        .expect("the call succeeds");
    assert_eq!(
        total(&gathered),
        Total {
            units: 8,
            answered: names(&["east", "north", "west"]),
            missing: Vec::new(),
            errors: Vec::new(),
        },
        "north stocks no apples: it answers 0"
    );
    assert_eq!(
        gathered.reply_of("east").and_then(|o| o.ok()),
        Some(&StockLevel {
            item: "apple".to_owned(),
            units: 3
        })
    );

    let output = route.stock_bin(&["apple", "--timeout", "20s"]).await;
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::OK)),
        "stderr: {}",
        text(&output.stderr)
    );
    assert_eq!(text(&output.stdout), "east 3\nnorth 0\nwest 5\ntotal 8\n");

    client.close().await;
    for warehouse in [east, west, north] {
        warehouse.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_warehouse_is_named_missing_by_the_deadline_and_the_total_covers_the_others() {
    let route = Route::new().await;
    let east = route.warehouse("east", "apple=3").await;
    let west = route.warehouse("west", "apple=5").await;
    let south = route.warehouse("south", "apple=7").await;
    let client = route.client().await;
    // Its queue stays bound: the request waits there, unanswered.
    west.stop().await;

    let started = tokio::time::Instant::now();
    let gathered = client
        .call::<_, StockLevel>(
            &apple(),
            Until::All(names(&["east", "west", "south"])),
            SHORT_DEADLINE,
        )
        .await
        .expect("a deadline is a result, not an error");
    let took = started.elapsed();
    assert_eq!(
        total(&gathered),
        Total {
            units: 10,
            answered: names(&["east", "south"]),
            missing: names(&["west"]),
            errors: Vec::new(),
        }
    );
    assert!(
        took >= SHORT_DEADLINE && took < SHORT_DEADLINE + Duration::from_secs(5),
        "the call ends at its deadline, not before nor long after: {took:?}"
    );

    // The binary asks the live warehouses only: west is not among them.
    let output = route.stock_bin(&["apple"]).await;
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::OK)),
        "stderr: {}",
        text(&output.stderr)
    );
    assert_eq!(text(&output.stdout), "east 3\nsouth 7\ntotal 10\n");

    client.close().await;
    east.stop().await;
    south.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_warehouse_that_does_not_answer_in_time_makes_the_binary_name_it_and_exit_3() {
    let route = Route::new().await;
    let east = route.warehouse("east", "apple=3").await;
    // Answers the roll call (the runtime does, without the handler), then
    // holds the query until the gate opens.
    let gate = CancellationToken::new();
    let held = gate.clone();
    let slow = route
        .responder("slow", move |query: StockQuery, _: Context| {
            let held = held.clone();
            async move {
                held.cancelled().await;
                Ok::<_, HandlerError>(StockLevel {
                    item: query.item,
                    units: 1,
                })
            }
        })
        .await;

    let output = route.stock_bin(&["apple", "--timeout", "2s"]).await;
    gate.cancel();
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::MISSING)),
        "stdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert_eq!(text(&output.stdout), "east 3\ntotal 3\n");
    assert!(
        text(&output.stderr).contains("stock: slow did not answer within 2s"),
        "{}",
        text(&output.stderr)
    );

    east.stop().await;
    slow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_item_is_refused_for_good_by_every_warehouse() {
    let route = Route::new().await;
    let east = route.warehouse("east", "apple=3").await;
    let west = route.warehouse("west", "").await;
    let client = route.client().await;

    // Past the client-side check, as another client could send it.
    let empty = StockQuery {
        item: String::new(),
    };
    let gathered = client
        .call::<_, StockLevel>(&empty, Until::All(names(&["east", "west"])), EVENT_TIMEOUT)
        .await
        .expect("the call succeeds");
    let total = total(&gathered);
    assert_eq!(total.units, 0);
    assert!(total.answered.is_empty() && total.missing.is_empty());
    let refusal = format!("{REQUEST_FAILED}: the item name is empty");
    assert_eq!(
        total.errors,
        [
            ("east".to_owned(), refusal.clone()),
            ("west".to_owned(), refusal)
        ]
    );

    // The binary checks the name before sending anything.
    let output = route.stock_bin(&[""]).await;
    assert_eq!(output.status.code(), Some(i32::from(exit::FAILURE)));
    assert!(
        text(&output.stderr).contains("the item name is empty; nothing was sent"),
        "{}",
        text(&output.stderr)
    );

    client.close().await;
    east.stop().await;
    west.stop().await;
}

#[tokio::test]
async fn the_binary_exits_2_when_the_broker_is_unreachable_without_showing_the_password() {
    let output = run_stock(Command::new(STOCK).args([
        "apple",
        "--amqp-url",
        "amqp://guest:s3cr3t@127.0.0.1:1/%2f",
    ]))
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::UNREACHABLE)),
        "{stderr}"
    );
    assert!(stderr.contains("cannot connect to"), "{stderr}");
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
    assert!(output.stdout.is_empty());
}
