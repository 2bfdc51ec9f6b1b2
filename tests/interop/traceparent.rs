//! W3C trace context from a foreign client (`tests/support/traced_request.py`,
//! Python + pika) is continued in the consumer's JSON logs and in the reply.

use fixtures::{http::consumer_with_http, python::run_support_script};
use testkit::{EVENT_TIMEOUT, TestApp, wait_until};

const KNOWN_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn a_pika_request_with_a_traceparent_is_continued_in_json_logs_and_in_the_reply() {
    let app = TestApp::new().await;
    let (consumer, _base) = consumer_with_http(
        &app,
        "hello",
        &[
            ("GREETINGS_LOG__FORMAT", "json"),
            ("RUST_LOG", "info,rabbit_gather=debug"),
        ],
    )
    .await;
    let traceparent = format!("00-{KNOWN_TRACE_ID}-00f067aa0ba902b7-01");
    let stdout = run_support_script(
        "traced_request.py",
        &[&app.url, &app.prefix, "pika-traced", &traceparent, "Ada"],
        EVENT_TIMEOUT,
    )
    .await;
    let reply: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON reply");
    assert_eq!(reply["body"]["greeting"], "hello Ada", "{reply}");
    let reply_traceparent = reply["traceparent"]
        .as_str()
        .expect("the reply has a traceparent");
    let parts: Vec<&str> = reply_traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{reply_traceparent}");
    assert_eq!(parts[1], KNOWN_TRACE_ID, "same trace");
    assert_ne!(parts[2], "00f067aa0ba902b7", "the consumer's own span");

    consumer.wait_for_stdout("hello Ada").await;
    wait_until("the consumer logs the answer", || {
        let found = consumer
            .stderr_lines()
            .iter()
            .any(|l| l.contains("answered"));
        async move { found }
    })
    .await;
    let about_the_request: Vec<serde_json::Value> = consumer
        .stderr_lines()
        .iter()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"))
        })
        .filter(|line| line["span"]["correlation_id"] == "pika-traced")
        .collect();
    assert!(
        !about_the_request.is_empty(),
        "{:?}",
        consumer.stderr_lines()
    );
    for line in &about_the_request {
        assert_eq!(line["span"]["trace_id"], KNOWN_TRACE_ID, "{line}");
        assert_eq!(line["span"]["span_id"], parts[2], "{line}");
    }
    println!(
        "trace: {} log lines carry trace id {KNOWN_TRACE_ID}",
        about_the_request.len()
    );
}
