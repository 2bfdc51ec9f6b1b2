//! Graceful shutdown: the message in hand is finished, nothing is lost and
//! nothing is processed twice.

use std::{collections::HashSet, sync::Arc, time::Duration};

use common::protocol::Name;
use futures::future::join_all;

use crate::helpers::{TestApp, wait_until};

#[tokio::test]
async fn sigterm_with_a_message_in_hand_loses_nothing_and_processes_nothing_twice() {
    let app = TestApp::new().await;
    let delay = [("GREETINGS_CONSUMER__HANDLER_DELAY", "500ms")];
    let first = app.consumer_bin("hello", &delay).await;
    let client = Arc::new(app.client().await);
    let raw = app.raw().await;
    let queue = format!("{}.hello", app.prefix);

    let names = ["Ada", "Bob", "Cy"];
    let calls: Vec<_> = names
        .iter()
        .map(|n| {
            let client = Arc::clone(&client);
            let name = Name::parse(n).expect("valid");
            tokio::spawn(async move {
                client
                    .call(&name, &["hello".to_owned()], Duration::from_secs(30))
                    .await
            })
        })
        .collect();
    // One delivered and in hand (prefetch 1), two still ready in the queue.
    wait_until("one request is in hand", || {
        let raw = &raw;
        let queue = &queue;
        async move { raw.queue_counts(queue).await == (2, 1) }
    })
    .await;

    let (code, first_lines) = first.terminate().await;
    assert_eq!(code, 0, "SIGTERM is a clean exit");
    assert!(!first_lines.is_empty(), "the message in hand was finished");

    let second = app.consumer_bin("hello", &[]).await;
    let results = join_all(calls).await;
    for result in results {
        let gathered = result.expect("task").expect("call");
        assert!(gathered.is_complete(), "{gathered:?}");
    }
    let (_, second_lines) = second.terminate().await;

    let all: Vec<String> = first_lines.into_iter().chain(second_lines).collect();
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 3, "each name processed exactly once: {all:?}");
    assert_eq!(unique.len(), 3, "{all:?}");
    assert_eq!(client.stats().duplicates, 0);
    assert_eq!(raw.queue_counts(&queue).await.0, 0);
}
