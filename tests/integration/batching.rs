//! Contract v1.1 batches: several names per request, one result per name.
//! Batches and single requests mix freely, each name keeps its own result
//! (greeting or error), an older v1-only responder still works with
//! `--batch 1`, a lost connection resends a batch whole without losing or
//! doubling a name, and a batch over the limits is refused before sending.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{FutureExt, future::join_all};
use rabbit_gather::{
    protocol::{
        self, BatchError, MAX_BATCH_BYTES, MAX_BATCH_NAMES, Name,
        names::{INTERNAL_ERROR, INVALID_REQUEST, REQUEST_FAILED},
    },
    rpc::{Gathered, ReconnectingClient, RpcClient, RpcError},
    service::HandlerError,
};
use serde_json::{Value, json};

use fixtures::replies::{error_code_of, greeting_of, words};
use testkit::support::ledger::Ledger;
use testkit::{
    EVENT_TIMEOUT, RunningConsumer, TestApp, TestHandler, answerable, kill_connection, reason,
    run_producer, run_producer_with_stats, wait_until,
};

fn names(prefix: &str, n: usize) -> Vec<Name> {
    (0..n)
        .map(|i| Name::parse(&format!("{prefix}{i}")).expect("valid"))
        .collect()
}

/// `n` names and the producer's stdin holding them, one per line.
fn input_lines(n: usize) -> (Vec<String>, String) {
    let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    let stdin = names.iter().map(|n| format!("{n}\n")).collect();
    (names, stdin)
}

/// The producer's output when hello and goodbye greeted every name.
fn greeted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("hello {n}\ngoodbye {n}\n"))
        .collect()
}

#[tokio::test]
async fn batches_and_single_requests_mixed_pair_every_name_with_its_own_greetings() {
    let app = TestApp::new().await;
    let (hello, goodbye) = app.greeters().await;
    let client = app.client().await;
    let expect = words(&["hello", "goodbye"]);

    // Groups of 1 (sent as v1 requests) and of 2 to 9 (batches), all in
    // flight at once on one client.
    let sizes = [1, 4, 1, 9, 2, 1, 1, 7, 3, 1, 5, 1];
    let mut groups = Vec::new();
    for (g, size) in sizes.iter().enumerate() {
        groups.push(names(&format!("g{g}n"), *size));
    }
    let calls = groups.iter().map(|group| {
        let (client, expect) = (&client, &expect);
        async move {
            if let [single] = group.as_slice() {
                vec![
                    client
                        .call::<_, String>(single, expect, Duration::from_secs(10))
                        .await
                        .expect("single call"),
                ]
            } else {
                client
                    .call_batch::<_, String>(group, expect, Duration::from_secs(10))
                    .await
                    .expect("batch call")
            }
        }
    });
    let results = join_all(calls).await;

    let mut total = 0;
    for (group, gathered) in groups.iter().zip(&results) {
        assert_eq!(gathered.len(), group.len(), "one result per name");
        for (name, gathered) in group.iter().zip(gathered) {
            total += 1;
            assert!(gathered.is_complete(), "{name}: {gathered:?}");
            assert_eq!(
                greeting_of(gathered, "hello"),
                Some(format!("hello {name}").as_str())
            );
            assert_eq!(
                greeting_of(gathered, "goodbye"),
                Some(format!("goodbye {name}").as_str())
            );
        }
    }
    let batched: usize = sizes.iter().filter(|s| **s > 1).sum();
    for consumer in [&hello, &goodbye] {
        let stats = consumer.counters.snapshot();
        assert_eq!(stats.handled, total as u64, "{stats:?}");
        assert_eq!(stats.batch_names, batched as u64, "{stats:?}");
        assert_eq!(consumer.printed().len(), total, "one line per name");
    }
    client.close().await;
    testkit::stop_all([hello, goodbye]).await;
}

#[tokio::test]
async fn the_producer_with_batches_prints_every_name_in_input_order() {
    let app = TestApp::new().await;
    let (hello, goodbye) = app.greeters().await;
    let (input, stdin) = input_lines(300);

    let run = run_producer(&app, &["--batch", "7", "--concurrency", "3"], Some(&stdin)).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, greeted(&input));
    for consumer in [&hello, &goodbye] {
        let stats = consumer.counters.snapshot();
        assert_eq!(stats.handled, 300, "{stats:?}");
        assert!(
            stats.batch_names > 0,
            "names waiting behind 3 requests in flight went in batches: {stats:?}"
        );
        assert_eq!(consumer.printed().len(), 300);
    }
    testkit::stop_all([hello, goodbye]).await;
}

