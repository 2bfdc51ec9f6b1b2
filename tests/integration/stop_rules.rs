//! The stop rules of a gather (the first reply, N replies, a stall, a named
//! set, every live responder), each ending by its deadline when its
//! condition never comes; and responder discovery (the roll call) with a
//! responder that joins and one that leaves.

use std::time::Duration;

use futures::FutureExt;
use rabbit_gather::{
    protocol::{Name, Outcome},
    rpc::{Gathered, RpcClient, Until},
};
use tokio::time::Instant;

use testkit::{RunningConsumer, TestApp, TestHandler, run_producer};

/// A deadline no rule that completes comes near, even on a loaded machine.
const LONG: Duration = Duration::from_secs(20);
/// The deadline of a call whose rule never completes.
const SHORT: Duration = Duration::from_secs(2);

fn ada() -> Name {
    Name::parse("Ada").expect("valid")
}

/// Calls with `until` and `timeout`: what was gathered, and how long it took.
async fn call(client: &RpcClient, until: Until, timeout: Duration) -> (Gathered<String>, Duration) {
    let started = Instant::now();
    let gathered = client
        .call::<_, String>(&ada(), until, timeout)
        .await
        .expect("the call ends with a result");
    (gathered, started.elapsed())
}

fn answered(gathered: &Gathered<String>) -> Vec<&str> {
    let mut words: Vec<&str> = gathered
        .replies
        .iter()
        .map(|r| r.consumer.as_str())
        .collect();
    words.sort_unstable();
    words
}

/// A consumer that is live (it answers roll calls) but never answers a
/// request: its handler waits until the service cancels it.
async fn stuck_consumer(app: &TestApp, word: &str) -> RunningConsumer {
    let mut settings = app.settings.clone();
    settings.consumer.max_handling_time = Duration::from_secs(3);
    let stuck: TestHandler = Box::new(|_, _| std::future::pending().boxed());
    app.consumer_with(word, &settings, Some(stuck)).await
}

/// Consumers of `words` whose queues stay bound but that have stopped: a
/// request is routed to them and never answered.
async fn gone(app: &TestApp, words: &[&str]) {
    for word in words {
        app.consumer(word).await.stop().await;
    }
}

#[tokio::test]
async fn first_and_count_end_at_their_reply_and_by_the_deadline_when_it_never_comes() {
    let app = TestApp::new().await;
    let (hello, goodbye) = app.greeters().await;
    let client = app.client().await;

    let (first, took) = call(&client, Until::First, LONG).await;
    assert!(!first.replies.is_empty(), "{first:?}");
    assert!(took < LONG, "ended at the first reply, took {took:?}");
    let (two, took) = call(&client, Until::Count(2), LONG).await;
    assert_eq!(answered(&two), ["goodbye", "hello"]);
    assert!(took < LONG, "ended at the second reply, took {took:?}");

    // Three replies never come from two responders.
    let (short, took) = call(&client, Until::Count(3), SHORT).await;
    assert_eq!(answered(&short), ["goodbye", "hello"]);
    assert!(took >= SHORT, "ended by its deadline, took {took:?}");
    assert!(short.missing.is_empty(), "no set was named");

    testkit::stop_all([hello, goodbye]).await;
    // Nobody answers: even the first reply never comes.
    let (none, took) = call(&client, Until::First, SHORT).await;
    assert!(none.replies.is_empty(), "{none:?}");
    assert!(took >= SHORT, "ended by its deadline, took {took:?}");
    client.close().await;
}

#[tokio::test]
async fn a_stall_ends_after_the_last_reply_and_by_the_deadline_when_nothing_comes() {
    let app = TestApp::new().await;
    let (hello, goodbye) = app.greeters().await;
    let client = app.client().await;

    let (both, took) = call(&client, Until::Stall(Duration::from_millis(500)), LONG).await;
    assert_eq!(answered(&both), ["goodbye", "hello"]);
    assert!(took < LONG, "ended on the stall, took {took:?}");

    testkit::stop_all([hello, goodbye]).await;
    let (none, took) = call(&client, Until::Stall(Duration::from_millis(200)), SHORT).await;
    assert!(none.replies.is_empty(), "{none:?}");
    assert!(took >= SHORT, "ended by its deadline, took {took:?}");
    client.close().await;
}

