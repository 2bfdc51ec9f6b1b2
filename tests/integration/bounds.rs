//! Queues the broker keeps bounded: the dead-letter queue (length and age)
//! and the queues of a retired word (`x-expires`), and what the service does
//! with a queue declared before those bounds existed.

use std::time::Duration;

use lapin::types::FieldTable;

use testkit::{TestApp, answerable, call_ada, declare_durable, queue_exists, routes, wait_until};

/// Defect: `<prefix>.dead` grew for ever.
#[tokio::test]
async fn the_dead_letter_queue_keeps_only_its_newest_messages_up_to_its_bound() {
    let app = TestApp::new().await;
    let mut settings = app.settings.clone();
    settings.topology.dead_letter_max_length = 3;
    let hello = app.consumer_with("hello", &settings, None).await;
    let raw = app.raw().await;
    for i in 0..5 {
        // Invalid and one-way: rejected, dead-lettered by the broker.
        raw.publish(format!("not json {i}").as_bytes(), Default::default())
            .await;
    }
    let dead = format!("{}.dead", app.prefix);
    wait_until("every invalid request was dead-lettered", || {
        let n = hello.counters.snapshot().rejected;
        async move { n == 5 }
    })
    .await;
    assert_eq!(raw.queue_counts(&dead).await.0, 3, "bounded at 3");
    let mut letters = raw.dead_letters().await;
    let mut kept = Vec::new();
    for _ in 0..3 {
        kept.push(String::from_utf8_lossy(&letters.next().await.data).into_owned());
    }
    assert_eq!(
        kept,
        ["not json 2", "not json 3", "not json 4"],
        "the oldest were dropped"
    );
    hello.stop().await;
}

#[tokio::test]
async fn a_dead_letter_queue_declared_without_bounds_is_used_as_it_is() {
    let app = TestApp::new().await;
    let raw = app.raw().await;
    let dead = format!("{}.dead", app.prefix);
    // As an earlier version declared it.
    declare_durable(&raw.channel, &dead, FieldTable::default()).await;
    let hello = app.consumer("hello").await;
    let mut letters = raw.dead_letters().await;
    raw.publish(b"not json", answerable("old")).await;
    assert_eq!(letters.next().await.data, b"not json");
    let gathered = call_ada(&app.settings, &["hello"]).await;
    assert!(gathered.is_complete(), "{gathered:?}");
    hello.stop().await;
}

/// Found by a new user: a word whose consumer stopped kept a queue bound to
/// the exchange, so every later request fanned out to it and expired into the
/// dead-letter queue. The word's queue expires; its retry queue does not.
#[tokio::test]
async fn the_queues_of_a_word_nobody_consumes_any_more_expire() {
    let app = TestApp::new().await;
    let mut settings = app.settings.clone();
    settings.topology.queue_expires = Duration::from_millis(1500);
    let bonjour = app.consumer_with("bonjour", &settings, None).await;
    let raw = app.raw().await;
    let queue = format!("{}.bonjour", app.prefix);
    let retry = format!("{queue}.retry");
    assert!(queue_exists(&raw.connection, &queue).await);
    assert!(queue_exists(&raw.connection, &retry).await);
    bonjour.stop().await;
    let exchange = app.prefix.clone();
    wait_until("the retired word's queue expires", || {
        let (channel, exchange) = (&raw.channel, &exchange);
        async move { !routes(channel, exchange, "", b"probe").await }
    })
    .await;
    assert!(!queue_exists(&raw.connection, &queue).await);
    // The retry queue has no lease (nothing consumes it, so one would end
    // under a running consumer): it stays, empty, until an operator deletes
    // it. What reaches it can go nowhere: its way back was the word's queue.
    assert!(queue_exists(&raw.connection, &retry).await);
    app.own_queue(&retry);
}

/// Defect: a request with no deadline (no `timestamp`, so no expiry to
/// compute) ran its handler for ever, holding the consumer's only slot. The
/// service bounds every attempt by `consumer.max_handling_time` too.
#[tokio::test]
async fn a_request_without_a_deadline_cannot_hold_a_handler_past_max_handling_time() {
    use futures::FutureExt;

    let app = TestApp::new().await;
    let mut settings = app.settings.clone();
    settings.consumer.max_handling_time = Duration::from_secs(1);
    let handler: testkit::TestHandler = Box::new(|name, cx| {
        async move {
            if name.as_str() == "stuck" {
                // A handler that never finishes (a hung dependency).
                std::future::pending::<()>().await;
            }
            Ok(format!("{} {name}", cx.word))
        }
        .boxed()
    });
    let hello = app.consumer_with("hello", &settings, Some(handler)).await;
    let mut raw = app.raw().await;
    let mut dead = raw.dead_letters().await;
    // No timestamp, no expiration: no deadline of the caller's.
    raw.publish(br#"{"name":"stuck"}"#, answerable("stuck"))
        .await;
    let letter = dead.next().await;
    let why = testkit::reason(&letter).expect("the service's reason");
    println!("a request with no deadline and a hung handler: dead-lettered ({why})");
    assert!(why.contains("max_handling_time"), "{why}");
    raw.publish(br#"{"name":"Ada"}"#, answerable("after")).await;
    let reply = raw.next_reply().await;
    assert_eq!(testkit::correlation_id(&reply).as_deref(), Some("after"));
    hello.stop().await;
}