/// Defect: every free request slot took whatever names had arrived since
/// the last request, so a fast input ran as many small messages (1,000,000
/// names at `--batch 1000` went in 7,870 requests). Now a partial batch goes
/// only when no request is in flight.
#[tokio::test]
async fn names_that_arrive_while_requests_are_in_flight_fill_whole_batches() {
    const NAMES: usize = 20_000;
    let app = TestApp::new().await;
    let (hello, goodbye) = app.greeters().await;
    let (input, stdin) = input_lines(NAMES);

    let run = run_producer(&app, &["--batch", "1000"], Some(&stdin)).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, greeted(&input));
    for consumer in [&hello, &goodbye] {
        let stats = consumer.counters.snapshot();
        assert_eq!(stats.handled, NAMES as u64, "{stats:?}");
        // 20 full batches, the first name alone, and a partial batch
        // whenever the input fell behind every request in flight.
        assert!(
            stats.replies <= 40,
            "{} requests for {NAMES} names at --batch 1000: {stats:?}",
            stats.replies
        );
    }
    testkit::stop_all([hello, goodbye]).await;
}

#[tokio::test]
async fn a_batch_with_valid_and_invalid_names_answers_each_name_on_its_own() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let mut raw = app.raw().await;

    let body = json!({"names": ["Ada", "", "Bob", "x\u{7}y", "   ", "Zoë"]});
    raw.publish(body.to_string().as_bytes(), answerable("mixed"))
        .await;
    let reply = raw.next_reply().await;
    assert_eq!(testkit::correlation_id(&reply).as_deref(), Some("mixed"));
    let reply: Value = serde_json::from_slice(&reply.data).expect("JSON reply");
    assert_eq!(reply["consumer"], "hello");
    let results = reply["results"].as_array().expect("results array");
    assert_eq!(results.len(), 6, "{reply}");
    assert_eq!(results[0], json!({"greeting": "hello Ada"}));
    assert_eq!(results[2], json!({"greeting": "hello Bob"}));
    assert_eq!(results[5], json!({"greeting": "hello Zoë"}));
    for bad in [1, 3, 4] {
        assert_eq!(results[bad]["error"]["code"], INVALID_REQUEST, "{reply}");
        assert!(
            results[bad]["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{reply}"
        );
        assert!(results[bad].get("greeting").is_none(), "{reply}");
    }

    // With prefetch 1, the next request is delivered only once the batch is
    // settled: then the counters say how it was settled.
    raw.publish(br#"{"name": "After"}"#, answerable("after"))
        .await;
    let after = raw.next_reply().await;
    assert_eq!(
        after
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str()),
        Some("after")
    );
    assert_eq!(
        hello.printed(),
        ["hello Ada", "hello Bob", "hello Zoë", "hello After"],
        "a greeting printed per valid name, none for the invalid ones"
    );
    let stats = hello.counters.snapshot();
    assert_eq!(
        (stats.dead_lettered, stats.rejected),
        (0, 0),
        "a batch with some invalid names is answered and acked: {stats:?}"
    );
    assert_eq!(stats.batch_names, 6, "{stats:?}");
    hello.stop().await;
}

