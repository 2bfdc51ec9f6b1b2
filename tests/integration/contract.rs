//! Wire contract v1 at the byte level: what a consumer does with requests the
//! RPC client would never send (contract points 5 to 8).

use lapin::{
    BasicProperties,
    message::Delivery,
    options::QueueDeclareOptions,
    types::{AMQPValue, FieldTable},
};
use rabbit_gather::protocol::Outcome;

use testkit::{TestApp, answerable, greeting_reply};

/// The `reason` and `queue` of the first `x-death` entry of a dead letter.
fn death(delivery: &Delivery) -> (String, String) {
    let headers = delivery
        .properties
        .headers()
        .as_ref()
        .expect("dead letter has headers");
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        panic!("no x-death header: {headers:?}");
    };
    let Some(AMQPValue::FieldTable(first)) = deaths.as_slice().first() else {
        panic!("empty x-death");
    };
    let text = |key: &str| match first.inner().get(key) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("x-death {key}: {other:?}"),
    };
    (text("reason"), text("queue"))
}

fn correlation_id(delivery: &Delivery) -> String {
    delivery
        .properties
        .correlation_id()
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

async fn assert_still_serving(raw: &mut testkit::Raw, id: &str) {
    raw.publish(br#"{"name":"Ada"}"#, answerable(id)).await;
    let reply = raw.next_reply().await;
    assert_eq!(
        correlation_id(&reply),
        id,
        "the next reply answers the valid request"
    );
    let reply = greeting_reply(&reply.data).expect("reply follows the contract");
    assert_eq!(reply.outcome, Outcome::<String>::Ok("hello Ada".into()));
}

#[tokio::test]
async fn each_kind_of_invalid_request_gets_an_error_reply_and_is_dead_lettered() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let mut raw = app.raw().await;
    let mut dead = raw.dead_letters().await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not-json", b"hello there".to_vec(), "not a JSON object"),
        ("json-array", br#"["Ada"]"#.to_vec(), "not a JSON object"),
        (
            "wrong-type",
            br#"{"name": 42}"#.to_vec(),
            "expected a string",
        ),
        (
            "no-name",
            br#"{"nom": "Ada"}"#.to_vec(),
            "not a JSON object",
        ),
        ("not-utf8", vec![b'{', 0xff, 0xfe, b'}'], "not UTF-8"),
        ("empty-name", br#"{"name": ""}"#.to_vec(), "name is empty"),
        (
            "blank-name",
            br#"{"name": " \t "}"#.to_vec(),
            "control character",
        ),
        (
            "spaces-name",
            br#"{"name": "   "}"#.to_vec(),
            "only whitespace",
        ),
        (
            "control-name",
            br#"{"name": "Ada\u0007"}"#.to_vec(),
            "control character",
        ),
        (
            "long-name",
            format!(r#"{{"name": "{}"}}"#, "x".repeat(101)).into_bytes(),
            "101 characters",
        ),
        (
            "too-large",
            format!(r#"{{"name": "Ada", "pad": "{}"}}"#, "x".repeat(5000)).into_bytes(),
            "more than the 4096 allowed",
        ),
    ];
    for (id, body, why) in &cases {
        raw.publish(body, answerable(id)).await;

        let reply = raw.next_reply().await;
        assert_eq!(correlation_id(&reply), *id);
        assert_eq!(
            reply
                .properties
                .content_type()
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("application/json")
        );
        let reply = greeting_reply(&reply.data).expect("error reply follows the contract");
        assert_eq!(reply.consumer, "hello");
        match reply.outcome {
            Outcome::Error { code, message } => {
                assert_eq!(code, "invalid_request", "{id}");
                assert!(message.contains(why), "{id}: {message}");
            }
            Outcome::<String>::Ok(g) => panic!("{id}: greeted {g:?}"),
        }

        let letter = dead.next().await;
        assert_eq!(correlation_id(&letter), *id);
        assert_eq!(
            &letter.data, body,
            "{id}: dead letter keeps the original body"
        );
        assert_eq!(
            death(&letter),
            ("rejected".to_owned(), format!("{}.hello", app.prefix))
        );
    }
    assert_still_serving(&mut raw, "after-invalid").await;
    hello.stop().await;
}

#[tokio::test]
async fn an_invalid_one_way_request_is_dead_lettered_without_reply() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let mut raw = app.raw().await;
    let mut dead = raw.dead_letters().await;

    let props = BasicProperties::default().with_correlation_id("no-reply-to".into());
    raw.publish(b"garbage", props).await;
    let letter = dead.next().await;
    assert_eq!(correlation_id(&letter), "no-reply-to");
    // The queue is FIFO with prefetch 1: the next reply is the valid request's,
    // so no reply was sent for the invalid one.
    assert_still_serving(&mut raw, "valid").await;
    hello.stop().await;
}

#[tokio::test]
async fn a_forbidden_reply_to_gets_no_reply_and_is_dead_lettered() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let mut raw = app.raw().await;
    let mut dead = raw.dead_letters().await;
    let victim = format!("{}.victim", app.prefix);
    // Exclusive: RabbitMQ 4.3 refuses transient non-exclusive queues.
    raw.channel
        .queue_declare(
            victim.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare victim queue");

    for target in [
        victim.clone(),
        format!("{}.hello", app.prefix),
        "amq.direct".to_owned(),
    ] {
        let props = answerable(&target).with_reply_to(target.as_str().into());
        raw.publish(br#"{"name":"Mallory"}"#, props).await;
        let letter = dead.next().await;
        assert_eq!(correlation_id(&letter), target);
        assert_eq!(death(&letter).0, "rejected");
    }
    // A reply is published (and confirmed) before the request is settled, so
    // had one been sent it would be in the victim queue by now.
    assert_eq!(
        raw.queue_counts(&victim).await.0,
        0,
        "nothing injected into the victim queue"
    );
    assert_still_serving(&mut raw, "valid").await;
    hello.stop().await;
}

#[tokio::test]
async fn a_one_way_request_is_processed_and_printed_without_reply() {
    let app = TestApp::new().await;
    let hello = app.consumer_bin("hello", &[]).await;
    let mut raw = app.raw().await;

    raw.publish(br#"{"name":"Ada"}"#, BasicProperties::default())
        .await;
    hello.wait_for_stdout("hello Ada").await;
    raw.publish(br#"{"name":"Bob"}"#, answerable("bob")).await;
    let reply = raw.next_reply().await;
    assert_eq!(
        correlation_id(&reply),
        "bob",
        "no reply was sent for the one-way request"
    );
    let (code, stdout) = hello.terminate().await;
    assert_eq!(code, 0);
    assert_eq!(stdout, ["hello Ada", "hello Bob"]);
    assert_eq!(
        raw.queue_counts(&format!("{}.hello", app.prefix)).await.0,
        0,
        "acked"
    );
    assert_eq!(
        raw.queue_counts(&format!("{}.dead", app.prefix)).await.0,
        0,
        "not dead-lettered"
    );
}

#[tokio::test]
async fn a_request_past_its_deadline_is_never_processed() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let mut raw = app.raw().await;
    let mut dead = raw.dead_letters().await;
    // Past its 30 s deadline by far more than the tolerated clock skew (30 s).
    let sent_five_minutes_ago = unix_now() - 300;
    // The broker only expires messages at the head of a queue; delivered at
    // once to an idle consumer, this one reaches the consumer's own check.
    let stale = answerable("stale")
        .with_timestamp(sent_five_minutes_ago)
        .with_expiration("30000".into());
    raw.publish(br#"{"name":"Stale"}"#, stale).await;

    let letter = dead.next().await;
    assert_eq!(correlation_id(&letter), "stale");
    assert_still_serving(&mut raw, "fresh").await;
    assert_eq!(
        hello.printed(),
        ["hello Ada"],
        "the stale request was not processed"
    );
    hello.stop().await;
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Defect: a consumer whose clock ran 10 s ahead dead-lettered every request
/// made with a 5 s timeout.
#[tokio::test]
async fn requests_are_answered_whichever_way_the_clocks_are_skewed_within_the_tolerance() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let mut raw = app.raw().await;
    // As a consumer 10 s ahead of the producer sees a fresh 5 s request...
    let consumer_ahead = answerable("ahead")
        .with_timestamp(unix_now() - 10)
        .with_expiration("5000".into());
    // ... and as a consumer 10 s behind sees one.
    let consumer_behind = answerable("behind")
        .with_timestamp(unix_now() + 10)
        .with_expiration("5000".into());
    for (id, properties) in [("ahead", consumer_ahead), ("behind", consumer_behind)] {
        raw.publish(br#"{"name":"Ada"}"#, properties).await;
        let reply = raw.next_reply().await;
        assert_eq!(correlation_id(&reply), id);
        let reply = greeting_reply(&reply.data).expect("reply follows the contract");
        assert_eq!(
            reply.outcome,
            Outcome::<String>::Ok("hello Ada".into()),
            "{id}"
        );
    }
    assert_eq!(hello.printed(), ["hello Ada", "hello Ada"]);
    hello.stop().await;
}
