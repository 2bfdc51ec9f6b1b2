//! Operating a consumer: `/readyz` (across a broker stop: `nodes`), `/metrics`
//! counting what was sent (parsed with a Prometheus text parser), W3C trace
//! context continued from a foreign client into JSON logs and the reply, and
//! the endpoint's and the probe's wrong inputs.

use std::{collections::HashMap, process::Stdio};

use consumer::http::OUTCOMES;
use fixtures::http::{consumer_with_http, scrape};
use lapin::types::{AMQPValue, FieldTable};
use rabbit_gather::trace::{TRACEPARENT, trace_id_of};

use testkit::support::node::free_port;
use testkit::{EVENT_TIMEOUT, TestApp, answerable, bin, wait_until};

#[tokio::test]
async fn metrics_count_exactly_the_valid_invalid_and_forbidden_requests_sent() {
    const VALID: usize = 5;
    const INVALID: usize = 3;
    const FORBIDDEN: usize = 2;
    let app = TestApp::new().await;
    let (_consumer, base) = consumer_with_http(&app, "hello", &[]).await;
    let raw = app.raw().await;
    for i in 0..VALID {
        raw.publish(br#"{"name":"Ada"}"#, answerable(&format!("valid-{i}")))
            .await;
    }
    for i in 0..INVALID {
        raw.publish(br#"{"nam":"Ada"}"#, answerable(&format!("invalid-{i}")))
            .await;
    }
    for i in 0..FORBIDDEN {
        // A reply address that is neither direct reply-to nor under the
        // reply prefix: the service refuses to publish there.
        let properties = answerable(&format!("forbidden-{i}"))
            .with_reply_to(format!("{}.hello", app.prefix).as_str().into());
        raw.publish(br#"{"name":"Ada"}"#, properties).await;
    }
    let total = (VALID + INVALID + FORBIDDEN) as f64;
    wait_until("every request is settled", || {
        let base = base.clone();
        async move {
            scrape(&base)
                .await
                .histogram_count("greetings_request_handling_seconds")
                >= total
        }
    })
    .await;

    let metrics = scrape(&base).await;
    let requests = |outcome: &str| {
        metrics.value(
            "greetings_requests_total",
            &[("word", "hello"), ("outcome", outcome)],
        )
    };
    let counted: HashMap<&str, f64> = OUTCOMES
        .into_iter()
        .map(|outcome| (outcome, requests(outcome)))
        .collect();
    println!("metrics after {VALID} valid, {INVALID} invalid, {FORBIDDEN} forbidden: {counted:?}");
    assert_eq!(counted["ok"], VALID as f64);
    assert_eq!(counted["invalid"], INVALID as f64);
    assert_eq!(counted["forbidden_reply_to"], FORBIDDEN as f64);
    for outcome in ["expired", "failed", "dead_lettered", "requeued"] {
        assert_eq!(counted[outcome], 0.0, "{outcome}");
    }
    assert_eq!(
        metrics.histogram_count("greetings_request_handling_seconds"),
        total
    );
    // A greeting for each valid request, an error reply for each invalid one.
    assert_eq!(
        metrics.value("greetings_replies_total", &[("word", "hello")]),
        (VALID + INVALID) as f64
    );
    assert_eq!(metrics.value("greetings_deliveries_in_hand", &[]), 0.0);
    assert_eq!(metrics.value("greetings_publish_nacks_total", &[]), 0.0);
    assert_eq!(metrics.value("greetings_broker_connected", &[]), 1.0);
    assert_eq!(metrics.value("greetings_ready", &[]), 1.0);
    assert_eq!(metrics.value("greetings_reconnects_total", &[]), 0.0);
}

/// A malformed `traceparent` is ignored: the request is answered in a new
/// trace, never failed.
#[tokio::test]
async fn a_malformed_traceparent_starts_a_new_trace_and_the_request_is_answered() {
    let app = TestApp::new().await;
    let _hello = app.consumer("hello").await;
    let mut raw = app.raw().await;
    for (i, value) in [
        AMQPValue::LongString("00-not-a-trace-01".into()),
        AMQPValue::LongString(b"\xff\xfe\xfd"[..].into()),
        AMQPValue::LongLongInt(42),
    ]
    .into_iter()
    .enumerate()
    {
        let mut headers = FieldTable::default();
        headers.insert(TRACEPARENT.into(), value.clone());
        let properties = answerable(&format!("malformed-{i}")).with_headers(headers);
        raw.publish(br#"{"name":"Ada"}"#, properties).await;
        let reply = raw.next_reply().await;
        let body: serde_json::Value = serde_json::from_slice(&reply.data).expect("JSON reply");
        assert_eq!(body["greeting"], "hello Ada", "{value:?}: {body}");
        let trace_id = trace_id_of(reply.properties.headers().as_ref())
            .unwrap_or_else(|| panic!("{value:?}: the reply has no valid traceparent"));
        assert_eq!(trace_id.len(), 32);
    }
}

#[tokio::test]
async fn an_http_addr_that_cannot_be_bound_is_a_clear_error_and_exit_2() {
    let app = TestApp::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    for args in [
        vec!["hello", "--http-addr", addr.as_str()],
        vec!["hello", "--http-addr", "not-an-address"],
    ] {
        let mut consumer = tokio::process::Command::new(bin("consumer"));
        consumer.args(&args).envs(app.env());
        let output = testkit::run_to_end(&mut consumer, None).await;
        let stderr = output.stderr;
        assert_eq!(output.code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot serve HTTP on") || stderr.contains("invalid value"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn the_probe_exits_0_when_ready_1_when_not_and_2_for_a_bad_url() {
    let closed = format!("http://127.0.0.1:{}/readyz", free_port());
    for (url, code) in [
        (closed.as_str(), 1),
        ("https://127.0.0.1:1/readyz", 2),
        ("nonsense", 2),
    ] {
        let output = tokio::process::Command::new(bin("consumer"))
            .args(["--probe", url])
            .stdin(Stdio::null())
            .output();
        let output = tokio::time::timeout(EVENT_TIMEOUT, output)
            .await
            .expect("the probe ends in time")
            .expect("run the probe");
        assert_eq!(
            output.status.code(),
            Some(code),
            "{url}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let app = TestApp::new().await;
    let (_consumer, base) = consumer_with_http(&app, "hello", &[]).await;
    let output = tokio::process::Command::new(bin("consumer"))
        .args(["--probe", &format!("{base}/readyz")])
        .output()
        .await
        .expect("run the probe");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "ready\n");
}
