//! Fault injection: crashed consumers, broker restarts, memory alarms, poison
//! messages and network cuts. Broker faults run on a private node the test
//! starts itself ([`PrivateNode`]); the machine's main broker is never touched.
//! Each test prints its ledger or figures (`cargo test -- --nocapture`).
//!
//! A target of its own, left out of a plain `cargo test` (it boots private
//! nodes: root and the server scripts under `/usr/lib/rabbitmq/bin`):
//! `cargo test -p greetings-tests --test faults -- --test-threads 1`
//! (scripts/test.sh runs it).

// A failed expectation is a failed test: panicking is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt, stream};
use rabbit_gather::{
    protocol::{Name, Outcome, names::INTERNAL_ERROR},
    rpc::{RpcClient, RpcError},
    service::HandlerError,
};

use testkit::support::ledger::Ledger;
use testkit::support::node::PrivateNode;
use testkit::support::proxy::Proxy;
use testkit::{TestApp, TestHandler, run_producer, run_producer_with_stats, wait_until};

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

fn lines(names: &[String]) -> String {
    names.iter().map(|n| format!("{n}\n")).collect()
}

#[tokio::test]
async fn a_consumer_killed_mid_message_has_it_redelivered_to_another_replica() {
    let app = TestApp::new().await;
    let goodbye = app.consumer_bin("goodbye", &[]).await;
    let mut slow = app.gated_consumer_bin("hello").await;

    let names = names(50);
    let producer = tokio::spawn(run_producer_with_stats(
        app.env(),
        vec!["--timeout".into(), "30s".into()],
        Some(lines(&names)),
    ));
    // The gated replica holds one request in hand (prefetch 1) before a
    // second replica exists; then it is SIGKILLed.
    slow.wait_for_stderr("gate: holding").await;
    let fast = app.consumer_bin("hello", &[]).await;
    slow.child.start_kill().expect("SIGKILL the gated replica");
    slow.child.wait().await.expect("reaped");

    let run = producer.await.expect("producer task");
    let handled: Vec<String> = [&slow, &fast, &goodbye]
        .iter()
        .flat_map(|c| c.stdout_lines())
        .collect();
    let ledger = Ledger::from_output(&names, &["hello", "goodbye"], &run.stdout)
        .with_handled(handled.iter().map(String::as_str))
        .with_duplicate_replies(run.duplicate_replies());
    ledger.print("consumer SIGKILLed mid-message");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        (ledger.lost, ledger.printed_twice, ledger.unexpected),
        (0, 0, 0)
    );
    assert!(
        slow.stdout_lines().is_empty(),
        "the killed replica never finished its request"
    );
    assert_eq!(ledger.handled_twice, 0, "no request was handled twice");
    assert_eq!(ledger.duplicate_replies, Some(0));
}

/// How the broker is taken down mid-run.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// `rabbitmqctl stop_app` then `start_app`.
    StopApp,
    /// SIGKILL of the Erlang VM, then a restart from the same data directory.
    Kill,
}

