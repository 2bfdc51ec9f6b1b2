//! Black-box checks of the `producer` executable: flags and exit codes that
//! need no broker, and its `--json` summary and info-level statistics against
//! the test broker (`AMQP_URL`; through the workspace's test harness,
//! `testkit`). (The other end-to-end tests
//! live in the `greetings-tests` crate.) Their presence also makes
//! `cargo test --workspace` build the binary those tests run.

// A failed expectation is a failed test: panicking is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::{Command, Stdio};

use rabbit_gather::service::HandlerError;
use serde_json::{Map, Value};
use testkit::{EVENT_TIMEOUT, Finished, TestApp, run_to_end, sigterm, test_handler};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const PRODUCER: &str = env!("CARGO_BIN_EXE_producer");

#[test]
fn help_documents_every_exit_code() {
    let output = Command::new(PRODUCER)
        .arg("--help")
        .output()
        .expect("run producer");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for code in [
        "0  every name",
        "2  bad usage",
        "3  incomplete",
        "4  broker",
        "5  no consumer is running",
    ] {
        assert!(help.contains(code), "missing {code:?} in:\n{help}");
    }
}

#[test]
fn an_invalid_name_exits_2_before_connecting() {
    // Port 1 is closed: were anything sent, this would exit 4 instead.
    let output = Command::new(PRODUCER)
        .args([
            "--amqp-url",
            "amqp://guest:guest@127.0.0.1:1/%2f",
            "Ada",
            "bad\u{7}name",
        ])
        .output()
        .expect("run producer");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("argument 2: invalid name"), "{stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");
}

#[test]
fn an_invalid_broker_url_is_bad_usage_exit_2() {
    for url in [
        "http://x",
        "not a url",
        "amqp://guest:s3cr3t@host:notaport/%2f",
    ] {
        let output = Command::new(PRODUCER)
            .args(["--amqp-url", url, "Ada"])
            .env_remove("AMQP_URL")
            .env_remove("RUST_LOG")
            .output()
            .expect("run producer");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{url}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{url}: {stderr}");
        assert!(
            lines[0].starts_with("producer: invalid AMQP URL: "),
            "{url}: {stderr}"
        );
        assert!(!stderr.contains("s3cr3t"), "{url}: {stderr}");
    }
}

/// Runs the producer with `args` against `app`'s broker and prefix, to its end.
async fn producer(app: &TestApp, args: &[&str]) -> Finished {
    run_to_end(app.command(PRODUCER).args(args), None).await
}

/// Every stdout line of `run` parsed as JSON (a line that is not fails the
/// test).
fn json_lines(run: &Finished) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{run:?}"))
        })
        .collect()
}

/// The figures of a summary line, in the documented order.
const SUMMARY_KEYS: [&str; 10] = [
    "sent",
    "complete",
    "incomplete",
    "invalid",
    "error_replies",
    "overloaded",
    "retries",
    "stray_replies",
    "duplicate_replies",
    "latency_ms",
];

/// The object under `summary` in `line`, checked to hold exactly the
/// documented keys, in order, and nothing else beside it.
fn summary_of(line: &Value) -> &Map<String, Value> {
    let outer = line.as_object().expect("a JSON object");
    assert_eq!(outer.len(), 1, "only the summary key: {line}");
    let summary = outer["summary"].as_object().expect("summary is an object");
    let keys: Vec<&str> = summary.keys().map(String::as_str).collect();
    assert_eq!(keys, SUMMARY_KEYS, "{line}");
    summary
}

/// p50, p90, p99 and max of a summary, checked to be positive and ordered.
fn latency_of(summary: &Map<String, Value>) -> [f64; 4] {
    let latency = &summary["latency_ms"];
    let figures = ["p50", "p90", "p99", "max"].map(|p| {
        latency[p]
            .as_f64()
            .unwrap_or_else(|| panic!("latency_ms.{p} is a number: {latency}"))
    });
    assert!(figures[0] > 0.0, "{latency}");
    assert!(
        figures.windows(2).all(|w| w[0] <= w[1]),
        "p50 <= p90 <= p99 <= max: {latency}"
    );
    figures
}

#[tokio::test]
async fn the_last_json_line_is_one_summary_counting_every_name_with_ordered_latency() {
    let app = TestApp::new().await;
    app.consumer("hello").await;
    app.consumer("goodbye").await;
    let names: Vec<String> = (1..=20).map(|i| format!("n{i}")).collect();
    let mut args = vec!["--json"];
    args.extend(names.iter().map(String::as_str));

    let run = producer(&app, &args).await;

    assert_eq!(run.code, Some(0), "{run:?}");
    let lines = json_lines(&run);
    assert_eq!(lines.len(), names.len() + 1, "{run:?}");
    for (line, name) in lines.iter().zip(&names) {
        assert_eq!(line["name"], name.as_str(), "{line}");
        assert!(line.get("summary").is_none(), "{line}");
    }
    let summary = summary_of(lines.last().expect("a last line"));
    for (key, want) in [
        ("sent", 20),
        ("complete", 20),
        ("incomplete", 0),
        ("invalid", 0),
        ("error_replies", 0),
        ("retries", 0),
        ("stray_replies", 0),
        ("duplicate_replies", 0),
    ] {
        assert_eq!(summary[key], want, "{key} in {summary:?}");
    }
    latency_of(summary);
}

