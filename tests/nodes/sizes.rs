//! No request and no reply is ever larger than the broker accepts: on a
//! private node with the repository's `max_message_size` (64 KiB, what the
//! compose stack runs), batches of long names are cut to fit, a batch's long
//! answers come back in parts, and an answer too large even alone becomes a
//! `reply_too_large` error for its name alone.

use std::{path::PathBuf, time::Duration};

use rabbit_gather::{
    protocol::{Name, Outcome, names::REPLY_TOO_LARGE},
    rpc::ReconnectingClient,
    settings::DEFAULT_MAX_MESSAGE_SIZE,
};

use testkit::support::node::PrivateNode;
use testkit::{TestApp, run_producer, test_handler};

/// `max_message_size` in the repository's `rabbitmq/rabbitmq.conf`.
fn repository_limit() -> usize {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rabbitmq/rabbitmq.conf");
    let config = std::fs::read_to_string(&path).expect("the repository's rabbitmq.conf");
    config
        .lines()
        .find_map(|line| line.trim().strip_prefix("max_message_size"))
        .and_then(|rest| rest.trim().strip_prefix('='))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no max_message_size in {}", path.display()))
}

/// A node that accepts bodies of at most the repository's limit.
async fn limited_node() -> (PrivateNode, TestApp) {
    let node =
        PrivateNode::start_with(&format!("max_message_size = {}\n", repository_limit())).await;
    let app = TestApp::on(&node.url()).await;
    (node, app)
}

#[test]
fn the_services_default_limit_is_the_repository_brokers() {
    assert_eq!(repository_limit(), DEFAULT_MAX_MESSAGE_SIZE);
}

#[tokio::test]
async fn at_the_compose_limit_long_names_and_long_answers_are_all_answered() {
    let (_node, app) = limited_node().await;
    let hello = app.consumer("hello").await;
    // goodbye's answers are 2,000 characters longer than hello's: a batch's
    // answer is many times the request.
    let goodbye = app
        .consumer_with(
            "goodbye",
            &app.settings,
            Some(test_handler(|name, cx| {
                Ok(format!("{} {name} {}", cx.word, ".".repeat(2000)))
            })),
        )
        .await;
    // 1,000 names of 100 characters: a 103 KB batch, over the limit.
    let names: Vec<String> = (0..1000)
        .map(|i| format!("{i:04}{}", "n".repeat(96)))
        .collect();
    let stdin: String = names.iter().map(|n| format!("{n}\n")).collect();

    let run = run_producer(&app, &["--batch", "1000", "--timeout", "60s"], Some(&stdin)).await;

    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2000, "{}", run.stderr);
    let dots = ".".repeat(2000);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(lines[2 * i], format!("hello {name}"));
        assert_eq!(lines[2 * i + 1], format!("goodbye {name} {dots}"));
    }
    for consumer in [&hello, &goodbye] {
        let stats = consumer.counters.snapshot();
        assert_eq!(stats.handled, 1000, "{stats:?}");
        assert_eq!(stats.dead_lettered, 0, "{stats:?}");
    }
    // goodbye's answers went in parts, many more than hello's (whose answer
    // to a batch filled up to the limit, a little longer than the batch,
    // may take two parts).
    let (said_hello, said_goodbye) = (hello.counters.snapshot(), goodbye.counters.snapshot());
    assert!(said_goodbye.replies > said_goodbye.ok, "{said_goodbye:?}");
    assert!(
        said_goodbye.replies > 4 * said_hello.replies,
        "hello {said_hello:?}, goodbye {said_goodbye:?}"
    );
    testkit::stop_all([hello, goodbye]).await;
}

#[tokio::test]
async fn an_answer_too_large_even_alone_is_an_error_for_its_name_alone() {
    let (_node, app) = limited_node().await;
    let hello = app
        .consumer_with(
            "hello",
            &app.settings,
            Some(test_handler(|name, cx| {
                Ok(if name.as_str() == "Huge" {
                    "h".repeat(100_000)
                } else {
                    format!("{} {name}", cx.word)
                })
            })),
        )
        .await;
    let client = ReconnectingClient::connect_with(
        &app.settings,
        rabbit_gather::protocol::Contract::GREETINGS,
    )
    .await
    .expect("connects");
    let expect = vec!["hello".to_owned()];
    let names = ["Ada", "Huge", "Bob"].map(|n| Name::parse(n).expect("valid"));
    let timeout = Duration::from_secs(30);

    let batch = client
        .call_batch::<_, String>(&names, &expect, timeout, 0)
        .await
        .expect("answered");
    let single = client
        .call::<_, String>(&names[1], &expect, timeout, 0)
        .await
        .expect("answered");

    let outcomes: Vec<Option<&Outcome<String>>> =
        batch.iter().map(|g| g.reply_of("hello")).collect();
    assert_eq!(
        outcomes[0],
        Some(&Outcome::<String>::Ok("hello Ada".into()))
    );
    assert_eq!(
        outcomes[2],
        Some(&Outcome::<String>::Ok("hello Bob".into()))
    );
    for outcome in [outcomes[1], single.reply_of("hello")] {
        let Some(Outcome::Error { code, message }) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(code, REPLY_TOO_LARGE);
        assert!(message.contains("more than the 65536"), "{message}");
    }
    let stats = hello.counters.snapshot();
    assert_eq!(stats.dead_lettered, 0, "{stats:?}");
    assert_eq!(stats.replies_refused, 0, "{stats:?}");
    client.close().await;
    hello.stop().await;
}
