//! Handler failures and nacked publishes: delayed retries counted in the
//! message (every replica sees the same count), permanent failures, and the
//! rule that a nack never leads to an ack.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{FutureExt, StreamExt, stream};
use lapin::{
    message::Delivery,
    options::QueueDeclareOptions,
    types::{AMQPValue, FieldTable},
};
use rabbit_gather::{
    Settings,
    protocol::{
        Name, Outcome,
        names::{DEAD_KEY, REQUEST_FAILED},
    },
    service::HandlerError,
};

use testkit::{
    EVENT_TIMEOUT, TestApp, TestHandler, answerable, consume_no_ack, declare_durable,
    greeting_reply, reason, test_handler, wait_until,
};

/// The reason header of a dead letter, failing the test without one.
fn reason_of(letter: &Delivery) -> String {
    reason(letter).unwrap_or_else(|| panic!("no reason header: {:?}", letter.properties))
}

fn fast_retries(app: &TestApp, max_failures: u32) -> Settings {
    let mut settings = app.settings.clone();
    settings.consumer.retry_delay = Duration::from_millis(300);
    settings.consumer.max_failures = max_failures;
    settings
}

/// A full queue that nacks every publish (`x-overflow: reject-publish`).
fn nacking() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    arguments
}

/// Unbinds the test's dead-letter queue from `hello`'s exchange: the
/// service's dead-letter copies become unroutable.
async fn unbind_dead_letters(app: &TestApp, raw: &testkit::Raw) {
    raw.channel
        .queue_unbind(
            format!("{}.dead", app.prefix).as_str().into(),
            format!("{}.hello.retry", app.prefix).as_str().into(),
            DEAD_KEY.into(),
            FieldTable::default(),
        )
        .await
        .expect("unbind the dead-letter queue");
}

/// Binds a new queue `<prefix>.<suffix>` to `hello`'s dead letters and
/// returns the first message that reaches it, failing the test after
/// [`EVENT_TIMEOUT`].
async fn first_dead_letter_on_new_queue(
    app: &TestApp,
    raw: &testkit::Raw,
    suffix: &str,
) -> Delivery {
    let queue = format!("{}.{suffix}", app.prefix);
    app.own_queue(&queue);
    declare_durable(&raw.channel, &queue, FieldTable::default()).await;
    let hello_retry = format!("{}.hello.retry", app.prefix);
    testkit::bind(&raw.channel, &queue, &hello_retry, DEAD_KEY).await;
    let channel = raw.connection.create_channel().await.expect("channel");
    let mut letters = consume_no_ack(&channel, &queue).await;
    tokio::time::timeout(EVENT_TIMEOUT, letters.next())
        .await
        .expect("a dead letter arrives in time")
        .expect("dead-letter stream open")
        .expect("dead-letter delivery")
}

/// Defect: a failing request was requeued at once, so a short outage of what
/// the handler needs dead-lettered traffic within milliseconds.
#[tokio::test]
async fn a_failing_request_is_retried_after_a_growing_delay_while_others_are_answered() {
    let app = TestApp::new().await;
    let attempts: Arc<Mutex<Vec<(u32, Instant)>>> = Arc::default();
    let seen = Arc::clone(&attempts);
    let handler: TestHandler = Box::new(move |name, cx| {
        let seen = Arc::clone(&seen);
        async move {
            if name.as_str() == "flaky" {
                seen.lock()
                    .expect("lock")
                    .push((cx.attempt, Instant::now()));
                if cx.attempt < 3 {
                    return Err(HandlerError::transient("database briefly down"));
                }
            }
            Ok(format!("{} {name}", cx.word))
        }
        .boxed()
    });
    let hello = app
        .consumer_with("hello", &fast_retries(&app, 5), Some(handler))
        .await;
    let client = app.client().await;
    let expect = ["hello".to_owned()];

    let mut names = vec!["flaky".to_owned()];
    names.extend((0..20).map(|i| format!("n{i}")));
    let finished: Vec<(String, Instant)> = stream::iter(&names)
        .map(|n| {
            let (client, expect) = (&client, &expect);
            async move {
                let name = Name::parse(n).expect("valid");
                let gathered = client
                    .call::<_, String>(&name, expect, Duration::from_secs(20))
                    .await
                    .expect("call");
                assert!(gathered.is_complete(), "{n}: {gathered:?}");
                (n.clone(), Instant::now())
            }
        })
        .buffer_unordered(21)
        .collect()
        .await;

    let seen = attempts.lock().expect("lock").clone();
    let numbers: Vec<u32> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [1, 2, 3], "attempts as the handler saw them");
    let first_gap = seen[1].1 - seen[0].1;
    let second_gap = seen[2].1 - seen[1].1;
    println!("figures [delayed retry]: gaps {first_gap:?} then {second_gap:?} (300 ms doubling)");
    assert!(first_gap >= Duration::from_millis(300), "{first_gap:?}");
    assert!(second_gap >= Duration::from_millis(600), "{second_gap:?}");
    let flaky_done = finished
        .iter()
        .find(|(n, _)| n == "flaky")
        .expect("flaky")
        .1;
    let others_before = finished
        .iter()
        .filter(|(n, at)| n != "flaky" && *at < flaky_done)
        .count();
    assert_eq!(
        others_before, 20,
        "the retry delays held up no other request"
    );
    let stats = hello.counters.snapshot();
    assert_eq!(stats.retries_scheduled, 2);
    assert_eq!(hello.printed().len(), 21);
    hello.stop().await;
}

