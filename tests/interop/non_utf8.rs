//! Requests whose short strings hold bytes that are not UTF-8 (RabbitMQ
//! passes them through). Defect: one such request failed lapin's frame parser
//! and with it the consumer's connection, and the broker redelivered it to
//! the next one: every word stopped answering. Now each is an invalid request
//! like any other: an error reply where the reply address is intact, then
//! dead-lettered; every other request answered, the session never lost.

use std::time::Duration;

use rabbit_gather::protocol::Name;

use fixtures::python::run_support_script;
use testkit::{EVENT_TIMEOUT, TestApp};

/// Sends one crafted request (see the script) and returns the reply body it
/// got within `wait`, if any.
async fn send(
    app: &TestApp,
    correlation_id: &str,
    place: &str,
    wait: Duration,
) -> serde_json::Value {
    let wait_secs = wait.as_secs_f64().to_string();
    let stdout = run_support_script(
        "non_utf8_request.py",
        &[&app.url, &app.prefix, correlation_id, place, &wait_secs],
        EVENT_TIMEOUT + wait,
    )
    .await;
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    line["reply"].clone()
}

#[tokio::test]
async fn a_short_string_that_is_not_utf8_is_an_invalid_request_and_every_other_is_answered() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let raw = app.raw().await;
    let mut dead = raw.dead_letters().await;
    let client = app.client().await;
    let expect = ["hello".to_owned()];

    // `user_id` is left out: RabbitMQ itself refuses a user_id that is not
    // the connection's user (PRECONDITION_FAILED), so it never reaches a
    // consumer.
    for (i, place) in [
        "reply_to",
        "correlation_id",
        "message_id",
        "type",
        "app_id",
        "content_type",
        "content_encoding",
        "header",
        "nested_header",
    ]
    .into_iter()
    .enumerate()
    {
        let answerable = !matches!(place, "reply_to" | "correlation_id");
        // An unanswerable one is waited for briefly: nothing may come back.
        let wait = if answerable {
            EVENT_TIMEOUT
        } else {
            Duration::from_millis(500)
        };
        let reply = send(&app, &format!("crafted-{i}"), place, wait).await;
        if answerable {
            assert_eq!(
                reply["error"]["code"], "invalid_request",
                "{place}: {reply}"
            );
            let message = reply["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("not UTF-8"), "{place}: {message}");
        } else {
            assert!(reply.is_null(), "{place}: no reply can be aimed: {reply}");
        }
        let letter = dead.next().await;
        assert_eq!(
            letter.data, br#"{"name": "Eve"}"#,
            "{place}: the crafted request"
        );
        let name = Name::parse(&format!("after-{place}")).expect("valid");
        let gathered = client
            .call::<_, String>(&name, &expect, Duration::from_secs(10))
            .await
            .expect("call");
        assert!(
            gathered.is_complete(),
            "{place}: the next call is answered: {gathered:?}"
        );
        println!(
            "non-UTF-8 {place}: refused ({}), dead-lettered; the next call answered",
            if answerable {
                "error reply"
            } else {
                "no reply possible"
            }
        );
    }
    // The routing key is no part of the contract (the request exchange is a
    // fanout): such a request is a valid one, answered.
    let reply = send(&app, "crafted-routing-key", "routing_key", EVENT_TIMEOUT).await;
    assert_eq!(reply["greeting"], "hello Eve", "{reply}");
    println!("non-UTF-8 routing key: answered");
    let stats = hello.counters.snapshot();
    println!("figures [non-UTF-8 short strings]: {stats:?}");
    assert_eq!(stats.invalid, 9);
    hello.wait_for_losses(0).await;
    assert_eq!(
        *hello.sessions_now(),
        1,
        "the consuming session never ended"
    );
    hello.stop().await;
}
