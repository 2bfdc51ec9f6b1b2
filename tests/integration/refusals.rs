//! Crafted direct reply-to addresses. RabbitMQ 3.10 cannot route a reply to
//! one without crashing the replying channel (it then closes the consumer's
//! whole publishing connection, 541 INTERNAL_ERROR); RabbitMQ 4 drops the
//! reply. On every broker one such request must cost no more than its own
//! failure: the consumer answers everything else throughout, without ending
//! its session. The suite runs on both (scripts/test.sh).

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use futures::{StreamExt, stream};
use rabbit_gather::protocol::Name;

use testkit::{TestApp, answerable, correlation_id, reason};

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

/// Shapes no RabbitMQ issues (each crashed RabbitMQ 3.10.8's replying
/// channel when tried): the consumer refuses them itself, on every broker.
fn malformed_shapes() -> Vec<(&'static str, String)> {
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
        ("a trailing byte", token(&trailing)),
        (
            "255 characters",
            format!("{DIRECT}.{}.k", "A".repeat(255 - DIRECT.len() - 3)),
        ),
    ]
}

/// Tokens of the shape every broker issues, naming no live channel. What a
/// node does with one depends on its version, not on anything a client can
/// see: RabbitMQ 3.10 (Erlang/OTP 25) crashes the replying channel on each
/// (a pid id past OTP 25's 2^15, a node hash no node has); 4.0.5 drops the
/// reply. The promise is the same on both: it costs only its own request.
fn well_formed_tokens_of_no_channel() -> Vec<(&'static str, String)> {
    vec![
        (
            "a pid id past 2^15 (an aged OTP 26+ broker's numbering)",
            token(&pid(b"reply@9248884", 40_869)),
        ),
        (
            "a pid id of u32::MAX",
            token(&pid(b"reply@9248884", u32::MAX)),
        ),
        ("an unknown node hash", unknown_node_token()),
    ]
}

/// Defect: one such request made the consumers reconnect in a loop and
/// answer nothing else.
#[tokio::test]
async fn each_malformed_reply_to_is_dead_lettered_and_the_consumer_keeps_answering() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let mut raw = app.raw().await;
    let mut dead = raw.dead_letters().await;

    for (i, (shape, reply_to)) in malformed_shapes().into_iter().enumerate() {
        crafted_then_answered(&mut raw, i, shape, &reply_to).await;
        let letter = dead.next().await;
        println!("reply_to shape [{shape}]: dead-lettered, refused before replying");
        assert_eq!(
            correlation_id(&letter),
            Some(format!("crafted-{i}")),
            "{shape}"
        );
    }
    let stats = hello.counters.snapshot();
    println!("figures [malformed reply_to]: {stats:?}");
    assert_eq!(stats.replies_refused, 0, "none reached the broker");
    assert_eq!(stats.publisher_reopened, 0);
    hello.wait_for_losses(0).await;
    assert_eq!(
        *hello.sessions_now(),
        1,
        "the consuming session never ended"
    );
    hello.stop().await;
}

/// Defect: a check built on Erlang/OTP 25's pid numbering refused every
/// genuine token of an aged RabbitMQ 4 broker. Well-formed tokens now reach
/// the broker; whatever it makes of one, only that request pays.
#[tokio::test]
async fn a_well_formed_token_of_no_channel_costs_only_its_own_request_on_any_broker() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let mut raw = app.raw().await;
    let mut dead = raw.dead_letters().await;

    let mut refused = 0;
    for (i, (shape, reply_to)) in well_formed_tokens_of_no_channel().into_iter().enumerate() {
        let before = hello.counters.snapshot();
        // Prefetch 1: the crafted request was settled before the next one.
        crafted_then_answered(&mut raw, i, shape, &reply_to).await;
        let settled = |s: &rabbit_gather::service::ServiceStats| s.ok + s.dead_lettered;
        testkit::wait_until("both requests are settled", || async {
            settled(&hello.counters.snapshot()) >= settled(&before) + 2
        })
        .await;
        let after = hello.counters.snapshot();
        if after.replies_refused > before.replies_refused {
            refused += 1;
            let letter = dead.next().await;
            let why = reason(&letter).expect("the service's own dead letter");
            println!(
                "reply_to shape [{shape}]: the broker refused the reply; dead-lettered: {why}"
            );
            assert_eq!(correlation_id(&letter), Some(format!("crafted-{i}")));
            assert!(why.contains("the broker refused the reply"), "{why}");
        } else {
            println!("reply_to shape [{shape}]: the broker took the reply (and dropped it); acked");
            assert_eq!(after.ok, before.ok + 2, "{shape}: both requests answered");
        }
    }
    let stats = hello.counters.snapshot();
    println!("figures [well-formed tokens of no channel]: {stats:?}");
    assert_eq!(stats.replies_refused, refused);
    assert_eq!(stats.dead_lettered, refused);
    hello.wait_for_losses(0).await;
    assert_eq!(
        *hello.sessions_now(),
        1,
        "the consuming session never ended"
    );
    hello.stop().await;
}

/// Publishes request `crafted-<i>` with `reply_to`, then `fresh-<i>` with a
/// genuine address, and checks that the fresh one is answered.
async fn crafted_then_answered(raw: &mut testkit::Raw, i: usize, shape: &str, reply_to: &str) {
    let crafted = answerable(&format!("crafted-{i}")).with_reply_to(reply_to.into());
    raw.publish(br#"{"name":"Eve"}"#, crafted).await;
    let fresh = format!("fresh-{i}");
    raw.publish(br#"{"name":"Ada"}"#, answerable(&fresh)).await;
    assert_eq!(
        correlation_id(&raw.next_reply().await).as_deref(),
        Some(fresh.as_str()),
        "{shape}: the next request is answered"
    );
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
                    .call::<_, String>(&name, expect, Duration::from_secs(20))
                    .await
                    .expect("call")
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let complete = calls.iter().filter(|g| g.is_complete()).count();
    // The crafted request is settled once the counters account for 301.
    testkit::wait_until("the crafted request is settled", || async {
        let stats = hello.counters.snapshot();
        stats.ok + stats.dead_lettered >= 301
    })
    .await;
    let stats = hello.counters.snapshot();
    println!("ledger [token of no channel, 16 in hand]: answered {complete}/300; {stats:?}");
    assert_eq!(complete, 300, "every other request was answered");
    // RabbitMQ 3.10 refuses the reply (the request is dead-lettered with the
    // reason); 4.0.5 takes it and drops it (the request is acked).
    if stats.replies_refused > 0 {
        let letter = dead.next().await;
        let why = reason(&letter).expect("the service's own dead letter");
        println!("  the broker refused the reply: {why}");
        assert!(why.contains("the broker refused the reply"), "{why}");
        assert_eq!(stats.replies_refused, 1);
        assert_eq!(stats.dead_lettered, 1);
    } else {
        assert_eq!(stats.ok, 301);
        assert_eq!(stats.dead_lettered, 0);
    }
    assert_eq!(
        *hello.sessions_now(),
        1,
        "the consuming session never ended"
    );
    hello.stop().await;
}