/// Defect: failure counts lived in each process, so N replicas allowed N
/// times the attempts.
#[tokio::test]
async fn replicas_share_one_attempt_count_carried_in_the_message() {
    let app = TestApp::new().await;
    let calls: Arc<Mutex<u32>> = Arc::default();
    let always_failing = |calls: &Arc<Mutex<u32>>| {
        let calls = Arc::clone(calls);
        test_handler(move |_, _| {
            *calls.lock().expect("lock") += 1;
            Err(HandlerError::transient("always down"))
        })
    };
    let settings = fast_retries(&app, 3);
    let first = app
        .consumer_with("hello", &settings, Some(always_failing(&calls)))
        .await;
    let second = app
        .consumer_with("hello", &settings, Some(always_failing(&calls)))
        .await;
    let mut raw = app.raw().await;
    let mut dead = raw.dead_letters().await;

    raw.publish(br#"{"name":"Ada"}"#, answerable("shared"))
        .await;
    let reply = greeting_reply(&raw.next_reply().await.data).expect("reply");
    assert!(
        matches!(&reply.outcome, Outcome::Error { code, .. } if code == "internal_error"),
        "{reply:?}"
    );
    let letter = dead.next().await;
    assert!(
        reason_of(&letter).contains("handler failed 3 times"),
        "{}",
        reason_of(&letter)
    );
    assert_eq!(
        *calls.lock().expect("lock"),
        3,
        "3 attempts in all, across both replicas"
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_at_once_with_a_request_failed_reply() {
    let app = TestApp::new().await;
    let calls: Arc<Mutex<u32>> = Arc::default();
    let counted = Arc::clone(&calls);
    let handler = test_handler(move |name, _| {
        *counted.lock().expect("lock") += 1;
        Err(HandlerError::permanent(format!("no such person: {name}")))
    });
    let hello = app
        .consumer_with("hello", &fast_retries(&app, 5), Some(handler))
        .await;
    let mut raw = app.raw().await;
    let mut dead = raw.dead_letters().await;

    raw.publish(br#"{"name":"Nobody"}"#, answerable("perm"))
        .await;
    let reply = greeting_reply(&raw.next_reply().await.data).expect("reply");
    assert_eq!(
        reply.outcome,
        Outcome::Error {
            code: REQUEST_FAILED.into(),
            message: "no such person: Nobody".into()
        }
    );
    let letter = dead.next().await;
    assert!(
        reason_of(&letter).contains("no such person: Nobody"),
        "{}",
        reason_of(&letter)
    );
    assert_eq!(*calls.lock().expect("lock"), 1, "never retried");
    hello.stop().await;
}

/// Defect: a nacked reply was logged and the request acked: gone.
#[tokio::test]
async fn a_nacked_reply_is_retried_then_dead_lettered_never_acked_and_lost() {
    let app = TestApp::new().await;
    let hello = app
        .consumer_with("hello", &fast_retries(&app, 2), None)
        .await;
    let raw = app.raw().await;
    let mut dead = raw.dead_letters().await;
    let full = format!("{}.reply.full", app.prefix);
    app.own_queue(&full);
    // A reply queue as a client in exclusive mode has one (exclusive, bound
    // to the reply exchange by its name), but one that nacks every publish.
    raw.channel
        .queue_declare(
            full.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            nacking(),
        )
        .await
        .expect("declare a reply queue that nacks");
    let replies = format!("{}.reply", app.prefix);
    raw.channel
        .exchange_declare(
            replies.as_str().into(),
            lapin::ExchangeKind::Direct,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare the reply exchange");
    testkit::bind(&raw.channel, &full, &replies, &full).await;

    let properties = answerable("nacked").with_reply_to(full.as_str().into());
    raw.publish(br#"{"name":"Ada"}"#, properties).await;
    let letter = dead.next().await;
    let why = reason_of(&letter);
    println!(
        "ledger [nacked reply]: dead-lettered with reason {why:?}; stats {:?}",
        hello.counters.snapshot()
    );
    assert!(why.contains("the broker nacked the reply"), "{why}");
    assert_eq!(letter.data, br#"{"name":"Ada"}"#);
    let stats = hello.counters.snapshot();
    assert_eq!(stats.publish_nacks, 8, "4 attempts per reply, 2 replies");
    assert_eq!(stats.retries_scheduled, 1);
    assert_eq!(stats.replies, 0);
    hello.stop().await;
}

/// A publish of the service's own (here the dead-letter copy) still nacked
/// after its retries returns the request to its queue; once the dead-letter
/// queue takes messages again, the request is dead-lettered: nothing lost.
#[tokio::test]
async fn a_nacked_dead_letter_copy_returns_the_request_to_its_queue_until_it_can_be_stored() {
    let app = TestApp::new().await;
    let raw = app.raw().await;
    let dead = format!("{}.dead", app.prefix);
    // A dead-letter queue that refuses everything (the service uses an
    // existing queue as it is, see the bounds tests).
    declare_durable(&raw.channel, &dead, nacking()).await;
    let handler = test_handler(|_, _| Err(HandlerError::permanent("refused")));
    let hello = app
        .consumer_with("hello", &fast_retries(&app, 3), Some(handler))
        .await;

    raw.publish(br#"{"name":"Ada"}"#, answerable("kept")).await;
    wait_until("the request was returned to its queue after nacks", || {
        let n = hello.counters.snapshot().requeued_after_nack;
        async move { n >= 1 }
    })
    .await;
    assert_eq!(hello.counters.snapshot().dead_lettered, 0);

    // Heal: the refusing queue leaves the dead-letter exchange, then a queue
    // that accepts messages joins it. Never by deleting the refusing queue: a
    // publish in flight to a queue deleted meanwhile is confirmed positively
    // by RabbitMQ (the message went with the queue), which would make this
    // test lose what the service was right to ack.
    unbind_dead_letters(&app, &raw).await;
    let letter = first_dead_letter_on_new_queue(&app, &raw, "dead.healed").await;
    assert_eq!(letter.data, br#"{"name":"Ada"}"#);
    // The dead letter can reach the test before its confirm reaches the service.
    wait_until("the service counts the dead letter", || {
        let n = hello.counters.snapshot().dead_lettered;
        async move { n == 1 }
    })
    .await;
    let stats = hello.counters.snapshot();
    println!("ledger [nacked dead letter]: {stats:?}");
    assert!(stats.publish_nacks >= 4, "{stats:?}");
    assert_eq!(stats.dead_lettered, 1);
    hello.stop().await;
}

/// A request the service can never settle (its dead-letter copy is
/// unroutable for good) goes back to its queue with `basic.reject`, which
/// every RabbitMQ counts towards a quorum queue's delivery limit; from 4.3 a
/// `basic.nack` no longer does, and the request would loop for ever. Here the
/// handler sees the broker's count grow with each return, and after
/// `max_failures` returns the broker itself dead-letters the request.
#[tokio::test]
async fn an_unsettleable_request_on_a_quorum_queue_is_bounded_by_the_broker_delivery_limit() {
    let app = TestApp::new().await;
    let mut settings = fast_retries(&app, 3);
    settings.topology.queue_type = rabbit_gather::settings::QueueType::Quorum;
    let attempts: Arc<Mutex<Vec<u32>>> = Arc::default();
    let seen = Arc::clone(&attempts);
    let handler = test_handler(move |_, cx| {
        seen.lock().expect("lock").push(cx.attempt);
        Err(HandlerError::permanent("refused"))
    });
    let hello = app.consumer_with("hello", &settings, Some(handler)).await;
    // The service's dead-letter copies become unroutable: it must return
    // the request to its queue rather than ack it.
    let raw = app.raw().await;
    unbind_dead_letters(&app, &raw).await;
    raw.publish(br#"{"name":"Ada"}"#, answerable("unsettleable"))
        .await;
    wait_until("the request was returned 4 times", || {
        let n = hello.counters.snapshot().requeued_after_nack;
        async move { n >= 4 }
    })
    .await;
    // A queue for what reaches the dead-letter exchange from now on: the
    // broker's own dead letter (at-least-once, retried until routable), or a
    // copy of the service's if the broker delivered the request a fifth time.
    let letter = first_dead_letter_on_new_queue(&app, &raw, "observer").await;
    let stats = hello.counters.snapshot();
    let seen = attempts.lock().expect("lock").clone();
    let death_reason =
        letter
            .properties
            .headers()
            .as_ref()
            .and_then(|h| match h.inner().get("x-death")? {
                AMQPValue::FieldArray(deaths) => match deaths.as_slice().first()? {
                    AMQPValue::FieldTable(death) => match death.inner().get("reason")? {
                        AMQPValue::LongString(reason) => Some(reason.to_string()),
                        _ => None,
                    },
                    _ => None,
                },
                _ => None,
            });
    println!(
        "ledger [unsettleable request, quorum, delivery limit 3]: attempts seen {seen:?}; \
         broker's x-death reason {death_reason:?}; {stats:?}"
    );
    assert_eq!(death_reason.as_deref(), Some("delivery_limit"));
    assert_eq!(seen, [1, 2, 3, 4], "the broker counted every return");
    assert_eq!(stats.requeued_after_nack, 4);
    assert!(
        reason(&letter).is_none(),
        "the broker's dead letter, not a copy of the service's"
    );
    assert_eq!(letter.data, br#"{"name":"Ada"}"#);
    hello.wait_for_losses(0).await;
    hello.stop().await;
}

/// Defect: the retry queue carries `x-expires`, and publishes do not renew
/// it: `queue_expires` after the session declared it, it was deleted with the
/// retries waiting in it (a request lost: its original acked, its copy gone),
/// and every later retry copy was unroutable and requeued at once, its
/// attempt never counted. The session now renews the lease while it runs.
#[tokio::test]
async fn retries_outlive_queue_expires_while_their_consumer_runs_fresh_or_up_a_while() {
    retries_outlive_queue_expires(rabbit_gather::settings::QueueType::Classic).await;
}

#[tokio::test]
async fn retries_outlive_queue_expires_on_quorum_queues_too() {
    retries_outlive_queue_expires(rabbit_gather::settings::QueueType::Quorum).await;
}

async fn retries_outlive_queue_expires(queue_type: rabbit_gather::settings::QueueType) {
    let app = TestApp::new().await;
    let mut settings = fast_retries(&app, 3);
    settings.topology.queue_type = queue_type;
    settings.topology.queue_expires = Duration::from_secs(2);
    // Each retry waits longer than the queue's lease.
    settings.consumer.retry_delay = Duration::from_secs(3);
    settings.consumer.max_retry_delay = Duration::from_secs(3);
    let handler = test_handler(|name, cx| {
        if cx.attempt == 1 {
            Err(HandlerError::transient("fails once"))
        } else {
            Ok(format!("{} {name}", cx.word))
        }
    });
    let hello = app.consumer_with("hello", &settings, Some(handler)).await;
    let client = app.client().await;
    let expect = ["hello".to_owned()];
    let call = |name: &'static str| {
        let (client, expect) = (&client, &expect);
        async move {
            client
                .call::<_, String>(&Name::parse(name).expect("valid"), expect, EVENT_TIMEOUT)
                .await
                .expect("call")
        }
    };
    let fresh = call("fresh").await;
    assert!(fresh.is_complete(), "right after start: {fresh:?}");
    // Age the session past the lease several times over: the condition
    // under test is uptime itself, not an event to wait for.
    tokio::time::sleep(settings.topology.queue_expires * 3).await;
    let aged = call("aged").await;
    assert!(
        aged.is_complete(),
        "after 3x queue_expires of uptime: {aged:?}"
    );
    // A reply can reach the caller before its request is acked and counted.
    wait_until("both requests are acked", || {
        let ok = hello.counters.snapshot().ok;
        async move { ok == 2 }
    })
    .await;
    let stats = hello.counters.snapshot();
    println!("ledger [retries past queue_expires 2 s, delay 3 s, {queue_type:?}]: {stats:?}");
    assert_eq!(stats.retries_scheduled, 2);
    assert_eq!(stats.requeued_after_nack, 0, "no retry copy was unroutable");
    hello.stop().await;
}

/// Defect: a request whose retry or dead-letter copy was not stored went
/// back to its queue at once, its failure count unchanged (it travels in the
/// copy): a hot loop, thousands of redeliveries a second, until the copy's
/// target was repaired. Now each return waits the retry delay for the number
/// of returns so far, and nothing is lost once the target is back.
#[tokio::test]
async fn a_request_whose_copy_is_unroutable_is_returned_after_growing_delays_and_kept() {
    let app = TestApp::new().await;
    let attempts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = Arc::clone(&attempts);
    let handler = test_handler(move |_, _| {
        seen.lock().expect("lock").push(Instant::now());
        Err(HandlerError::permanent("refused"))
    });
    let hello = app
        .consumer_with("hello", &fast_retries(&app, 3), Some(handler))
        .await;
    let raw = app.raw().await;
    unbind_dead_letters(&app, &raw).await;
    raw.publish(br#"{"name":"Ada"}"#, answerable("kept")).await;
    wait_until("three attempts, each returned", || {
        let n = attempts.lock().expect("lock").len();
        async move { n >= 3 }
    })
    .await;
    let seen = attempts.lock().expect("lock").clone();
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1] - w[0]).collect();
    println!(
        "figures [unroutable copy, classic]: gaps between attempts {gaps:?} (300 ms doubling)"
    );
    assert!(gaps[0] >= Duration::from_millis(300), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(600), "{gaps:?}");
    // Repaired: the next attempt's copy is stored, the request kept.
    let letter = first_dead_letter_on_new_queue(&app, &raw, "dead.repaired").await;
    assert_eq!(letter.data, br#"{"name":"Ada"}"#);
    let stats = hello.counters.snapshot();
    println!("ledger [unroutable copy, classic]: {stats:?}");
    assert!(stats.requeued_after_nack >= 2, "{stats:?}");
    hello.stop().await;
}

#[tokio::test]
async fn a_retry_due_while_the_bounded_queue_is_full_is_still_handled() {
    let app = TestApp::new().await;
    let mut settings = fast_retries(&app, 3);
    settings.topology.max_length = 3;
    settings.consumer.retry_delay = Duration::from_secs(1);
    // "Block" holds the only handling slot until the gate opens; "Flaky"
    // fails once, transiently.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let blocked = Arc::new(tokio::sync::Notify::new());
    let flaky_failed = Arc::new(Mutex::new(false));
    let handler: TestHandler = {
        let (gate, blocked, flaky_failed) = (
            Arc::clone(&gate),
            Arc::clone(&blocked),
            Arc::clone(&flaky_failed),
        );
        Box::new(move |name, cx| {
            let (gate, blocked, flaky_failed) = (
                Arc::clone(&gate),
                Arc::clone(&blocked),
                Arc::clone(&flaky_failed),
            );
            async move {
                match name.as_str() {
                    "Block" => {
                        blocked.notify_one();
                        let _permit = gate.acquire().await;
                    }
                    "Flaky" => {
                        let mut failed = flaky_failed.lock().expect("lock");
                        if !*failed {
                            *failed = true;
                            return Err(HandlerError::transient("flaky once"));
                        }
                    }
                    _ => {}
                }
                Ok(format!("{} {name}", cx.word))
            }
            .boxed()
        })
    };
    let hello = app.consumer_with("hello", &settings, Some(handler)).await;
    let mut raw = app.raw().await;
    let retry_queue = format!("{}.hello.retry", app.prefix);

    raw.publish(br#"{"name":"Flaky"}"#, answerable("flaky"))
        .await;
    wait_until("Flaky's retry copy waits in the retry queue", || async {
        raw.queue_counts(&retry_queue).await.0 == 1
    })
    .await;
    raw.publish(br#"{"name":"Block"}"#, answerable("block"))
        .await;
    tokio::time::timeout(EVENT_TIMEOUT, blocked.notified())
        .await
        .expect("Block is in hand");
    // The word's queue is full (3 ready) when Flaky's copy is due.
    for id in ["f1", "f2", "f3"] {
        raw.publish(br#"{"name":"Filler"}"#, answerable(id)).await;
    }
    wait_until(
        "Flaky's retry copy is due and leaves the retry queue",
        || async { raw.queue_counts(&retry_queue).await.0 == 0 },
    )
    .await;
    gate.add_permits(1);

    let mut answered = Vec::new();
    while answered.len() < 5 {
        let reply = raw.next_reply().await;
        answered.push(
            reply
                .properties
                .correlation_id()
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        );
    }
    answered.sort();
    assert_eq!(answered, ["block", "f1", "f2", "f3", "flaky"]);
    hello.stop().await;
}