#[tokio::test]
async fn a_malformed_batch_is_refused_whole_with_one_error_and_dead_lettered() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let mut raw = app.raw().await;
    let mut dead = raw.dead_letters().await;

    let too_many = json!({ "names": vec!["n"; MAX_BATCH_NAMES + 1] }).to_string();
    let too_large = json!({ "names": vec!["x".repeat(100); 1400] }).to_string();
    assert!(too_large.len() > MAX_BATCH_BYTES);
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", br#"{"names": []}"#.to_vec()),
        ("too-many", too_many.into_bytes()),
        ("too-large", too_large.into_bytes()),
        ("both", br#"{"name": "Ada", "names": ["Bob"]}"#.to_vec()),
        ("not-strings", br#"{"names": "Ada"}"#.to_vec()),
    ];
    for (id, body) in &bodies {
        raw.publish(body, answerable(id)).await;
        let reply = raw.next_reply().await;
        assert_eq!(testkit::correlation_id(&reply).as_deref(), Some(*id));
        let reply: Value = serde_json::from_slice(&reply.data).expect("JSON reply");
        assert_eq!(reply["error"]["code"], INVALID_REQUEST, "{id}: {reply}");
        assert!(reply.get("results").is_none(), "{id}: {reply}");
        let letter = dead.next().await;
        assert_eq!(
            &letter.data, body,
            "{id}: the request itself is dead-lettered"
        );
    }
    assert!(hello.printed().is_empty(), "{:?}", hello.printed());

    // The consumer goes on serving.
    raw.publish(br#"{"name": "Ada"}"#, answerable("ok")).await;
    let reply: Value = serde_json::from_slice(&raw.next_reply().await.data).expect("JSON reply");
    assert_eq!(reply["greeting"], "hello Ada");
    hello.stop().await;
}

#[tokio::test]
async fn a_batch_over_the_limits_is_refused_before_anything_is_sent() {
    let app = TestApp::new().await;
    // A bound queue nobody consumes: whatever is published stays there.
    app.consumer("hello").await.stop().await;
    let raw = app.raw().await;
    let queue = format!("{}.hello", app.prefix);
    let client = app.client().await;
    let expect = words(&["hello"]);
    let timeout = Duration::from_secs(1);

    let too_many = names("n", MAX_BATCH_NAMES + 1);
    let result = client
        .call_batch::<_, String>(&too_many, &expect, timeout)
        .await;
    assert!(
        matches!(result, Err(RpcError::InvalidBatch(BatchError::Size { count, .. })) if count == MAX_BATCH_NAMES + 1),
        "{result:?}"
    );
    let result = client
        .call_batch::<Name, String>(&[], &expect, timeout)
        .await;
    assert!(
        matches!(
            result,
            Err(RpcError::InvalidBatch(BatchError::Size { count: 0, .. }))
        ),
        "{result:?}"
    );
    // 1000 names of 100 three-byte characters: about 300 KB of JSON.
    let wide = Name::parse(&"€".repeat(100)).expect("valid");
    let too_large = vec![wide; MAX_BATCH_NAMES];
    let result = client
        .call_batch::<_, String>(&too_large, &expect, timeout)
        .await;
    let error = result.expect_err("refused");
    // The client's limit is the broker's (amqp.max_message_size), within
    // the contract's.
    let limit = rabbit_gather::protocol::max_batch_bytes(
        &rabbit_gather::protocol::Contract::GREETINGS,
        app.settings.amqp.max_message_size,
    );
    assert!(limit <= MAX_BATCH_BYTES);
    assert!(
        matches!(error, RpcError::InvalidBatch(BatchError::TooLarge { bytes, limit: l }) if bytes > MAX_BATCH_BYTES && l == limit),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&limit.to_string()),
        "the error names the limit: {message}"
    );
    let reconnecting = ReconnectingClient::connect_with(
        &app.settings,
        rabbit_gather::protocol::Contract::GREETINGS,
    )
    .await
    .expect("connects");
    let result = reconnecting
        .call_batch::<_, String>(&too_many, &expect, timeout, 3)
        .await;
    assert!(
        matches!(result, Err(RpcError::InvalidBatch(_))),
        "{result:?}"
    );

    // The broker routes a channel's publishes in order: once a later valid
    // request is in the queue, anything published before it would be too.
    let ada = Name::parse("Ada").expect("valid");
    let call = client.call::<_, String>(&ada, &expect, Duration::from_secs(30));
    let in_queue = async {
        loop {
            let counts = raw.queue_counts(&queue).await;
            if counts.0 > 0 {
                break counts;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let counts = tokio::time::timeout(EVENT_TIMEOUT, async {
        tokio::select! {
            result = call => panic!("nobody consumes, yet the call ended: {result:?}"),
            counts = in_queue => counts,
        }
    })
    .await
    .expect("the valid request reaches the queue");
    assert_eq!(counts, (1, 0), "only the valid request reached the queue");
    client.close().await;
    reconnecting.close().await;

    // The producer refuses a batch size it cannot send, before connecting.
    for bad in ["0", "1001", "many"] {
        let run = run_producer(&app, &["--batch", bad, "Ada"], None).await;
        assert_eq!(run.code, 2, "--batch {bad}: {run:?}");
        assert!(
            run.stderr.contains("batch"),
            "--batch {bad}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{run:?}");
    }
    assert_eq!(raw.queue_counts(&queue).await, (1, 0));
    // The limits are exactly the documented ones.
    let items: Vec<_> = names("n", MAX_BATCH_NAMES)
        .iter()
        .map(|name| protocol::Json::encode(name).expect("encodes"))
        .collect();
    assert!(
        protocol::check_batch_within(
            &protocol::Contract::GREETINGS,
            &items,
            protocol::MAX_BATCH_BYTES
        )
        .is_ok()
    );
}

/// A handler refusing `Bad` for good, failing `Flaky` on its first attempt,
/// and counting its calls per name.
fn picky(calls: &Arc<Mutex<Vec<String>>>, flaky_attempts: u32) -> TestHandler {
    let calls = Arc::clone(calls);
    Box::new(move |name, cx| {
        calls.lock().expect("lock").push(name.as_str().to_owned());
        async move {
            match name.as_str() {
                "Bad" => Err(HandlerError::permanent("no such person")),
                "Flaky" if cx.attempt <= flaky_attempts => {
                    Err(HandlerError::transient("directory briefly down"))
                }
                _ => Ok(format!("{} {name}", cx.word)),
            }
        }
        .boxed()
    })
}

fn parsed(names: &[&str]) -> Vec<Name> {
    names
        .iter()
        .map(|n| Name::parse(n).expect("valid"))
        .collect()
}

async fn call_hello(
    client: &rabbit_gather::rpc::RpcClient,
    batch: &[Name],
) -> Vec<Gathered<String>> {
    client
        .call_batch::<_, String>(batch, &words(&["hello"]), Duration::from_secs(10))
        .await
        .expect("batch call")
}

/// The calls a [`picky`] handler saw, in order.
type Calls = Arc<Mutex<Vec<String>>>;

/// A test with a `hello` consumer answering with [`picky`] (a flaky name
/// failing `flaky_attempts` times, with `max_failures` attempts and fast
/// retries), and a client.
async fn picky_hello(
    max_failures: u32,
    flaky_attempts: u32,
) -> (TestApp, Calls, RunningConsumer, RpcClient) {
    let app = TestApp::new().await;
    let calls = Arc::default();
    let hello = app
        .consumer_with(
            "hello",
            &fast_retries(&app, max_failures),
            Some(picky(&calls, flaky_attempts)),
        )
        .await;
    let client = app.client().await;
    (app, calls, hello, client)
}

/// What a picky test ends with: the names handled, in order, and the lines
/// printed, then the client and the consumer stopped.
async fn assert_handled_and_stop(
    (calls, hello, client): (Calls, RunningConsumer, RpcClient),
    handled: &[&str],
    why: &str,
    printed: &[&str],
) {
    assert_eq!(*calls.lock().expect("lock"), handled, "{why}");
    assert_eq!(hello.printed(), printed);
    client.close().await;
    hello.stop().await;
}

/// The reason of the next dead letter, which must contain `part`.
async fn assert_next_reason(dead: &mut testkit::DeadLetters, part: &str) {
    let why = reason(&dead.next().await).expect("reason header");
    assert!(why.contains(part), "{why}");
}

fn fast_retries(app: &TestApp, max_failures: u32) -> rabbit_gather::Settings {
    let mut settings = app.settings.clone();
    settings.consumer.retry_delay = Duration::from_millis(200);
    settings.consumer.max_failures = max_failures;
    settings
}

#[tokio::test]
async fn a_name_refused_for_good_fails_only_itself_and_the_batch_is_dead_lettered_after_the_reply()
{
    let (app, calls, hello, client) = picky_hello(3, 0).await;
    let raw = app.raw().await;
    let mut dead = raw.dead_letters().await;
    let batch = parsed(&["Ada", "Bad", "Bob"]);

    let results = call_hello(&client, &batch).await;

    assert_eq!(greeting_of(&results[0], "hello"), Some("hello Ada"));
    assert_eq!(error_code_of(&results[1], "hello"), Some(REQUEST_FAILED));
    assert_eq!(greeting_of(&results[2], "hello"), Some("hello Bob"));
    assert_next_reason(&mut dead, "no such person").await;
    assert_handled_and_stop(
        (calls, hello, client),
        &["Ada", "Bad", "Bob"],
        "one attempt",
        &["hello Ada", "hello Bob"],
    )
    .await;
}

#[tokio::test]
async fn a_transient_failure_retries_only_the_failed_name_and_prints_each_name_once() {
    let (_app, calls, hello, client) = picky_hello(3, 1).await;
    let batch = parsed(&["Ada", "Flaky", "Bob"]);

    let results = call_hello(&client, &batch).await;

    for (name, gathered) in batch.iter().zip(&results) {
        assert_eq!(
            greeting_of(gathered, "hello"),
            Some(format!("hello {name}").as_str()),
            "{gathered:?}"
        );
    }
    // The reply's confirm may come after the client has the reply.
    wait_until("the consumer counts its reply", || {
        let replies = hello.counters.snapshot().replies;
        async move { replies >= 1 }
    })
    .await;
    let stats = hello.counters.snapshot();
    assert_eq!(stats.retries_scheduled, 1, "{stats:?}");
    assert_eq!(stats.replies, 1, "one reply for the batch: {stats:?}");
    // Printed once each, on the attempt that answered.
    assert_handled_and_stop(
        (calls, hello, client),
        &["Ada", "Flaky", "Bob", "Flaky"],
        "only the name that failed was handled again: the others' results came in the retry copy",
        &["hello Ada", "hello Flaky", "hello Bob"],
    )
    .await;
}

#[tokio::test]
async fn a_name_failing_at_every_attempt_gets_internal_error_and_the_others_their_greetings() {
    let (app, calls, hello, client) = picky_hello(2, u32::MAX).await;
    let raw = app.raw().await;
    let mut dead = raw.dead_letters().await;
    let batch = parsed(&["Ada", "Flaky"]);

    let results = call_hello(&client, &batch).await;

    assert_eq!(greeting_of(&results[0], "hello"), Some("hello Ada"));
    assert_eq!(error_code_of(&results[1], "hello"), Some(INTERNAL_ERROR));
    assert_next_reason(&mut dead, "directory briefly down").await;
    assert_handled_and_stop(
        (calls, hello, client),
        &["Ada", "Flaky", "Flaky"],
        "Ada once, Flaky at each of two attempts",
        &["hello Ada"],
    )
    .await;
}

#[tokio::test]
async fn a_lost_connection_resends_batches_whole_without_losing_or_doubling_a_name() {
    let app = TestApp::new().await;
    let mut hello = app.gated_consumer_bin("hello").await;
    let goodbye = app.consumer_bin("goodbye", &[]).await;
    let (input, stdin) = input_lines(40);

    let producer = tokio::spawn(run_producer_with_stats(
        app.env(),
        [
            "--batch",
            "10",
            "--concurrency",
            "4",
            "--retries",
            "2",
            "--timeout",
            "60s",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect(),
        Some(stdin),
    ));
    // A request is in hand at the gated hello consumer, so the calls are in
    // flight: cut the producer's connection under them.
    hello.wait_for_stderr("gate: holding").await;
    kill_connection(&format!("greetings-producer {}", app.prefix)).await;
    hello.open_gate().await;

    let run = producer.await.expect("producer task");
    let handled: Vec<String> = [&hello, &goodbye]
        .iter()
        .flat_map(|c| c.stdout_lines())
        .collect();
    let ledger = Ledger::from_output(&input, &["hello", "goodbye"], &run.stdout)
        .with_duplicate_replies(run.duplicate_replies());
    ledger.print("producer connection cut with batches in flight");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        (ledger.lost, ledger.printed_twice, ledger.unexpected),
        (0, 0, 0),
        "{run:?}"
    );
    assert_eq!(
        run.stdout,
        greeted(&input),
        "every name once, in input order"
    );
    assert!(
        run.stderr.contains("retries=") && !run.stderr.contains("retries=0"),
        "the cut calls were resent: {}",
        run.stderr
    );
    // Each consumer saw every name at least once (resent batches may be
    // handled twice; the producer printed each result once).
    for word in ["hello", "goodbye"] {
        for name in &input {
            let line = format!("{word} {name}");
            assert!(handled.contains(&line), "{line} was never handled");
        }
    }
}