async fn broker_restart_mid_run_loses_nothing_with_retries(outage: Outage) {
    let node = PrivateNode::start().await;
    let app = TestApp::on(&node.url()).await;
    let (hello, goodbye) = app.greeters().await;

    let names = names(2000);
    let args = ["--retries", "10", "--timeout", "30s", "--concurrency", "64"];
    let producer = tokio::spawn(run_producer_with_stats(
        app.env(),
        args.iter().map(|a| (*a).to_owned()).collect(),
        Some(lines(&names)),
    ));
    wait_until("the run is well under way", || {
        let done = hello.printed().len();
        async move { done >= 300 }
    })
    .await;

    let down = Instant::now();
    match outage {
        Outage::StopApp => {
            node.stop_app().await;
            node.start_app().await;
        }
        Outage::Kill => {
            node.kill().await;
            node.restart().await;
        }
    }
    let up = Instant::now();
    hello.wait_for_sessions(2).await;
    goodbye.wait_for_sessions(2).await;
    let recovered = up.elapsed();

    let run = producer.await.expect("producer task");
    let handled: Vec<String> = hello
        .printed()
        .into_iter()
        .chain(goodbye.printed())
        .collect();
    let ledger = Ledger::from_output(&names, &["hello", "goodbye"], &run.stdout)
        .with_handled(handled.iter().map(String::as_str))
        .with_duplicate_replies(run.duplicate_replies());
    ledger.print(&format!("broker {outage:?} mid-run, --retries 10"));
    println!(
        "figures [{outage:?}]: broker down for {:?}; consumers consuming again {:?} after the broker was back; producer run {:?}",
        up - down,
        recovered,
        run.elapsed
    );
    assert_eq!(run.code, 0, "exit code; stderr:\n{}", run.stderr);
    // Redeliveries after the outage may be handled twice (at least once):
    // reported in the ledger above, not asserted away.
    assert_eq!(
        (ledger.lost, ledger.printed_twice, ledger.unexpected),
        (0, 0, 0)
    );
    assert!(ledger.duplicate_replies.is_some(), "{}", run.stderr);
    assert!(
        recovered < Duration::from_secs(15),
        "recovery took {recovered:?}"
    );
}

#[tokio::test]
async fn broker_stop_app_and_start_app_mid_run_loses_nothing_with_retries() {
    broker_restart_mid_run_loses_nothing_with_retries(Outage::StopApp).await;
}

#[tokio::test]
async fn broker_vm_killed_and_restarted_mid_run_loses_nothing_with_retries() {
    broker_restart_mid_run_loses_nothing_with_retries(Outage::Kill).await;
}

