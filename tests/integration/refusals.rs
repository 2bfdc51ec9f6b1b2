//! Crafted `reply_to` addresses that RabbitMQ 3.10 cannot route a reply to
//! without crashing the replying channel (it then closes the consumer's
//! whole publishing connection, 541 INTERNAL_ERROR). One such request must
//! cost no more than its own failure: it is dead-lettered, and the consumer
//! answers everything else throughout, without ending its session.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use common::protocol::Name;
use futures::{StreamExt, stream};

use crate::helpers::{TestApp, answerable, reason};

const DIRECT: &str = "amq.rabbitmq.reply-to";

fn pid(node: &[u8], id: u32) -> Vec<u8> {
    let mut term = vec![131, 88, 118];
    term.extend_from_slice(&u16::try_from(node.len()).expect("short").to_be_bytes());
    term.extend_from_slice(node);
    term.extend_from_slice(&id.to_be_bytes());
    term.extend_from_slice(&0_u32.to_be_bytes());
    term.extend_from_slice(&1_u32.to_be_bytes());
    term
}

fn token(term: &[u8]) -> String {
    format!("{DIRECT}.{}.a2V5", STANDARD.encode(term))
}

/// A well-formed token naming a node hash no running node has: it passes
/// every check a consumer can make, and still crashes the broker's channel.
fn unknown_node_token() -> String {
    token(&pid(b"reply@12345", 1))
}

/// Every shape that crashed RabbitMQ 3.10.8's replying channel, when tried.
fn crashing_shapes() -> Vec<(&'static str, String)> {
    let mut trailing = pid(b"reply@9248884", 1);
    trailing.push(0);
    vec![
        ("not base64", format!("{DIRECT}.not*base64!.a2V5")),
        ("base64 without padding", format!("{DIRECT}.abcde.a2V5")),
        ("url-safe base64", format!("{DIRECT}.g1h2-A1y.a2V5")),
        (
            "not an Erlang term",
            format!("{DIRECT}.{}.a2V5", STANDARD.encode("hello world!")),
        ),
        ("an atom", token(&[131, 100, 0, 3, b'f', b'o', b'o'])),
        ("an integer", token(&[131, 97, 42])),
        ("a pid on another node", token(&pid(b"nobody@nowhere", 1))),
        ("a node without @", token(&pid(b"reply9248884", 1))),
        (
            "a pid id out of range",
            token(&pid(b"reply@9248884", u32::MAX)),
        ),
        ("a trailing byte", token(&trailing)),
        (
            "255 characters",
            format!("{DIRECT}.{}.k", "A".repeat(255 - DIRECT.len() - 3)),
        ),
        ("an unknown node hash", unknown_node_token()),
    ]
}

/// Defect: one such request made the consumers reconnect in a loop and
/// answer nothing else.
#[tokio::test]
async fn each_crashing_reply_to_is_dead_lettered_and_the_consumer_keeps_answering() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let mut raw = app.raw().await;
    let mut dead = raw.dead_letters().await;

    for (i, (shape, reply_to)) in crashing_shapes().into_iter().enumerate() {
        let crafted = answerable(&format!("crafted-{i}")).with_reply_to(reply_to.as_str().into());
        raw.publish(br#"{"name":"Eve"}"#, crafted).await;
        let fresh = format!("fresh-{i}");
        raw.publish(br#"{"name":"Ada"}"#, answerable(&fresh)).await;
        let reply = raw.next_reply().await;
        let answered = reply
            .properties
            .correlation_id()
            .as_ref()
            .map(ToString::to_string);
        assert_eq!(
            answered.as_deref(),
            Some(fresh.as_str()),
            "{shape}: the next request is answered"
        );
        let letter = dead.next().await;
        let how =
            reason(&letter).unwrap_or_else(|| "refused before replying (x-death rejected)".into());
        println!("reply_to shape [{shape}]: dead-lettered; {how}");
        assert_eq!(
            letter
                .properties
                .correlation_id()
                .as_ref()
                .map(ToString::to_string),
            Some(format!("crafted-{i}")),
            "{shape}"
        );
    }
    let stats = hello.counters.snapshot();
    println!("figures [crafted reply_to]: {stats:?}");
    assert_eq!(
        stats.replies_refused, 1,
        "only the unknown node hash reached the broker"
    );
    assert_eq!(stats.publisher_reopened, 1);
    assert_eq!(stats.dead_lettered, 1);
    hello.wait_for_losses(0).await;
    assert_eq!(
        *hello.sessions_now(),
        1,
        "the consuming session never ended"
    );
    hello.stop().await;
}

#[tokio::test]
async fn a_refused_reply_among_many_in_flight_costs_only_its_own_request() {
    let app = TestApp::new().await;
    let mut settings = app.settings.clone();
    settings.consumer.prefetch = 16;
    settings.consumer.concurrency = 16;
    let hello = app.consumer_with("hello", &settings, None).await;
    let client = app.client().await;
    let raw = app.raw().await;
    let mut dead = raw.dead_letters().await;
    let expect = ["hello".to_owned()];

    let calls = stream::iter(0..300)
        .map(|i| {
            let (client, expect, raw) = (&client, &expect, &raw);
            async move {
                if i == 150 {
                    let crafted =
                        answerable("crafted").with_reply_to(unknown_node_token().as_str().into());
                    raw.publish(br#"{"name":"Eve"}"#, crafted).await;
                }
                let name = Name::parse(&format!("n{i}")).expect("valid");
                client
                    .call(&name, expect, Duration::from_secs(20))
                    .await
                    .expect("call")
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let complete = calls.iter().filter(|g| g.is_complete()).count();
    let letter = dead.next().await;
    let why = reason(&letter).expect("the service's own dead letter");
    let stats = hello.counters.snapshot();
    println!(
        "ledger [refused reply, 16 in hand]: answered {complete}/300; {stats:?}; reason {why:?}"
    );
    assert_eq!(complete, 300, "every other request was answered");
    assert!(why.contains("the broker refused the reply"), "{why}");
    assert_eq!(stats.replies_refused, 1);
    assert_eq!(
        *hello.sessions_now(),
        1,
        "the consuming session never ended"
    );
    hello.stop().await;
}