#[tokio::test]
async fn a_name_with_no_reply_by_its_deadline_is_counted_incomplete_and_timed() {
    let app = TestApp::new().await;
    app.consumer("hello").await;

    // `absent` has no consumer: Ada waits for it until her 500 ms deadline.
    let args = [
        "--json",
        "--expect",
        "hello,absent",
        "--timeout",
        "500ms",
        "Ada",
    ];
    let run = producer(&app, &args).await;

    assert_eq!(run.code, Some(3), "{run:?}");
    let lines = json_lines(&run);
    assert_eq!(lines.len(), 2, "{run:?}");
    assert_eq!(lines[0]["missing"], serde_json::json!(["absent"]));
    let summary = summary_of(&lines[1]);
    assert_eq!(
        (
            &summary["sent"],
            &summary["complete"],
            &summary["incomplete"]
        ),
        (&Value::from(1), &Value::from(0), &Value::from(1)),
        "{summary:?}"
    );
    let [.., max] = latency_of(summary);
    assert!(max >= 500.0, "timed until the deadline: {max} ms");
}

#[tokio::test]
async fn error_replies_counts_names_refused_not_replies() {
    let app = TestApp::new().await;
    for word in ["hello", "goodbye"] {
        // Both consumers refuse Bob: two error replies, one name.
        let refuse_bob = test_handler(|name, cx| {
            if name.as_str() == "Bob" {
                Err(HandlerError::permanent("no Bob here"))
            } else {
                Ok(format!("{} {}", cx.word, name.as_str()))
            }
        });
        app.consumer_with(word, &app.settings, Some(refuse_bob))
            .await;
    }

    let run = producer(&app, &["--json", "Ada", "Bob", "Cy"]).await;

    assert_eq!(run.code, Some(3), "{run:?}");
    let lines = json_lines(&run);
    assert_eq!(lines.len(), 4, "{run:?}");
    let errors = lines[1]["errors"].as_object().expect("errors by consumer");
    assert_eq!(errors.len(), 2, "{}", lines[1]);
    let summary = summary_of(&lines[3]);
    assert_eq!(summary["sent"], 3, "{summary:?}");
    assert_eq!(summary["complete"], 2, "{summary:?}");
    assert_eq!(summary["incomplete"], 1, "{summary:?}");
    assert_eq!(summary["error_replies"], 1, "{summary:?}");
}

#[tokio::test]
async fn an_interrupted_json_run_still_ends_with_the_summary_and_exits_130() {
    let app = TestApp::new().await;
    app.consumer("hello").await;
    app.consumer("goodbye").await;
    let mut command = app.command(PRODUCER);
    command.arg("--json").stdin(Stdio::piped());
    let mut child = command.spawn().expect("spawn producer");
    let mut stdin = child.stdin.take().expect("stdin piped");
    // stdin stays open: only the signal can end this run.
    stdin.write_all(b"Ada\nBob\n").await.expect("write names");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    let mut next_line = async || {
        tokio::time::timeout(EVENT_TIMEOUT, stdout.next_line())
            .await
            .expect("the producer writes or ends within the event timeout")
            .expect("stdout readable")
    };
    let mut lines = Vec::new();
    while lines.len() < 2 {
        lines.push(next_line().await.expect("a result per name before the end"));
    }

    sigterm(child.id().expect("producer still running"));
    while let Some(line) = next_line().await {
        lines.push(line);
    }
    let status = tokio::time::timeout(EVENT_TIMEOUT, child.wait())
        .await
        .expect("the producer exits after the signal")
        .expect("producer status");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).await.expect("stderr");
    }
    drop(stdin);

    assert_eq!(status.code(), Some(130), "{lines:?}\n{stderr}");
    assert_eq!(lines.len(), 3, "two names, then the summary: {lines:?}");
    let last: Value = serde_json::from_str(&lines[2]).expect("JSON line");
    let summary = summary_of(&last);
    assert_eq!(summary["sent"], 2, "{summary:?}");
    assert_eq!(summary["complete"], 2, "{summary:?}");
    latency_of(summary);
}

#[tokio::test]
async fn text_output_is_greetings_only_and_the_summary_is_logged_at_info_on_request() {
    let app = TestApp::new().await;
    app.consumer("hello").await;
    app.consumer("goodbye").await;

    let quiet = producer(&app, &["Ada"]).await;
    let mut command = app.command(PRODUCER);
    command
        .args(["Ada", "Bob"])
        .env("RUST_LOG", "producer=info");
    let logged = run_to_end(&mut command, None).await;

    assert_eq!(quiet.code, Some(0), "{quiet:?}");
    assert_eq!(quiet.stdout, "hello Ada\ngoodbye Ada\n");
    assert_eq!(quiet.stderr, "", "the producer logs at warn by default");
    assert_eq!(logged.code, Some(0), "{logged:?}");
    assert_eq!(
        logged.stdout,
        "hello Ada\ngoodbye Ada\nhello Bob\ngoodbye Bob\n"
    );
    let line = logged
        .stderr
        .lines()
        .find(|l| l.contains("run statistics"))
        .unwrap_or_else(|| panic!("an info line with the statistics:\n{}", logged.stderr));
    assert!(line.contains(" INFO "), "{line}");
    for field in [
        "sent=2 ",
        "complete=2 ",
        "incomplete=0 ",
        "error_replies=0 ",
        "p50_ms=",
        "p90_ms=",
        "p99_ms=",
        "max_ms=",
        "stray=0 ",
        "duplicates=0 ",
        "retries=0 ",
    ] {
        assert!(line.contains(field), "{field:?} in {line}");
    }
}