#[tokio::test]
async fn without_retries_calls_in_flight_fail_fast_when_the_broker_stops() {
    let node = PrivateNode::start().await;
    let app = TestApp::on(&node.url()).await;
    let hello = app.consumer("hello").await;
    hello.stop().await; // a bound queue nobody consumes: calls stay in flight
    let client = std::sync::Arc::new(app.client().await);
    let call = {
        let client = std::sync::Arc::clone(&client);
        tokio::spawn(async move {
            let name = Name::parse("Ada").expect("valid");
            client
                .call::<_, String>(&name, &["hello".to_owned()], Duration::from_secs(60))
                .await
        })
    };
    wait_until("the call is in flight", || {
        let n = client.stats().in_flight;
        async move { n == 1 }
    })
    .await;
    let stopped = Instant::now();
    node.stop_app().await;
    let result = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("fails long before its 60 s deadline")
        .expect("task");
    println!(
        "figures: call failed {:?} after stop_app began",
        stopped.elapsed()
    );
    assert!(
        matches!(result, Err(RpcError::ConnectionLost(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_memory_alarm_blocks_the_producer_which_reports_it_and_still_ends_by_its_deadline() {
    let node = PrivateNode::start().await;
    let app = TestApp::on(&node.url()).await;
    let _greeters = app.greeters().await;

    node.set_memory_watermark("0.0000001").await;
    let run = run_producer(&app, &["--timeout", "2s", "Ada"], None).await;
    println!(
        "figures: blocked run ended after {:?} (timeout 2 s)",
        run.elapsed
    );
    // Incomplete, the block reported, ended by its deadline.
    run.assert_ended(3, "blocking publishes", Duration::from_secs(5));

    node.set_memory_watermark("0.4").await;
    let run = run_producer(&app, &["--timeout", "10s", "Bob"], None).await;
    assert_eq!(run.code, 0, "after the alarm clears: {run:?}");
    assert_eq!(run.stdout, "hello Bob\ngoodbye Bob\n");
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_with_its_reason_and_the_others_keep_flowing() {
    let app = TestApp::new().await;
    let handler: TestHandler = Box::new(|name, cx| {
        async move {
            if name.as_str() == "poison" {
                panic!("test handler refuses {name}");
            }
            Ok::<_, HandlerError>(format!("{} {name}", cx.word))
        }
        .boxed()
    });
    let mut settings = app.settings.clone();
    settings.consumer.retry_delay = Duration::from_millis(200);
    let hello = app.consumer_with("hello", &settings, Some(handler)).await;
    let raw = app.raw().await;
    let mut dead = raw.dead_letters().await;
    let client = app.client().await;

    let mut all: Vec<String> = names(100);
    all.insert(50, "poison".to_owned());
    let results: Vec<_> = stream::iter(&all)
        .map(|n| {
            let client = &client;
            async move {
                let name = Name::parse(n).expect("valid");
                (
                    n,
                    client
                        .call::<_, String>(&name, &["hello".to_owned()], Duration::from_secs(20))
                        .await,
                )
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;

    let mut ok = 0;
    for (name, result) in results {
        let gathered = result.expect("call");
        if name == "poison" {
            match gathered.reply_of("hello") {
                Some(Outcome::Error { code, message }) => {
                    assert_eq!(code, INTERNAL_ERROR);
                    assert!(message.contains("failed 3 times"), "{message}");
                }
                other => panic!("poison got {other:?}"),
            }
        } else {
            assert!(gathered.is_complete(), "{name}: {gathered:?}");
            ok += 1;
        }
    }
    let letter = dead.next().await;
    let reason = testkit::reason(&letter).expect("a reason header");
    println!("ledger [poison]: normal={ok}/100 dead-lettered=1 reason={reason:?}");
    assert_eq!(ok, 100);
    assert_eq!(letter.data, br#"{"name":"poison"}"#);
    assert!(
        reason.contains("handler failed 3 times: handler panicked: test handler refuses poison"),
        "{reason}"
    );
    assert_eq!(
        hello.printed().len(),
        100,
        "the poison message was never printed"
    );
    hello.stop().await;
}

#[tokio::test]
async fn a_network_cut_is_noticed_by_heartbeat_on_both_sides_and_healed() {
    const HEARTBEAT: u16 = 2;
    let proxy = Proxy::to_broker().await;
    let app = TestApp::new().await;
    let mut settings = app.settings.clone();
    settings.amqp.url = proxy.amqp_url().into();
    settings.amqp.heartbeat = HEARTBEAT;
    let hello = app.consumer_with("hello", &settings, None).await;
    let (client, first) = testkit::client_and_call_ada(&settings, &["hello"]).await;
    assert!(first.is_complete(), "{first:?}");
    let name = Name::parse("Ada").expect("valid");
    let expect = ["hello".to_owned()];

    let cut = Instant::now();
    proxy.blackhole();
    let result = client
        .call::<_, String>(&name, &expect, Duration::from_secs(60))
        .await;
    let producer_noticed = cut.elapsed();
    assert!(
        matches!(result, Err(RpcError::ConnectionLost(_))),
        "{result:?}"
    );
    hello.wait_for_losses(1).await;
    let consumer_noticed = cut.elapsed();

    let healed = Instant::now();
    proxy.heal();
    hello.wait_for_sessions(2).await;
    let consumer_back = healed.elapsed();
    let client = RpcClient::connect_with(&settings, rabbit_gather::protocol::Contract::GREETINGS)
        .await
        .expect("client after heal");
    let gathered = client
        .call::<_, String>(&name, &expect, Duration::from_secs(10))
        .await
        .expect("call");
    println!(
        "figures [network cut, heartbeat {HEARTBEAT} s]: producer noticed after {producer_noticed:?}, \
         consumer after {consumer_noticed:?}; consumer consuming again {consumer_back:?} after the heal"
    );
    assert!(gathered.is_complete());
    let bound = Duration::from_secs(u64::from(HEARTBEAT) * 3 + 1);
    assert!(producer_noticed < bound, "{producer_noticed:?}");
    assert!(consumer_noticed < bound, "{consumer_noticed:?}");
}