#[tokio::test]
async fn a_named_set_ends_when_complete_and_names_who_is_missing_at_the_deadline() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    gone(&app, &["goodbye"]).await;
    let client = app.client().await;

    let (hello_only, took) = call(&client, Until::from(["hello"]), LONG).await;
    assert!(hello_only.is_complete(), "{hello_only:?}");
    assert!(took < LONG, "took {took:?}");

    let (partial, took) = call(&client, Until::from(["hello", "goodbye"]), SHORT).await;
    assert_eq!(answered(&partial), ["hello"]);
    assert_eq!(partial.missing, ["goodbye"]);
    assert!(took >= SHORT, "ended by its deadline, took {took:?}");
    hello.stop().await;
    client.close().await;
}

#[tokio::test]
async fn every_live_responder_is_awaited_and_a_live_one_that_never_answers_is_named() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    // Bound but stopped: not live, so neither awaited nor missing.
    gone(&app, &["bonjour"]).await;
    let client = app.client().await;

    let (live, took) = call(&client, Until::Live, LONG).await;
    assert_eq!(answered(&live), ["hello"]);
    assert!(live.missing.is_empty(), "{live:?}");
    assert!(took < LONG, "took {took:?}");

    let goodbye = stuck_consumer(&app, "goodbye").await;
    let (partial, took) = call(&client, Until::Live, SHORT).await;
    assert_eq!(answered(&partial), ["hello"]);
    assert_eq!(partial.missing, ["goodbye"], "live at the start, no answer");
    assert!(took >= SHORT, "ended by its deadline, took {took:?}");
    testkit::stop_all([hello, goodbye]).await;
    client.close().await;
}

#[tokio::test]
async fn discovery_sees_a_responder_join_and_one_leave() {
    let app = TestApp::new().await;
    let (hello, goodbye) = app.greeters().await;
    let client = app.client().await;
    let stall = rabbit_gather::rpc::ROLL_CALL_STALL;
    let live = || client.responders(LONG, stall);

    assert_eq!(live().await.expect("roll call"), ["goodbye", "hello"]);

    let bonjour = app.consumer("bonjour").await;
    assert_eq!(
        live().await.expect("roll call"),
        ["bonjour", "goodbye", "hello"]
    );
    let (joined, _) = call(&client, Until::Live, LONG).await;
    assert_eq!(answered(&joined), ["bonjour", "goodbye", "hello"]);
    assert!(
        joined.replies.iter().all(|r| matches!(
            &r.outcome,
            Outcome::Ok(greeting) if *greeting == format!("{} Ada", r.consumer)
        )),
        "{joined:?}"
    );

    // Its queue stays, bound: a request still reaches it, but it is not live.
    goodbye.stop().await;
    assert_eq!(live().await.expect("roll call"), ["bonjour", "hello"]);
    let (left, took) = call(&client, Until::Live, LONG).await;
    assert_eq!(answered(&left), ["bonjour", "hello"]);
    assert!(left.missing.is_empty(), "{left:?}");
    assert!(
        took < LONG,
        "did not wait for the one that left, took {took:?}"
    );

    hello.stop().await;
    bonjour.stop().await;
    assert!(live().await.expect("roll call").is_empty());
    client.close().await;
}

#[tokio::test]
async fn the_producer_lists_the_live_words_and_gathers_from_all_of_them() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    gone(&app, &["bonjour"]).await;

    let listed = run_producer(&app, &["--responders"], None).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    assert_eq!(
        listed.stdout, "hello\n",
        "bonjour's queue is bound, but it is not live"
    );
    let run = run_producer(&app, &["--expect", "all", "Ada"], None).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "hello Ada\n"),
        "{run:?}"
    );

    // Live at the start of the run, never answering: named, exit 3.
    let goodbye = stuck_consumer(&app, "goodbye").await;
    let listed = run_producer(&app, &["--responders"], None).await;
    assert_eq!(listed.stdout, "goodbye\nhello\n", "{listed:?}");
    let run = run_producer(&app, &["--expect", "all", "--timeout", "2s", "Ada"], None).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stdout, "hello Ada\n");
    assert!(
        run.stderr
            .contains("no reply from goodbye for \"Ada\" within 2s"),
        "{run:?}"
    );
    testkit::stop_all([hello, goodbye]).await;

    // Nobody live: said at once, exit 5, nothing sent.
    for args in [&["--responders"][..], &["--expect", "all", "Ada"]] {
        let run = run_producer(&app, args, None).await;
        assert_eq!(run.code, 5, "{run:?}");
        assert!(
            run.stderr.contains("no consumer answered a roll call"),
            "{run:?}"
        );
    }
}
