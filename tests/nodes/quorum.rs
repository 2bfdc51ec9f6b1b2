//! Toward a cluster: quorum queues (`topology.queue_type = quorum`) and
//! several broker addresses in `AMQP_URL`, on private nodes.

use std::time::Duration;

use rabbit_gather::settings::QueueType;

use testkit::support::node::{PrivateNode, free_port};
use testkit::{TestApp, bin, call_ada, wait_until};

/// `name type arguments` of every queue of the node, one line each.
async fn queues(node: &PrivateNode) -> String {
    node.rabbitmqctl(&["-q", "list_queues", "name", "type", "arguments"])
        .await
}

fn line_of<'a>(listing: &'a str, queue: &str) -> &'a str {
    listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some(queue))
        .unwrap_or_else(|| panic!("no queue {queue} in:\n{listing}"))
}

#[tokio::test]
async fn quorum_queues_answer_and_carry_the_delivery_limit_and_at_least_once_dead_lettering() {
    let node = PrivateNode::start().await;
    let app = TestApp::on(&node.url()).await;
    let mut settings = app.settings.clone();
    settings.topology.queue_type = QueueType::Quorum;
    let _hello = app.consumer_with("hello", &settings, None).await;
    let _goodbye = app.consumer_with("goodbye", &settings, None).await;

    let gathered = call_ada(&settings, &["hello", "goodbye"]).await;
    assert!(gathered.is_complete(), "{gathered:?}");

    let listing = queues(&node).await;
    println!("queues:\n{listing}");
    for queue in ["hello", "hello.retry", "goodbye"] {
        let line = line_of(&listing, &format!("{}.{queue}", app.prefix));
        assert!(line.contains("quorum"), "{line}");
        assert!(line.contains("at-least-once"), "{line}");
        assert!(line.contains("reject-publish"), "{line}");
    }
    let hello = line_of(&listing, &format!("{}.hello", app.prefix));
    assert!(hello.contains("x-delivery-limit"), "{hello}");
    let dead = line_of(&listing, &format!("{}.dead", app.prefix));
    assert!(dead.contains("quorum"), "{dead}");
}

#[tokio::test]
async fn quorum_over_an_existing_classic_queue_fails_saying_how_to_migrate() {
    let node = PrivateNode::start().await;
    let app = TestApp::on(&node.url()).await;
    app.consumer("hello").await.stop().await;

    let mut consumer = tokio::process::Command::new(bin("consumer"));
    consumer
        .arg("hello")
        .envs(app.env())
        .env("GREETINGS_TOPOLOGY__QUEUE_TYPE", "quorum");
    let output = testkit::run_to_end(&mut consumer, None).await;
    let stderr = output.stderr;
    assert_eq!(output.code, Some(4), "{stderr}");
    assert!(stderr.contains("To migrate"), "{stderr}");
    let listing = queues(&node).await;
    assert!(
        line_of(&listing, &format!("{}.hello", app.prefix)).contains("classic"),
        "the classic queue is left as it was:\n{listing}"
    );
}

/// Whether `hello` answers a call for "Ada" made through `settings`.
async fn answers(settings: &rabbit_gather::Settings) -> bool {
    let Ok(client) = rabbit_gather::rpc::RpcClient::connect_with(
        settings,
        rabbit_gather::protocol::Contract::GREETINGS,
    )
    .await
    else {
        return false;
    };
    let gathered = client
        .call::<_, String>(
            &rabbit_gather::protocol::Name::parse("Ada").expect("valid"),
            &["hello".to_owned()],
            Duration::from_secs(2),
        )
        .await;
    client.close().await;
    gathered.is_ok_and(|g| g.is_complete())
}

/// With two addresses, a consumer whose broker stops reconnects to the other
/// one, and a producer given a dead address first still gets its replies.
#[tokio::test]
async fn several_addresses_are_tried_in_turn_and_a_consumer_moves_when_its_node_stops() {
    let first = PrivateNode::start().await;
    let second = PrivateNode::start().await;
    let app = TestApp::on(&first.url()).await;
    let mut settings = app.settings.clone();
    // Whatever address the random start picks, the consumer must end up on
    // the one that stays.
    settings.amqp.url = format!("{},{}", first.url(), second.url()).into();
    let hello = app.consumer_with("hello", &settings, None).await;

    first.stop_app().await;
    let started = std::time::Instant::now();
    let mut on_second = settings.clone();
    on_second.amqp.url = second.url().into();
    wait_until("the consumer answers on the second node", || {
        let on_second = on_second.clone();
        async move { answers(&on_second).await }
    })
    .await;
    println!(
        "moved to the second address {:.2} s after stop_app",
        started.elapsed().as_secs_f64()
    );

    // A producer whose list starts with an address nobody listens on.
    let mut listed = settings.clone();
    listed.amqp.url = format!(
        "amqp://guest:guest@127.0.0.1:{}/%2f,{}",
        free_port(),
        second.url()
    )
    .into();
    for _ in 0..3 {
        assert!(call_ada(&listed, &["hello"]).await.is_complete());
    }
    hello.stop().await;
}
