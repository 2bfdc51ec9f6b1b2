//! Every call of the reconnecting client ends by its own deadline, whatever
//! the broker does: down, coming back, or with a reconnection under way. On a
//! private node, which these tests stop and start.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rabbit_gather::{
    protocol::Name,
    rpc::{Gathered, ReconnectingClient, RpcError},
};

use testkit::support::node::PrivateNode;
use testkit::{EVENT_TIMEOUT, TestApp};

/// The calls' timeout.
const TIMEOUT: Duration = Duration::from_secs(1);
/// The bound the task sets: a call with a 1 s timeout returns within 2 s.
const BOUND: Duration = Duration::from_secs(2);
/// Retries allowed: plenty, so that only the deadline can end a call.
const RETRIES: u32 = 5;

fn expect() -> Vec<String> {
    vec!["hello".to_owned()]
}

/// Calls `name` with `timeout`, failing the test as soon as the call has run
/// for `timeout` + 1 s; returns the result and how long the call took.
async fn bounded_call(
    client: &ReconnectingClient,
    name: &str,
    timeout: Duration,
) -> (Result<Gathered<String>, RpcError>, Duration) {
    let name = Name::parse(name).expect("valid");
    let started = Instant::now();
    let limit = timeout + (BOUND - TIMEOUT);
    let result = tokio::time::timeout(
        limit,
        client.call::<_, String>(&name, &expect(), timeout, RETRIES),
    )
    .await
    .unwrap_or_else(|_| panic!("a call with a {timeout:?} timeout still ran after {limit:?}"));
    (result, started.elapsed())
}

/// With no broker, a call may end only as a connection error or as a result
/// with every consumer missing.
fn assert_ended_without_a_broker(result: &Result<Gathered<String>, RpcError>) {
    match result {
        Err(RpcError::ConnectionLost(_)) => {}
        Ok(gathered) if gathered.replies.is_empty() && gathered.missing == expect() => {}
        other => panic!("unexpected end of a call with the broker down: {other:?}"),
    }
}

#[tokio::test]
async fn a_call_ends_by_its_deadline_while_the_broker_is_down_even_during_a_reconnect() {
    let node = PrivateNode::start().await;
    let app = TestApp::on(&node.url()).await;
    let client = Arc::new(
        ReconnectingClient::connect_with(
            &app.settings,
            rabbit_gather::protocol::Contract::GREETINGS,
        )
        .await
        .expect("the first connection succeeds"),
    );
    node.stop_app().await;

    // This call is the first to see the loss, which starts a reconnection.
    let (first, first_took) = bounded_call(&client, "Ada", TIMEOUT).await;
    assert_ended_without_a_broker(&first);

    // The broker is still down, so the reconnection goes on. A call with a
    // long timeout waits for it...
    assert!(client.is_reconnecting(), "the loss started a reconnection");
    let long_timeout = Duration::from_secs(5);
    let long = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { bounded_call(&client, "Bob", long_timeout).await })
    };
    // ... and a 1 s call made meanwhile still ends by its own deadline.
    let (second, second_took) = bounded_call(&client, "Cy", TIMEOUT).await;
    assert_ended_without_a_broker(&second);
    let (long, long_took) = long.await.expect("the long call's task");
    assert_ended_without_a_broker(&long);

    println!(
        "figures [broker down]: 1 s call that saw the loss took {first_took:?}; \
         1 s call during the reconnection took {second_took:?}; \
         5 s call during the reconnection took {long_took:?}"
    );
    assert!(client.is_reconnecting(), "the broker is still down");
    let closing = Instant::now();
    client.close().await;
    assert!(!client.is_reconnecting(), "close() stops the reconnection");
    assert!(
        closing.elapsed() < BOUND,
        "close() during a reconnection took {:?}",
        closing.elapsed()
    );
    let (after_close, took) = bounded_call(&client, "Dee", TIMEOUT).await;
    assert!(
        matches!(after_close, Err(RpcError::ConnectionLost(_))) && took < TIMEOUT,
        "a call after close() fails at once: {after_close:?} after {took:?}"
    );
}

#[tokio::test]
async fn calls_succeed_again_on_the_same_client_once_the_broker_is_back() {
    let node = PrivateNode::start().await;
    let app = TestApp::on(&node.url()).await;
    let hello = app.consumer("hello").await;
    let client = ReconnectingClient::connect_with(
        &app.settings,
        rabbit_gather::protocol::Contract::GREETINGS,
    )
    .await
    .expect("the first connection succeeds");
    let name = Name::parse("Ada").expect("valid");
    let before = client
        .call::<_, String>(&name, &expect(), EVENT_TIMEOUT, RETRIES)
        .await
        .expect("a call with the broker up");
    assert!(before.is_complete(), "{before:?}");

    node.stop_app().await;
    let (down, _) = bounded_call(&client, "Bob", TIMEOUT).await;
    assert_ended_without_a_broker(&down);
    node.start_app().await;
    let back = Instant::now();
    hello.wait_for_sessions(2).await;

    // The same client: no new one is made by the test.
    let after = client
        .call::<_, String>(&name, &expect(), EVENT_TIMEOUT, RETRIES)
        .await
        .expect("a call once the broker is back");
    let answered = back.elapsed();
    assert!(after.is_complete(), "{after:?}");
    let stats = client.stats();
    assert!(stats.reconnects >= 1, "{stats:?}");
    println!("figures [broker back]: a call was answered {answered:?} after start_app returned");
    client.close().await;
    hello.stop().await;
}
