//! Self-test of the fault-injection proxy ([`testkit::support::proxy`]) against the
//! real broker: it forwards, its blackhole is noticed only by heartbeat, and
//! once healed new connections go through.

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use lapin::{
    Connection, ConnectionProperties, Error, ErrorKind, Event, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueDeclareOptions, QueueDeleteOptions},
    types::FieldTable,
};

use testkit::EVENT_TIMEOUT;
use testkit::support::proxy::Proxy;

/// Negotiated heartbeat, in seconds: lapin declares the peer dead once it
/// has read nothing for twice this long.
const HEARTBEAT: u16 = 2;

async fn connect(url: &str) -> Connection {
    tokio::time::timeout(
        EVENT_TIMEOUT,
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .expect("connected in time")
    .expect("connect through the proxy")
}

/// Declares and deletes a uniquely named queue: proves the connection works.
/// The queue is exclusive, so the broker deletes it anyway if this fails
/// half-way.
async fn declare_and_delete(connection: &Connection) {
    let queue = format!(
        "test.proxy-selftest.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let round_trip = async {
        let channel = connection.create_channel().await.expect("channel");
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the queue");
        assert_eq!(declared.name().as_str(), queue);
        let messages = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete the queue");
        assert_eq!(messages, 0);
        channel
            .close(200, "done".into())
            .await
            .expect("close channel");
    };
    tokio::time::timeout(EVENT_TIMEOUT, round_trip)
        .await
        .expect("declare and delete in time");
}

/// A passive declare of a built-in exchange: one request, one answer.
async fn ping(channel: &lapin::Channel) -> lapin::Result<()> {
    channel
        .exchange_declare(
            "amq.direct".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
}

/// The next `Event::Error`, skipping other events, failing after [`EVENT_TIMEOUT`].
async fn next_error(events: &mut (impl Stream<Item = Event> + Unpin)) -> Error {
    let error = async {
        while let Some(event) = events.next().await {
            if let Event::Error(error) = event {
                return error;
            }
        }
        panic!("the event stream ended without an error");
    };
    tokio::time::timeout(EVENT_TIMEOUT, error)
        .await
        .expect("the connection reports an error in time")
}

async fn close(connection: Connection) {
    tokio::time::timeout(EVENT_TIMEOUT, connection.close(200, "done".into()))
        .await
        .expect("closed in time")
        .expect("close");
}

#[tokio::test]
async fn forwards_amqp_to_the_broker() {
    let proxy = Proxy::to_broker().await;
    assert!(
        proxy
            .amqp_url()
            .contains(&format!("@127.0.0.1:{}/", proxy.port())),
        "{}",
        proxy.amqp_url()
    );
    let connection = connect(&proxy.amqp_url_with_heartbeat(HEARTBEAT)).await;
    assert_eq!(connection.configuration().heartbeat(), HEARTBEAT);
    declare_and_delete(&connection).await;
    assert_eq!(proxy.accepted(), 1);
    close(connection).await;
}

#[tokio::test]
async fn a_blackholed_connection_is_detected_by_heartbeat_only() {
    let proxy = Proxy::to_broker().await;
    let connection = connect(&proxy.amqp_url_with_heartbeat(HEARTBEAT)).await;
    // lapin only publishes events while someone listens: listen before the fault.
    let mut events = connection.events_listener();
    let channel = connection.create_channel().await.expect("channel");
    ping(&channel)
        .await
        .expect("the connection works before the fault");

    proxy.blackhole();
    let cut_at = Instant::now();
    // A request sent into the partition is never answered; it fails when
    // lapin gives up on the connection.
    let in_flight = tokio::spawn({
        let channel = channel.clone();
        async move { (ping(&channel).await, cut_at.elapsed()) }
    });

    let error = next_error(&mut events).await;
    let detected = cut_at.elapsed();
    println!("blackhole detected after {detected:?} (heartbeat {HEARTBEAT} s): {error}");
    assert!(
        matches!(error.kind(), ErrorKind::MissingHeartbeatError),
        "the peer must look silent, not closed: {error:?}"
    );
    // Not before a heartbeat interval has passed in silence: nothing leaked a close.
    assert!(
        detected >= Duration::from_secs(HEARTBEAT.into()),
        "{detected:?}"
    );
    assert!(detected < Duration::from_secs(15), "{detected:?}");

    let (in_flight, failed_after) = tokio::time::timeout(EVENT_TIMEOUT, in_flight)
        .await
        .expect("the in-flight request ends in time")
        .expect("the in-flight task did not panic");
    println!("in-flight request failed after {failed_after:?}: {in_flight:?}");
    assert!(in_flight.is_err(), "{in_flight:?}");
    assert!(!connection.status().connected());
    let after = tokio::time::timeout(EVENT_TIMEOUT, ping(&channel))
        .await
        .expect("a request on a dead connection fails at once");
    assert!(after.is_err(), "{after:?}");
}

#[tokio::test]
async fn after_heal_new_connections_go_through_and_blackholed_ones_are_reset() {
    let proxy = Proxy::to_broker().await;
    let url = proxy.amqp_url_with_heartbeat(HEARTBEAT);
    let old = connect(&url).await;
    let mut old_events = old.events_listener();
    declare_and_delete(&old).await;

    proxy.blackhole();
    // A connection opened during the partition is accepted, never answered.
    let during = tokio::time::timeout(
        Duration::from_secs(1),
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await;
    assert!(during.is_err(), "connected through a blackhole: {during:?}");
    assert_eq!(proxy.accepted(), 2);

    proxy.heal();
    let healed_at = Instant::now();
    // The old connection lived through the blackhole: the heal resets it,
    // which lapin sees as an IO error, not as a missing heartbeat.
    let error = next_error(&mut old_events).await;
    println!(
        "connection reset {:?} after heal: {error}",
        healed_at.elapsed()
    );
    assert!(matches!(error.kind(), ErrorKind::IOError(_)), "{error:?}");

    let fresh = connect(&url).await;
    declare_and_delete(&fresh).await;
    assert_eq!(proxy.accepted(), 3);
    close(fresh).await;
}

#[tokio::test]
async fn cut_all_resets_every_connection_at_once() {
    let proxy = Proxy::to_broker().await;
    let url = proxy.amqp_url_with_heartbeat(HEARTBEAT);
    let first = connect(&url).await;
    let second = connect(&url).await;
    let mut first_events = first.events_listener();
    let mut second_events = second.events_listener();
    declare_and_delete(&first).await;

    proxy.cut_all();
    let cut_at = Instant::now();
    for events in [&mut first_events, &mut second_events] {
        let error = next_error(events).await;
        assert!(matches!(error.kind(), ErrorKind::IOError(_)), "{error:?}");
    }
    let detected = cut_at.elapsed();
    println!("cut_all detected after {detected:?}");
    assert!(
        detected < Duration::from_secs(HEARTBEAT.into()),
        "{detected:?}"
    );

    let fresh = connect(&url).await;
    declare_and_delete(&fresh).await;
    assert_eq!(proxy.accepted(), 3);
    close(fresh).await;
}
