//! Graceful shutdown: the message in hand is finished, nothing is lost and
//! nothing is processed twice; a broker that goes away while a consumer
//! drains never turns the stop into a crash.

use std::{collections::HashSet, sync::Arc, time::Duration};

use futures::future::join_all;
use rabbit_gather::{protocol::Name, topology::Topology};

use testkit::support::node::PrivateNode;
use testkit::{TestApp, answerable, queue_counts};

#[tokio::test]
async fn sigterm_with_a_message_in_hand_loses_nothing_and_processes_nothing_twice() {
    let app = TestApp::new().await;
    let mut first = app.gated_consumer_bin("hello").await;
    let client = Arc::new(app.client().await);
    let raw = app.raw().await;
    let queue = format!("{}.hello", app.prefix);

    let names = ["Ada", "Bob", "Cy"];
    let calls: Vec<_> = names
        .iter()
        .map(|n| {
            let client = Arc::clone(&client);
            let name = Name::parse(n).expect("valid");
            tokio::spawn(async move {
                client
                    .call::<_, String>(&name, &["hello".to_owned()], Duration::from_secs(30))
                    .await
            })
        })
        .collect();
    // One delivered and held at the gate (prefetch 1), two still ready.
    first.wait_for_stderr("gate: holding").await;
    testkit::wait_until("two requests wait in the queue", || {
        let (raw, queue) = (&raw, &queue);
        async move { raw.queue_counts(queue).await == (2, 1) }
    })
    .await;

    first.sigterm();
    first.wait_for_stderr("received SIGTERM").await;
    first.open_gate().await;
    let code = first.exit_code().await;
    let first_lines = first.stdout_lines();
    assert_eq!(code, 0, "SIGTERM is a clean exit");
    assert_eq!(
        first_lines.len(),
        1,
        "the message in hand was finished, no other taken: {first_lines:?}"
    );

    let second = app.consumer_bin("hello", &[]).await;
    let results = join_all(calls).await;
    for result in results {
        let gathered = result.expect("task").expect("call");
        assert!(gathered.is_complete(), "{gathered:?}");
    }
    let (_, second_lines) = second.terminate().await;

    let all: Vec<String> = first_lines.into_iter().chain(second_lines).collect();
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 3, "each name processed exactly once: {all:?}");
    assert_eq!(unique.len(), 3, "{all:?}");
    assert_eq!(client.stats().duplicates, 0);
    assert_eq!(raw.queue_counts(&queue).await.0, 0);
}

/// Defect: the service re-polled its completed shutdown future after a
/// broker failure while draining, and panicked.
#[tokio::test]
async fn sigterm_then_the_broker_going_away_with_a_message_in_hand_exits_0_and_keeps_it() {
    let node = PrivateNode::start().await;
    let app = TestApp::on(&node.url()).await;
    let connection = node.connect().await;
    let word = rabbit_gather::topology::Word::parse("hello").expect("valid");
    Topology::from_settings(&app.settings.topology)
        .declare_for_consumer(&connection, &word)
        .await
        .expect("declare");
    let raw = app.raw().await;
    let persistent = answerable("in-hand").with_delivery_mode(2);
    raw.publish(br#"{"name":"Ada"}"#, persistent).await;

    // Under a memory alarm the consumer receives the request but its reply
    // publish is blocked: the request stays in hand, unacked.
    node.set_memory_watermark("0.0000001").await;
    let mut consumer = app.consumer_bin("hello", &[]).await;
    consumer.wait_for_stdout("hello Ada").await;

    consumer.sigterm();
    consumer.wait_for_stderr("received SIGTERM").await;
    node.stop_app().await;
    let code = consumer.exit_code().await;
    let stderr = consumer.stderr_lines().join("\n");
    assert_eq!(code, 0, "a clean exit; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    node.start_app().await;
    let connection = node.connect().await;
    let queue = format!("{}.hello", app.prefix);
    assert_eq!(
        queue_counts(&connection, &queue).await,
        (1, 0),
        "the request in hand is back in its queue"
    );
}
