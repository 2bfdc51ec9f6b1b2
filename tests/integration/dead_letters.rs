//! The `dead-letters` tool, black-box against the real broker: it lists why
//! each letter died without removing any, replays letters as fresh attempts
//! that get answered, keeps what it could not replay, and purges only when
//! told `--yes`. (The binary is built with the producer package:
//! `cargo build -p greetings-producer --bins`, or `cargo test --workspace`.)

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use lapin::{
    options::{BasicGetOptions, QueueDeleteOptions},
    types::{AMQPValue, FieldTable},
};
use rabbit_gather::{
    Settings,
    protocol::{Outcome, names::RETRY_DUE_KEY},
    service::HandlerError,
};
use tokio::process::Command;

use testkit::{
    EVENT_TIMEOUT, Raw, RunningConsumer, TestApp, answerable, bin, declare_durable, greeting_reply,
    test_handler, wait_until,
};

/// One run of the `dead-letters` binary.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `dead-letters ARGS` on this test's broker and prefix, with the log
/// filter a user has (none set).
async fn dead_letters(app: &TestApp, args: &[&str]) -> Run {
    let mut command = Command::new(bin("dead-letters"));
    command
        .args(args)
        .envs(app.env())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(EVENT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("dead-letters {args:?} did not finish in time"))
        .expect("run dead-letters");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn dead_queue(app: &TestApp) -> String {
    format!("{}.dead", app.prefix)
}

/// Letters ready in the test's dead-letter queue.
async fn letters(app: &TestApp, raw: &Raw) -> u32 {
    raw.queue_counts(&dead_queue(app)).await.0
}

async fn wait_for_letters(app: &TestApp, raw: &Raw, n: u32) {
    wait_until(
        &format!("{n} letters are in {}", dead_queue(app)),
        || async { letters(app, raw).await == n },
    )
    .await;
}

/// A `hello` consumer and raw access, with one letter (an invalid request,
/// correlation id `id`) in the test's dead-letter queue.
async fn one_letter(app: &TestApp, id: &str) -> (RunningConsumer, Raw) {
    let hello = app.consumer("hello").await;
    let raw = app.raw().await;
    raw.publish(br#"{"nam":1}"#, answerable(id)).await;
    wait_for_letters(app, &raw, 1).await;
    (hello, raw)
}

/// Retires the word `hello`: its queues are deleted, so nothing is bound to
/// its exchange any more.
async fn retire_hello(app: &TestApp, raw: &Raw) {
    for queue in [
        format!("{}.hello", app.prefix),
        format!("{}.hello.retry", app.prefix),
        format!("{}.hello.due", app.prefix),
    ] {
        raw.channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete the word's queue");
    }
}

async fn bind(raw: &Raw, queue: &str, exchange: &str) {
    bind_key(raw, queue, exchange, "").await;
}

async fn bind_key(raw: &Raw, queue: &str, exchange: &str, key: &str) {
    testkit::bind(&raw.channel, queue, exchange, key).await;
}

/// Queue `queue` gets what a replay sends to `word` (its due route).
async fn bind_to_replays_of(raw: &Raw, app: &TestApp, word: &str, queue: &str) {
    let exchange = format!("{}.{word}.retry", app.prefix);
    bind_key(raw, queue, &exchange, RETRY_DUE_KEY).await;
}

/// The next `n` replies, each a greeting for correlation id `id`, sorted.
async fn next_greetings(raw: &mut Raw, id: &str, n: usize) -> Vec<String> {
    let mut greeted = Vec::with_capacity(n);
    while greeted.len() < n {
        let reply = raw.next_reply().await;
        assert_eq!(testkit::correlation_id(&reply).as_deref(), Some(id));
        let reply = greeting_reply(&reply.data).expect("reply");
        let Outcome::<String>::Ok(greeting) = reply.outcome else {
            panic!("the replay is answered: {reply:?}");
        };
        greeted.push(greeting);
    }
    greeted.sort();
    greeted
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// The line of `stdout` about correlation id `id`.
fn line_of<'a>(stdout: &'a str, id: &str) -> &'a str {
    let field = format!("id={id} ");
    stdout
        .lines()
        .find(|l| l.starts_with(&field) || l.contains(&format!(" {field}")))
        .unwrap_or_else(|| panic!("no line for {id} in:\n{stdout}"))
}

fn ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("id=")?.split(' ').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn list_says_why_each_letter_died_and_removes_none() {
    let app = TestApp::new().await;
    let mut settings: Settings = app.settings.clone();
    settings.consumer.retry_delay = Duration::from_millis(100);
    settings.consumer.max_failures = 2;
    let handler = test_handler(|name, cx| match name.as_str() {
        "Poison" => Err(HandlerError::transient("database down")),
        _ => Ok(format!("{} {name}", cx.word)),
    });
    let hello = app.consumer_with("hello", &settings, Some(handler)).await;
    let raw = app.raw().await;

    raw.publish(br#"{"nam":1}"#, answerable("invalid")).await;
    // Past its 30 s deadline by far more than the tolerated clock skew.
    let stale = answerable("expired")
        .with_timestamp(unix_now() - 300)
        .with_expiration("30000".into());
    raw.publish(br#"{"name":"Stale"}"#, stale).await;
    raw.publish(b"\xff\xfe\x1b[2Jbin", answerable("binary"))
        .await;
    let poison = answerable("poison").with_timestamp(unix_now());
    raw.publish(br#"{"name":"Poison"}"#, poison).await;
    wait_for_letters(&app, &raw, 4).await;

    let run = dead_letters(&app, &["list"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let hello_queue = format!("{}.hello", app.prefix);
    let invalid = line_of(&run.stdout, "invalid");
    for part in [
        format!(" queue={hello_queue} "),
        " deaths=1 ".to_owned(),
        "(x-death) ".to_owned(),
        r#" reason="rejected" "#.to_owned(),
    ] {
        assert!(invalid.contains(&part), "{part:?} in {invalid}");
    }
    assert!(invalid.ends_with(r#" body={"nam":1}"#), "{invalid}");
    let expired = line_of(&run.stdout, "expired");
    assert!(expired.contains(r#" reason="rejected" "#), "{expired}");
    assert!(expired.ends_with(r#" body={"name":"Stale"}"#), "{expired}");
    let poison = line_of(&run.stdout, "poison");
    for part in [
        format!(" queue={hello_queue} "),
        "(timestamp) ".to_owned(),
        r#" reason="handler failed 2 times: database down" "#.to_owned(),
    ] {
        assert!(poison.contains(&part), "{part:?} in {poison}");
    }
    let binary = line_of(&run.stdout, "binary");
    assert!(
        binary.ends_with("body=\u{fffd}\u{fffd}\\u{1b}[2Jbin (not UTF-8, 9 bytes)"),
        "{binary}"
    );
    assert!(
        !run.stdout.chars().any(|c| c.is_control() && c != '\n'),
        "no raw control characters reach the terminal: {:?}",
        run.stdout
    );
    assert_eq!(
        run.stderr,
        format!(
            "dead-letters: listed 4 of 4 letters in {}\n",
            dead_queue(&app)
        )
    );
    assert_eq!(letters(&app, &raw).await, 4, "listing removed nothing");

    let again = dead_letters(&app, &["list", "--json"]).await;
    assert_eq!(again.code, 0, "{again:?}");
    let objects: Vec<serde_json::Value> = again
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let json_ids: Vec<String> = objects
        .iter()
        .map(|o| o["correlation_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        json_ids,
        ids(&run.stdout),
        "the same letters, in the same order"
    );
    let poison = objects
        .iter()
        .find(|o| o["correlation_id"] == "poison")
        .expect("poison");
    assert_eq!(poison["reason_from"], "x-greetings-reason");
    assert_eq!(poison["queue"], hello_queue.as_str());
    assert_eq!(poison["failures"], 1);
    assert_eq!(poison["age_from"], "timestamp");
    let invalid = objects
        .iter()
        .find(|o| o["correlation_id"] == "invalid")
        .expect("invalid");
    assert_eq!(invalid["reason_from"], "x-death");
    assert_eq!(invalid["body"], r#"{"nam":1}"#);
    assert!(
        objects.iter().all(|o| o["redelivered"] == true),
        "listed before, so marked redelivered: {objects:?}"
    );

    let limited = dead_letters(&app, &["list", "--limit", "2"]).await;
    assert_eq!(limited.code, 0, "{limited:?}");
    assert_eq!(ids(&limited.stdout), json_ids[..2]);
    assert!(
        limited.stderr.contains("listed 2 of 4 letters"),
        "{limited:?}"
    );
    assert!(limited.stderr.contains("(--limit 2)"), "{limited:?}");
    assert_eq!(letters(&app, &raw).await, 4, "listing removed nothing");
    hello.stop().await;
}

#[tokio::test]
async fn a_replayed_letter_goes_back_to_the_word_that_dead_lettered_it_and_leaves_the_queue() {
    let app = TestApp::new().await;
    // The address book both words need is offline, then comes back.
    let online = Arc::new(AtomicBool::new(false));
    let handler = |online: &Arc<AtomicBool>| {
        let online = Arc::clone(online);
        test_handler(move |name, cx| {
            if online.load(Ordering::SeqCst) {
                Ok(format!("{} {name}", cx.word))
            } else {
                Err(HandlerError::permanent("address book offline"))
            }
        })
    };
    let hello = app
        .consumer_with("hello", &app.settings, Some(handler(&online)))
        .await;
    let goodbye = app
        .consumer_with("goodbye", &app.settings, Some(handler(&online)))
        .await;
    let mut raw = app.raw().await;
    let grace = answerable("grace")
        .with_message_id("grace".into())
        .with_timestamp(unix_now())
        .with_expiration("10000".into());
    raw.publish(br#"{"name":"Grace"}"#, grace).await;
    raw.publish(br#"{"nam":1}"#, answerable("invalid")).await;
    // Both words dead-letter both requests: four letters, two per request.
    wait_for_letters(&app, &raw, 4).await;
    for _ in 0..4 {
        let reply = greeting_reply(&raw.next_reply().await.data).expect("reply");
        assert!(matches!(reply.outcome, Outcome::Error { .. }), "{reply:?}");
    }
    // Queues of the test's own see what a replay publishes: one on the
    // request exchange (nothing), one on hello's route to its queue.
    let spy = format!("{}.spy", app.prefix);
    let hello_spy = format!("{}.spy-hello", app.prefix);
    for queue in [&spy, &hello_spy] {
        app.own_queue(queue);
        declare_durable(&raw.channel, queue, FieldTable::default()).await;
    }
    bind(&raw, &spy, &app.prefix).await;
    bind_to_replays_of(&raw, &app, "hello", &hello_spy).await;
    online.store(true, Ordering::SeqCst);
    let before = unix_now();

    let run = dead_letters(&app, &["replay", "--id", "grace"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert_eq!(
        lines.pop(),
        Some("replayed 2, kept 0 (no queue bound 0, nacked 0), not found 0")
    );
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            format!("replayed id=grace queue={}.goodbye", app.prefix),
            format!("replayed id=grace queue={}.hello", app.prefix)
        ],
        "each letter goes back to its own word, once"
    );
    assert_eq!(run.stderr, "");
    let greeted = next_greetings(&mut raw, "grace", 2).await;
    assert_eq!(greeted, ["goodbye Grace", "hello Grace"]);
    assert_eq!(
        letters(&app, &raw).await,
        2,
        "both letters of the replayed request are gone, the other two kept"
    );
    let listed = dead_letters(&app, &["list"]).await;
    assert_eq!(ids(&listed.stdout), ["invalid", "invalid"], "{listed:?}");

    assert_eq!(
        raw.queue_counts(&spy).await.0,
        0,
        "nothing went to every word"
    );
    assert_eq!(
        raw.queue_counts(&hello_spy).await.0,
        1,
        "one replay to hello"
    );
    let replayed = raw
        .channel
        .basic_get(hello_spy.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("the replay");
    let properties = &replayed.delivery.properties;
    assert_eq!(replayed.delivery.data, br#"{"name":"Grace"}"#);
    assert_eq!(
        properties.message_id().as_ref().map(|m| m.as_str()),
        Some("grace")
    );
    assert_eq!(
        properties.expiration(),
        &None,
        "a fresh attempt: no old deadline"
    );
    assert!(
        properties.timestamp().is_some_and(|t| t >= before),
        "{properties:?}"
    );
    let headers = properties.headers().clone().unwrap_or_default();
    for stripped in ["x-death", "x-greetings-reason", "x-greetings-queue"] {
        assert!(!headers.contains_key(stripped), "{stripped}: {headers:?}");
    }
    testkit::stop_all([hello, goodbye]).await;
}

#[tokio::test]
async fn a_letter_of_an_older_queue_is_replayed_to_every_word_once_per_request() {
    let app = TestApp::new().await;
    let (hello, goodbye) = app.greeters().await;
    let mut raw = app.raw().await;
    // Queues declared before the dead-letter route moved to each word's
    // exchange dead-letter through <prefix>.dlx: two letters of one request
    // arrive that way.
    for word in ["hello", "goodbye"] {
        let mut headers = FieldTable::default();
        headers.insert(
            "x-greetings-queue".into(),
            AMQPValue::LongString(format!("{}.{word}", app.prefix).into()),
        );
        raw.channel
            .basic_publish(
                format!("{}.dlx", app.prefix).as_str().into(),
                "".into(),
                Default::default(),
                br#"{"name":"Old"}"#,
                answerable("old").with_headers(headers),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }
    wait_for_letters(&app, &raw, 2).await;

    let run = dead_letters(&app, &["replay", "--all"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(
        lines[0].starts_with("replayed id=old queue="),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with("replayed id=old queue=") && lines[1].ends_with("sent once)"),
        "the second letter of the same request is not sent again: {}",
        run.stdout
    );
    let greeted = next_greetings(&mut raw, "old", 2).await;
    assert_eq!(greeted, ["goodbye Old", "hello Old"]);
    assert_eq!(letters(&app, &raw).await, 0);
    testkit::stop_all([hello, goodbye]).await;
}

#[tokio::test]
async fn a_replay_with_no_consumer_queue_bound_keeps_the_letter_and_exits_5() {
    let app = TestApp::new().await;
    let (hello, raw) = one_letter(&app, "invalid").await;
    hello.stop().await;
    // The word is retired: nothing is bound to its exchange any more.
    retire_hello(&app, &raw).await;

    let run = dead_letters(&app, &["replay", "--all"]).await;

    assert_eq!(run.code, 5, "{run:?}");
    let kept = line_of(&run.stdout, "invalid");
    assert!(kept.starts_with("kept id=invalid "), "{kept}");
    assert!(
        kept.ends_with(
            "no queue of word hello is bound (no consumer of it has run since it was deleted)"
        ),
        "{kept}"
    );
    assert!(
        run.stdout
            .ends_with("replayed 0, kept 1 (no queue bound 1, nacked 0), not found 0\n"),
        "{}",
        run.stdout
    );
    assert_eq!(letters(&app, &raw).await, 1, "the letter is kept");
}

#[tokio::test]
async fn a_nacked_replay_keeps_the_letter_and_exits_3() {
    let app = TestApp::new().await;
    let (hello, raw) = one_letter(&app, "invalid").await;
    hello.stop().await;
    // The only queue bound is full and refuses publishes: the broker nacks.
    retire_hello(&app, &raw).await;
    let full = format!("{}.full", app.prefix);
    app.own_queue(&full);
    let mut refusing = FieldTable::default();
    refusing.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    refusing.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    declare_durable(&raw.channel, &full, refusing).await;
    bind_to_replays_of(&raw, &app, "hello", &full).await;

    let run = dead_letters(&app, &["replay", "--all"]).await;

    assert_eq!(run.code, 3, "{run:?}");
    let kept = line_of(&run.stdout, "invalid");
    assert!(kept.starts_with("kept id=invalid "), "{kept}");
    assert!(kept.ends_with(": the broker nacked the replay"), "{kept}");
    assert!(
        run.stdout
            .ends_with("replayed 0, kept 1 (no queue bound 0, nacked 1), not found 0\n"),
        "{}",
        run.stdout
    );
    assert_eq!(letters(&app, &raw).await, 1, "the letter is kept");
}

#[tokio::test]
async fn purge_refuses_without_yes_and_empties_the_queue_with_it() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let raw = app.raw().await;
    raw.publish(br#"{"nam":1}"#, answerable("one")).await;
    raw.publish(br#"{"nam":2}"#, answerable("two")).await;
    wait_for_letters(&app, &raw, 2).await;

    let refused = dead_letters(&app, &["purge"]).await;

    assert_eq!(refused.code, 2, "{refused:?}");
    assert_eq!(
        refused.stderr,
        format!(
            "dead-letters: purge deletes every letter in {} for good; \
             run `dead-letters purge --yes` to do it\n",
            dead_queue(&app)
        )
    );
    assert_eq!(letters(&app, &raw).await, 2, "nothing purged");

    let purged = dead_letters(&app, &["purge", "--yes"]).await;

    assert_eq!(purged.code, 0, "{purged:?}");
    assert_eq!(
        purged.stdout,
        format!("purged 2 letters from {}\n", dead_queue(&app))
    );
    assert_eq!(letters(&app, &raw).await, 0);
    hello.stop().await;
}

#[tokio::test]
async fn an_unknown_id_is_named_and_exits_3_keeping_every_letter() {
    let app = TestApp::new().await;
    let (hello, raw) = one_letter(&app, "invalid").await;

    let run = dead_letters(&app, &["replay", "--id", "nope"]).await;

    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "dead-letters: no letter with correlation id \"nope\" in {}\n",
            dead_queue(&app)
        )
    );
    assert_eq!(
        run.stdout,
        "replayed 0, kept 0 (no queue bound 0, nacked 0), not found 1\n"
    );
    assert_eq!(letters(&app, &raw).await, 1, "nothing removed");
    hello.stop().await;
}

#[tokio::test]
async fn wrong_input_gets_one_line_and_its_exit_code() {
    let app = TestApp::new().await;

    let bad_url = dead_letters(&app, &["list", "--amqp-url", "http://guest:s3cr3t@host"]).await;
    assert_eq!(bad_url.code, 2, "{bad_url:?}");
    assert!(
        bad_url
            .stderr
            .starts_with("dead-letters: invalid AMQP URL: "),
        "{bad_url:?}"
    );
    assert!(!bad_url.stderr.contains("s3cr3t"), "{bad_url:?}");

    // Port 1 is closed.
    let unreachable = dead_letters(
        &app,
        &["list", "--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2f"],
    )
    .await;
    assert_eq!(unreachable.code, 4, "{unreachable:?}");
    assert!(
        unreachable
            .stderr
            .starts_with("dead-letters: cannot connect to "),
        "{unreachable:?}"
    );

    // No consumer ever ran with this test's prefix: no dead-letter queue.
    let missing = dead_letters(&app, &["list"]).await;
    assert_eq!(missing.code, 5, "{missing:?}");
    assert_eq!(
        missing.stderr,
        format!(
            "dead-letters: {} does not exist: no consumer has run with prefix \"{}\" on this \
             broker and vhost (check --prefix and the URL)\n",
            dead_queue(&app),
            app.prefix
        )
    );

    let unknown_flag = dead_letters(&app, &["list", "--nope"]).await;
    assert_eq!(unknown_flag.code, 2, "{unknown_flag:?}");
}
