//! A consumer's `/readyz` follows its broker session: 503 while its private
//! node is stopped, 200 once it is back.

use fixtures::http::{
    NOT_READY_BOUND, READY_AGAIN_BOUND, consumer_with_http, get, scrape, wait_for_status,
};
use testkit::{TestApp, support::node::PrivateNode};

#[tokio::test]
async fn readyz_turns_503_when_the_broker_stops_and_200_when_it_is_back() {
    let node = PrivateNode::start().await;
    let app = TestApp::on(&node.url()).await;
    let (consumer, base) = consumer_with_http(&app, "hello", &[]).await;
    assert_eq!(get(&base, "/readyz").await, (200, "ready\n".to_owned()));
    assert_eq!(get(&base, "/healthz").await.0, 200);

    node.stop_app().await;
    let down = wait_for_status(&base, "/readyz", 503).await;
    let (_, why) = get(&base, "/readyz").await;
    assert!(why.starts_with("reconnecting"), "{why}");
    assert_eq!(get(&base, "/healthz").await.0, 200, "alive while not ready");
    let metrics = scrape(&base).await;
    assert_eq!(metrics.value("greetings_broker_connected", &[]), 0.0);

    node.start_app().await;
    let up = wait_for_status(&base, "/readyz", 200).await;
    let metrics = scrape(&base).await;
    println!(
        "readiness: 503 {:.2} s after stop_app (bound {NOT_READY_BOUND:?}), \
         200 {:.2} s after start_app (bound {READY_AGAIN_BOUND:?})",
        down.as_secs_f64(),
        up.as_secs_f64()
    );
    assert!(down <= NOT_READY_BOUND, "{down:?}");
    assert!(up <= READY_AGAIN_BOUND, "{up:?}");
    assert_eq!(metrics.value("greetings_reconnects_total", &[]), 1.0);
    assert_eq!(metrics.value("greetings_broker_connected", &[]), 1.0);
    drop(consumer);
}
