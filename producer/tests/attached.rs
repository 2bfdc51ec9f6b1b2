//! Black-box checks, against the test broker (`AMQP_URL`, default the
//! local one), that `producer` says before sending which expected word has
//! no consumer attached to its queue (one stopped, or none ever started),
//! and says it again in that word's missing replies; and that it says
//! nothing when every word has one. No broker is a failure, never a skipped
//! test.

// A failed expectation is a failed test: panicking is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use testkit::{ProducerRun, TestApp, run_producer, wait_until};

/// Stops the `word` consumer and waits until the broker counts no consumer
/// on its queue, which stays.
async fn detach(app: &TestApp, consumer: testkit::RunningConsumer, word: &str) {
    consumer.stop().await;
    let raw = app.raw().await;
    let queue = format!("{}.{word}", app.prefix);
    wait_until(&format!("{queue} has no consumer"), || async {
        raw.queue_counts(&queue).await.1 == 0
    })
    .await;
}

/// Runs the producer for Ada expecting `hello` and `word` with a 1 s
/// deadline, and checks that it answers hello, exits 3 (incomplete, as
/// documented), and that stderr is exactly `warning` (before sending) and
/// the missing reply's line with its hint.
async fn warned_once_and_in_the_missing_reply(app: &TestApp, word: &str, warning: &str) {
    let expect = format!("hello,{word}");
    let ProducerRun {
        code,
        stdout,
        stderr,
        ..
    } = run_producer(app, &["--expect", &expect, "--timeout", "1s", "Ada"], None).await;

    assert_eq!(code, 3, "incomplete, as documented: {stderr}");
    assert_eq!(stdout, "hello Ada\n");
    let lines: Vec<&str> = stderr.lines().collect();
    let missing = format!(
        "producer: no reply from {word} for \"Ada\" within 1s (no {word} consumer was \
         attached at the start)"
    );
    assert_eq!(lines, [warning, missing.as_str()], "{stderr}");
}

#[tokio::test]
async fn a_word_whose_consumers_stopped_is_named_before_sending_and_in_its_missing_replies() {
    let app = TestApp::new().await;
    let _hello = app.consumer("hello").await;
    let goodbye = app.consumer("goodbye").await;
    detach(&app, goodbye, "goodbye").await;

    let warning = format!(
        "producer: no consumer is attached to {}.goodbye: replies from goodbye will be missing \
         unless one starts",
        app.prefix
    );
    warned_once_and_in_the_missing_reply(&app, "goodbye", &warning).await;
}

#[tokio::test]
async fn a_word_with_no_queue_at_all_is_named_before_sending() {
    let app = TestApp::new().await;
    let _hello = app.consumer("hello").await;

    let warning = format!(
        "producer: there is no queue {}.nobody: no nobody consumer has started (or its queue \
         was deleted); replies from nobody will be missing unless one starts",
        app.prefix
    );
    warned_once_and_in_the_missing_reply(&app, "nobody", &warning).await;
}

#[tokio::test]
async fn every_word_with_a_consumer_attached_gives_no_warning() {
    let app = TestApp::new().await;
    let _hello = app.consumer("hello").await;
    let _goodbye = app.consumer("goodbye").await;

    let ProducerRun {
        code,
        stdout,
        stderr,
        ..
    } = run_producer(&app, &["--expect", "hello,goodbye", "Ada"], None).await;

    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "hello Ada\ngoodbye Ada\n");
    assert_eq!(stderr, "", "no warning, no missing reply");
}
