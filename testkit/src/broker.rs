//! The broker under test: `AMQP_URL`, default the local guest broker. Not
//! reaching it fails the test with what to start; no test skips silently.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use rabbit_gather::settings::DEFAULT_AMQP_URL;

/// How long connecting to the broker may take before the test fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The URL of the broker under test (`AMQP_URL`, else [`DEFAULT_AMQP_URL`]).
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_AMQP_URL.to_owned())
}

/// A raw connection to the broker at `url`, or a failure that says how to
/// start one.
pub async fn connect_raw(url: &str) -> Connection {
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => panic!(
            "cannot reach the broker at {url} (AMQP_URL, default {DEFAULT_AMQP_URL}): {e}. \
             Start one with scripts/ensure-rabbitmq.sh"
        ),
        Err(_) => panic!(
            "the broker at {url} did not answer within {CONNECT_TIMEOUT:?}: is RabbitMQ \
             running? Start one with scripts/ensure-rabbitmq.sh"
        ),
    }
}

/// Fails the test at once, and clearly, when the broker at `url` cannot be
/// reached.
pub async fn probe(url: &str) {
    let _ = connect_raw(url).await.close(200, "probe".into()).await;
}
