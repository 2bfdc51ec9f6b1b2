//! Stock against a real broker (`AMQP_URL`, default the local guest broker;
//! a test that cannot reach it fails, it never skips): in-process warehouses
//! on a route of the test's own, the library's client, and the `stock`
//! binary run black-box.
//!
//! Each test's exchanges and queues are deleted when it ends, pass or fail:
//! the workspace's one test harness (`testkit`) sees to that.

// A failed expectation is a failed test: panicking is the point here (the
// helpers outside `#[test]` functions too).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use rabbit_gather::{
    protocol::names::REQUEST_FAILED,
    rpc::{RpcClient, Until},
    service::{ConsumerService, Context, Handler, HandlerError},
    shutdown::CancellationToken,
    topology::Word,
};
use stock::{StockLevel, StockQuery, Total, Warehouse, exit, total};
use testkit::{EVENT_TIMEOUT, Finished, RunningConsumer, TestApp, run_to_end};
use tokio::process::Command;

const STOCK: &str = env!("CARGO_BIN_EXE_stock");

/// The deadline of a call that is expected to end by it (a warehouse
/// missing): short, since the test waits it out.
const SHORT_DEADLINE: Duration = Duration::from_secs(2);

/// Starts warehouse `name` holding `spec` on `app`'s route; when this
/// returns it consumes.
async fn warehouse(app: &TestApp, name: &str, spec: &str) -> RunningConsumer {
    let warehouse: Warehouse = spec.parse().expect("valid stock spec");
    responder(app, name, warehouse).await
}

/// Starts a responder `name` with any stock handler on `app`'s route; when
/// this returns it consumes.
async fn responder(
    app: &TestApp,
    name: &str,
    handler: impl Handler<StockQuery, StockLevel>,
) -> RunningConsumer {
    let word = Word::parse(name).expect("valid warehouse name");
    app.serve(name, ConsumerService::new(&app.settings, word, handler))
        .await
}

/// The library's client on `app`'s route.
async fn client(app: &TestApp) -> RpcClient {
    RpcClient::connect(&app.settings)
        .await
        .expect("the RPC client connects")
}

/// Runs the `stock` binary on `app`'s route with `args`.
async fn stock_bin(app: &TestApp, args: &[&str]) -> Finished {
    let route = ["--route", &app.prefix, "--amqp-url", &app.url];
    run_to_end(Command::new(STOCK).args(args).args(route), None).await
}

fn apple() -> StockQuery {
    StockQuery::new("apple").expect("valid item")
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|&name| name.to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_live_warehouse_answers_and_the_total_is_their_sum() {
    let app = TestApp::new().await;
    let east = warehouse(&app, "east", "apple=3,pear=5").await;
    let west = warehouse(&app, "west", "apple=5").await;
    let north = warehouse(&app, "north", "pear=1").await;
    let client = client(&app).await;

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

    let output = stock_bin(&app, &["apple", "--timeout", "20s"]).await;
    assert_eq!(
        output.code,
        Some(i32::from(exit::OK)),
        "stderr: {}",
        output.stderr
    );
    assert_eq!(output.stdout, "east 3\nnorth 0\nwest 5\ntotal 8\n");

    client.close().await;
    for warehouse in [east, west, north] {
        warehouse.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_warehouse_is_named_missing_by_the_deadline_and_the_total_covers_the_others() {
    let app = TestApp::new().await;
    let east = warehouse(&app, "east", "apple=3").await;
    let west = warehouse(&app, "west", "apple=5").await;
    let south = warehouse(&app, "south", "apple=7").await;
    let client = client(&app).await;
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
    let output = stock_bin(&app, &["apple"]).await;
    assert_eq!(
        output.code,
        Some(i32::from(exit::OK)),
        "stderr: {}",
        output.stderr
    );
    assert_eq!(output.stdout, "east 3\nsouth 7\ntotal 10\n");

    client.close().await;
    east.stop().await;
    south.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_warehouse_that_does_not_answer_in_time_makes_the_binary_name_it_and_exit_3() {
    let app = TestApp::new().await;
    let east = warehouse(&app, "east", "apple=3").await;
    // Answers the roll call (the runtime does, without the handler), then
    // holds the query until the gate opens.
    let gate = CancellationToken::new();
    let held = gate.clone();
    let slow = responder(&app, "slow", move |query: StockQuery, _: Context| {
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

    let output = stock_bin(&app, &["apple", "--timeout", "2s"]).await;
    gate.cancel();
    assert_eq!(
        output.code,
        Some(i32::from(exit::MISSING)),
        "stdout: {}\nstderr: {}",
        output.stdout,
        output.stderr
    );
    assert_eq!(output.stdout, "east 3\ntotal 3\n");
    assert!(
        output
            .stderr
            .contains("stock: slow did not answer within 2s"),
        "{}",
        output.stderr
    );

    east.stop().await;
    slow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_item_is_refused_for_good_by_every_warehouse() {
    let app = TestApp::new().await;
    let east = warehouse(&app, "east", "apple=3").await;
    let west = warehouse(&app, "west", "").await;
    let client = client(&app).await;

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
    let output = stock_bin(&app, &[""]).await;
    assert_eq!(output.code, Some(i32::from(exit::FAILURE)));
    assert!(
        output
            .stderr
            .contains("the item name is empty; nothing was sent"),
        "{}",
        output.stderr
    );

    client.close().await;
    east.stop().await;
    west.stop().await;
}

#[tokio::test]
async fn the_binary_exits_2_when_the_broker_is_unreachable_without_showing_the_password() {
    let output = run_to_end(
        Command::new(STOCK).args(["apple", "--amqp-url", "amqp://guest:s3cr3t@127.0.0.1:1/%2f"]),
        None,
    )
    .await;
    let stderr = output.stderr;
    assert_eq!(output.code, Some(i32::from(exit::UNREACHABLE)), "{stderr}");
    assert!(stderr.contains("cannot connect to"), "{stderr}");
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
    assert!(output.stdout.is_empty());
}
