//! Both reply modes (`rpc.reply_queue`): single and batched calls answered
//! through direct reply-to and through an exclusive reply queue; a consumer
//! that answers reply queues only; a reply to a caller that has gone. The
//! suite runs on RabbitMQ 3.10 and on an aged 4.0.5 (scripts/test.sh).

use std::time::Duration;

use rabbit_gather::{
    protocol::{Name, Outcome},
    rpc::RpcClient,
    settings::ReplyQueue,
};

use testkit::{TestApp, answerable, reason, wait_until};

fn names(stem: &str, count: usize) -> Vec<Name> {
    (0..count)
        .map(|i| Name::parse(&format!("{stem}-{i}")).expect("valid"))
        .collect()
}

/// Defect on 4.x: past 2^15 processes every direct reply-to token was
/// refused; the e2e path must hold in both modes on an aged broker.
#[tokio::test]
async fn single_and_batched_calls_are_answered_in_both_reply_modes() {
    let app = TestApp::new().await;
    let (hello, goodbye) = app.greeters().await;
    let expect = ["hello".to_owned(), "goodbye".to_owned()];
    for mode in [ReplyQueue::Direct, ReplyQueue::Exclusive] {
        let mut settings = app.settings.clone();
        settings.rpc.reply_queue = mode;
        let client =
            RpcClient::connect_with(&settings, rabbit_gather::protocol::Contract::GREETINGS)
                .await
                .expect("connects");
        for name in names(mode.as_str(), 20) {
            let gathered = client
                .call::<_, String>(&name, &expect, Duration::from_secs(10))
                .await
                .expect("call");
            assert!(gathered.is_complete(), "{mode:?}: {gathered:?}");
        }
        let batch = names(&format!("{}-batch", mode.as_str()), 100);
        let gathered = client
            .call_batch::<_, String>(&batch, &expect, Duration::from_secs(10))
            .await
            .expect("batch call");
        assert_eq!(gathered.len(), batch.len());
        for (name, one) in batch.iter().zip(&gathered) {
            assert!(one.is_complete(), "{mode:?}: {name}: {one:?}");
            assert!(
                matches!(one.reply_of("hello"), Some(Outcome::<String>::Ok(g)) if *g == format!("hello {name}")),
                "{mode:?}: {one:?}"
            );
        }
        println!(
            "reply mode {}: 20 calls and a batch of 100 answered",
            mode.as_str()
        );
        client.close().await;
    }
    testkit::stop_all([hello, goodbye]).await;
}

#[tokio::test]
async fn a_reply_queue_is_the_connections_own_and_goes_with_it() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let mut settings = app.settings.clone();
    settings.rpc.reply_queue = ReplyQueue::Exclusive;
    let (client, first) = testkit::client_and_call_ada(&settings, &["hello"]).await;
    assert!(first.is_complete(), "{first:?}");
    let raw = app.raw().await;
    let reply_prefix = format!("{}.reply.", app.prefix);
    let queues = || async {
        testkit::list_queues(&["name", "exclusive"])
            .await
            .into_iter()
            .filter(|row| {
                row.first()
                    .is_some_and(|name| name.starts_with(&reply_prefix))
            })
            .collect::<Vec<_>>()
    };
    let open = queues().await;
    assert_eq!(open.len(), 1, "one reply queue, exclusive: {open:?}");
    assert_eq!(open[0].get(1).map(String::as_str), Some("true"), "{open:?}");
    client.close().await;
    wait_until("the reply queue is deleted with its connection", || async {
        queues().await.is_empty()
    })
    .await;
    drop(raw);
    hello.stop().await;
}

/// A consumer whose user may not write to the default exchange refuses
/// direct reply-to up front (no refused publish, no reconnection) and keeps
/// answering reply queues.
#[tokio::test]
async fn a_reply_queues_only_consumer_dead_letters_a_direct_reply_to_request_and_keeps_answering() {
    let app = TestApp::new().await;
    let mut settings = app.settings.clone();
    settings.consumer.direct_reply_to = false;
    let hello = app.consumer_with("hello", &settings, None).await;
    let raw = app.raw().await;
    let mut dead = raw.dead_letters().await;
    raw.publish(br#"{"name":"Eve"}"#, answerable("direct"))
        .await;
    let letter = dead.next().await;
    let why = reason(&letter).unwrap_or_default();
    println!("direct reply-to at a reply-queues-only consumer: dead-lettered ({why:?})");
    assert_eq!(testkit::correlation_id(&letter).as_deref(), Some("direct"));
    let client = app.client().await;
    let gathered = client
        .call::<_, String>(
            &Name::parse("Ada").expect("valid"),
            &["hello".to_owned()],
            Duration::from_secs(10),
        )
        .await
        .expect("call");
    assert!(gathered.is_complete(), "{gathered:?}");
    let stats = hello.counters.snapshot();
    assert_eq!(stats.replies_refused, 0, "refused before publishing");
    assert_eq!(stats.publisher_reopened, 0);
    hello.stop().await;
}

/// Replies to a reply queue are mandatory: when the caller has gone (its
/// queue deleted with its connection), the consumer is told, counts it and
/// acks the request; nothing is dead-lettered, nothing retried.
#[tokio::test]
async fn a_reply_to_a_caller_that_has_gone_is_returned_counted_and_its_request_acked() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    // The reply exchange exists once any exclusive-mode client has run.
    app.client().await.close().await;
    let raw = app.raw().await;
    let gone = format!("{}.reply.gone", app.prefix);
    raw.publish(
        br#"{"name":"Ada"}"#,
        answerable("gone").with_reply_to(gone.as_str().into()),
    )
    .await;
    wait_until("the returned reply is counted", || async {
        hello.counters.snapshot().replies_returned == 1
    })
    .await;
    let stats = hello.counters.snapshot();
    println!("reply to a caller that has gone: {stats:?}");
    assert_eq!(stats.dead_lettered, 0);
    assert_eq!(stats.retries_scheduled, 0);
    hello.wait_for_losses(0).await;
    hello.stop().await;
}
