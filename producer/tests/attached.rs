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

#[tokio::test]
async fn a_word_whose_consumers_stopped_is_named_before_sending_and_in_its_missing_replies() {
    let app = TestApp::new().await;
    let _hello = app.consumer("hello").await;
    let goodbye = app.consumer("goodbye").await;
    detach(&app, goodbye, "goodbye").await;

    let ProducerRun {
        code,
        stdout,
        stderr,
        ..
    } = run_producer(
        &app,
        &["--expect", "hello,goodbye", "--timeout", "1s", "Ada"],
        None,
    )
    .await;

    assert_eq!(code, 3, "incomplete, as documented: {stderr}");
    assert_eq!(stdout, "hello Ada\n");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "producer: no consumer is attached to {}.goodbye: replies from goodbye will be \
                 missing unless one starts",
                app.prefix
            )
            .as_str(),
            "producer: no reply from goodbye for \"Ada\" within 1s (no goodbye consumer was \
             attached at the start)",
        ],
        "{stderr}"
    );
}

#[tokio::test]
async fn a_word_with_no_queue_at_all_is_named_before_sending() {
    let app = TestApp::new().await;
    let _hello = app.consumer("hello").await;

    let ProducerRun {
        code,
        stdout,
        stderr,
        ..
    } = run_producer(
        &app,
        &["--expect", "hello,nobody", "--timeout", "1s", "Ada"],
        None,
    )
    .await;

    assert_eq!(code, 3, "{stderr}");
    assert_eq!(stdout, "hello Ada\n");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "producer: there is no queue {}.nobody: no nobody consumer has started (or its \
                 queue was deleted); replies from nobody will be missing unless one starts",
                app.prefix
            )
            .as_str(),
            "producer: no reply from nobody for \"Ada\" within 1s (no nobody consumer was \
             attached at the start)",
        ],
        "{stderr}"
    );
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
