//! Proves [`PrivateNode`]: start, stop_app/start_app, kill/restart with a
//! durable queue surviving, the memory alarm blocking a publisher, and a
//! clean teardown on drop. Scratch test for reviewing the helper.

use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::{
    BasicProperties, Confirmation, Connection, Event,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    types::FieldTable,
};

use testkit::support::node::PrivateNode;

const QUEUE: &str = "selftest.durable";

/// Ready messages of `QUEUE`, failing when it is missing.
async fn durable_queue_messages(connection: &Connection) -> u32 {
    testkit::queue_counts(connection, QUEUE).await.0
}

/// Waits for the next event matching `want` on `events`, at most 15 s.
async fn next_event(
    events: &mut (impl futures::Stream<Item = Event> + Unpin),
    what: &str,
    want: impl Fn(&Event) -> bool,
) -> Event {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let event = events.next().await.expect("events stream open");
            if want(&event) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} event within 15 s"))
}

#[tokio::test]
async fn private_node_survives_stop_kill_and_alarm_then_cleans_up() {
    let timed = Instant::now();
    let node = PrivateNode::start().await;
    eprintln!(
        "start: {:?} ({} on port {})",
        timed.elapsed(),
        node.name(),
        node.port()
    );
    assert_ne!(node.port(), 5672);
    assert!(node.url().contains(&format!(":{}/", node.port())));

    // A durable queue holding one persistent, confirmed message.
    let connection = node.connect().await;
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    testkit::declare_durable(&channel, QUEUE, FieldTable::default()).await;
    testkit::publish_routed(
        &channel,
        "",
        QUEUE,
        b"kept",
        BasicProperties::default().with_delivery_mode(2),
    )
    .await;
    assert_eq!(durable_queue_messages(&connection).await, 1);

    let timed = Instant::now();
    node.stop_app().await;
    eprintln!("stop_app: {:?}", timed.elapsed());
    let timed = Instant::now();
    node.start_app().await;
    eprintln!("start_app: {:?}", timed.elapsed());
    let connection = node.connect().await;
    assert_eq!(durable_queue_messages(&connection).await, 1);

    let timed = Instant::now();
    node.kill().await;
    eprintln!("kill: {:?}", timed.elapsed());
    let timed = Instant::now();
    node.restart().await;
    eprintln!("restart: {:?}", timed.elapsed());
    let connection = node.connect().await;
    assert_eq!(
        durable_queue_messages(&connection).await,
        1,
        "the durable queue and its persistent message survive SIGKILL"
    );

    // Memory alarm: a publishing connection gets blocked, then unblocked.
    let publisher = node.connect().await;
    let mut events = Box::pin(publisher.events_listener());
    let channel = publisher.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let timed = Instant::now();
    node.set_memory_watermark("0.0000001").await;
    let pending = channel
        .basic_publish(
            "".into(),
            QUEUE.into(),
            BasicPublishOptions::default(),
            b"blocked",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish while alarmed");
    let event = next_event(&mut events, "ConnectionBlocked", |e| {
        matches!(e, Event::ConnectionBlocked(_))
    })
    .await;
    eprintln!("blocked after {:?}: {event:?}", timed.elapsed());
    assert!(publisher.status().blocked());
    node.set_memory_watermark("0.4").await;
    next_event(&mut events, "ConnectionUnblocked", |e| {
        matches!(e, Event::ConnectionUnblocked)
    })
    .await;
    assert!(!publisher.status().blocked());
    let confirmation = tokio::time::timeout(Duration::from_secs(15), pending)
        .await
        .expect("the held-back publish is confirmed after the alarm clears")
        .expect("confirm");
    assert!(
        matches!(confirmation, Confirmation::Ack(None)),
        "{confirmation:?}"
    );
    assert_eq!(durable_queue_messages(&connection).await, 2);
    drop((channel, publisher, connection));

    // Dropping stops the node and removes its directory.
    let dir = node.dir().to_owned();
    let port = node.port();
    assert!(dir.exists());
    let timed = Instant::now();
    drop(node);
    eprintln!("drop: {:?}", timed.elapsed());
    assert!(!dir.exists(), "{} still exists", dir.display());
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(
        matches!(&refused, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "port {port} still answers: {refused:?}"
    );
}
