//! The RPC client against in-process consumers: scatter-gather, pairing,
//! concurrency, unicode, extra consumers, timeouts and no-route.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use rabbit_gather::{
    protocol::{Name, Outcome},
    rpc::{Gathered, RpcClient, RpcError},
};

use testkit::TestApp;

fn expect(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// Calls `count` names `<stem>-<i>` with `parallel` in flight; results in
/// completion order, each with its name.
async fn call_many(
    client: &RpcClient,
    stem: &str,
    count: usize,
    words: &[String],
    parallel: usize,
) -> Vec<(Name, Result<Gathered<String>, RpcError>)> {
    stream::iter(0..count)
        .map(|i| async move {
            let name = Name::parse(&format!("{stem}-{i}")).expect("valid");
            let result = client
                .call::<_, String>(&name, words, Duration::from_secs(30))
                .await;
            (name, result)
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

fn greeting_of(outcome: Option<&Outcome<String>>) -> Option<&str> {
    match outcome {
        Some(Outcome::<String>::Ok(g)) => Some(g),
        _ => None,
    }
}

#[tokio::test]
async fn one_name_gets_hello_and_goodbye() {
    let app = TestApp::new().await;
    let (hello, goodbye) = app.greeters().await;
    let client = app.client().await;

    let name = Name::parse("Ada").expect("valid");
    let gathered = client
        .call::<_, String>(
            &name,
            &expect(&["hello", "goodbye"]),
            Duration::from_secs(10),
        )
        .await
        .expect("call succeeds");

    assert!(gathered.is_complete(), "{gathered:?}");
    assert_eq!(greeting_of(gathered.reply_of("hello")), Some("hello Ada"));
    assert_eq!(
        greeting_of(gathered.reply_of("goodbye")),
        Some("goodbye Ada")
    );
    assert_eq!(client.stats().in_flight, 0);
    client.close().await;
    testkit::stop_all([hello, goodbye]).await;
}

#[tokio::test]
async fn a_thousand_concurrent_names_each_get_their_own_replies() {
    let app = TestApp::new().await;
    let (hello, goodbye) = app.greeters().await;
    let client = app.client().await;
    let words = expect(&["hello", "goodbye"]);

    let results = call_many(&client, "name", 1000, &words, 1000).await;

    let mut seen = HashSet::new();
    for (name, result) in results {
        let gathered = result.expect("call succeeds");
        assert!(gathered.is_complete(), "{name}: {gathered:?}");
        assert_eq!(
            greeting_of(gathered.reply_of("hello")),
            Some(format!("hello {name}").as_str())
        );
        assert_eq!(
            greeting_of(gathered.reply_of("goodbye")),
            Some(format!("goodbye {name}").as_str())
        );
        assert!(seen.insert(name.to_string()), "{name} answered twice");
    }
    assert_eq!(seen.len(), 1000);
    assert_eq!(hello.printed().len(), 1000, "each request processed once");
    let stats = client.stats();
    assert_eq!(
        (stats.in_flight, stats.duplicates, stats.stray),
        (0, 0, 0),
        "{stats:?}"
    );
    client.close().await;
    testkit::stop_all([hello, goodbye]).await;
}

#[tokio::test]
async fn unicode_names_round_trip_unchanged() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let client = app.client().await;
    for text in [
        "Zoë",
        "李小龙",
        "Ωmega 👋",
        "Łukasz Żółć",
        "عائشة",
        &"é".repeat(100),
    ] {
        let name = Name::parse(text).expect("valid");
        let gathered = client
            .call::<_, String>(&name, &expect(&["hello"]), Duration::from_secs(10))
            .await
            .expect("call succeeds");
        assert_eq!(
            greeting_of(gathered.reply_of("hello")),
            Some(format!("hello {text}").as_str())
        );
    }
    client.close().await;
    hello.stop().await;
}

#[tokio::test]
async fn a_third_consumer_word_answers_too() {
    let app = TestApp::new().await;
    let consumers = [
        app.consumer("hello").await,
        app.consumer("goodbye").await,
        app.consumer("bonjour").await,
    ];
    let client = app.client().await;
    let name = Name::parse("Ada").expect("valid");
    let gathered = client
        .call::<_, String>(
            &name,
            &expect(&["hello", "goodbye", "bonjour"]),
            Duration::from_secs(10),
        )
        .await
        .expect("call succeeds");
    assert!(gathered.is_complete(), "{gathered:?}");
    assert_eq!(
        greeting_of(gathered.reply_of("bonjour")),
        Some("bonjour Ada")
    );
    client.close().await;
    for consumer in consumers {
        consumer.stop().await;
    }
}

#[tokio::test]
async fn a_missing_consumer_is_reported_by_the_deadline_and_its_entry_removed() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let client = app.client().await;
    let name = Name::parse("Ada").expect("valid");
    let timeout = Duration::from_millis(800);

    let started = Instant::now();
    let gathered = client
        .call::<_, String>(&name, &expect(&["hello", "goodbye"]), timeout)
        .await
        .expect("a timeout is a result, not an error");

    assert!(started.elapsed() >= timeout);
    assert!(
        started.elapsed() < timeout + Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(gathered.missing, ["goodbye"]);
    assert_eq!(greeting_of(gathered.reply_of("hello")), Some("hello Ada"));
    assert_eq!(
        client.stats().in_flight,
        0,
        "timed-out call must leave the map"
    );
    client.close().await;
    hello.stop().await;
}

#[tokio::test]
async fn no_bound_queue_fails_at_once_with_no_route() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let name = Name::parse("Ada").expect("valid");
    let timeout = Duration::from_secs(10);

    let started = Instant::now();
    let result = client
        .call::<_, String>(&name, &expect(&["hello"]), timeout)
        .await;

    assert!(
        matches!(result, Err(RpcError::NoRoute { .. })),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(client.stats().in_flight, 0);
    client.close().await;
}

#[tokio::test]
async fn calls_fail_at_once_when_the_connection_is_lost() {
    let app = TestApp::new().await;
    // A queue bound to the exchange that nobody consumes: calls stay in flight.
    let hello = app.consumer("hello").await;
    hello.stop().await;
    let client = std::sync::Arc::new(app.client().await);
    let name = Name::parse("Ada").expect("valid");

    let call = {
        let client = std::sync::Arc::clone(&client);
        tokio::spawn(async move {
            client
                .call::<_, String>(&name, &["hello".to_owned()], Duration::from_secs(60))
                .await
        })
    };
    testkit::wait_until("the call is in flight", || {
        let n = client.stats().in_flight;
        async move { n == 1 }
    })
    .await;
    // Close the connection under the client, as a broker restart would.
    let started = Instant::now();
    testkit::kill_connection(&format!("greetings-producer {}", app.prefix)).await;
    let result = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call ends long before its 60 s timeout")
        .expect("task");
    assert!(
        matches!(result, Err(RpcError::ConnectionLost(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(client.is_connection_lost());
}

#[tokio::test]
async fn a_consumer_handling_many_at_once_answers_each_request_exactly_once() {
    let app = TestApp::new().await;
    let mut settings = app.settings.clone();
    settings.consumer.prefetch = 32;
    settings.consumer.concurrency = 16;
    let hello = app.consumer_with("hello", &settings, None).await;
    let client = app.client().await;
    let words = expect(&["hello"]);
    let results = call_many(&client, "c", 500, &words, 128).await;
    for (name, result) in results {
        let gathered = result.expect("call succeeds");
        assert_eq!(
            greeting_of(gathered.reply_of("hello")),
            Some(format!("hello {name}").as_str())
        );
    }
    let printed: HashSet<String> = hello.printed().into_iter().collect();
    assert_eq!(printed.len(), 500);
    assert_eq!(hello.printed().len(), 500, "each request handled once");
    client.close().await;
    hello.stop().await;
}

/// Defect: lapin can lose a connection without reporting it, and a client
/// kept for days then failed every call by its deadline, for ever, never
/// seeing the loss. The client now proves its connection alive as the
/// consumers do. Here the connection goes silent behind a proxy, with
/// heartbeats off, so only the client's own probe can notice.
#[tokio::test]
async fn a_client_notices_a_connection_gone_silent_without_heartbeats() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let proxy = testkit::support::proxy::Proxy::to_broker().await;
    let mut settings = app.settings.clone();
    settings.amqp.url = proxy.amqp_url_with_heartbeat(0).into();
    let client = RpcClient::connect_with(&settings, rabbit_gather::protocol::Contract::GREETINGS)
        .await
        .expect("connects");
    let name = Name::parse("Ada").expect("valid");
    let expect = expect(&["hello"]);
    let before = client
        .call::<_, String>(&name, &expect, Duration::from_secs(10))
        .await
        .expect("call");
    assert!(before.is_complete(), "{before:?}");

    proxy.blackhole();
    let silent = Instant::now();
    let call = client
        .call::<_, String>(&name, &expect, Duration::from_secs(60))
        .await;
    let noticed = silent.elapsed();
    println!(
        "a silent connection (no heartbeats): the call in flight failed after {noticed:?}: {call:?}"
    );
    assert!(
        matches!(call, Err(RpcError::ConnectionLost(_))),
        "the call fails as a lost connection, not by its 60 s deadline: {call:?}"
    );
    assert!(client.is_connection_lost());
    assert!(noticed < Duration::from_secs(30), "{noticed:?}");
    hello.stop().await;
}
