//! The real `producer` and `consumer` executables, black-box: output, exit
//! codes and timing as a user sees them.

use std::time::Duration;

use lapin::uri::AMQPUri;

use testkit::{TestApp, kill_connection, run_producer, run_producer_with, wait_until};

#[tokio::test]
async fn producer_prints_every_greeting_in_input_order_and_exits_0() {
    let app = TestApp::new().await;
    let hello = app.consumer_bin("hello", &[]).await;
    let goodbye = app.consumer_bin("goodbye", &[]).await;

    let run = run_producer(&app, &["Ada", "Bob"], None).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "hello Ada\ngoodbye Ada\nhello Bob\ngoodbye Bob\n"
    );
    assert_eq!(run.stderr, "");
    let (code, lines) = hello.terminate().await;
    assert_eq!(
        (code, lines),
        (0, vec!["hello Ada".to_owned(), "hello Bob".to_owned()])
    );
    let (code, lines) = goodbye.terminate().await;
    assert_eq!(
        (code, lines),
        (0, vec!["goodbye Ada".to_owned(), "goodbye Bob".to_owned()])
    );
}

#[tokio::test]
async fn producer_streams_stdin_reporting_bad_lines_with_their_number() {
    let app = TestApp::new().await;
    let _hello = app.consumer_bin("hello", &[]).await;
    let _goodbye = app.consumer_bin("goodbye", &[]).await;

    let names: String = (1..=300).map(|i| format!("n{i}\n")).collect();
    let input = format!("Zoë\r\n\n   \n{names}");
    let run = run_producer(&app, &["--concurrency", "16"], Some(&input)).await;

    assert_eq!(run.code, 2, "a bad line makes the run exit 2: {run:?}");
    assert!(
        run.stderr.contains("line 3: invalid name \"   \""),
        "{}",
        run.stderr
    );
    let expected: String = std::iter::once("Zoë".to_owned())
        .chain((1..=300).map(|i| format!("n{i}")))
        .map(|n| format!("hello {n}\ngoodbye {n}\n"))
        .collect();
    assert_eq!(run.stdout, expected);
}

#[tokio::test]
async fn producer_json_lists_replies_missing_and_errors() {
    let app = TestApp::new().await;
    let _hello = app.consumer_bin("hello", &[]).await;

    let run = run_producer(&app, &["--json", "--timeout", "500ms", "Ada"], None).await;

    assert_eq!(run.code, 3, "{run:?}");
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "one object for Ada, then the summary: {run:?}"
    );
    assert!(lines[1].get("summary").is_some(), "{}", lines[1]);
    assert_eq!(
        lines[0],
        serde_json::json!({
            "name": "Ada",
            "replies": {"hello": "hello Ada"},
            "missing": ["goodbye"],
            "errors": {}
        })
    );
}

#[tokio::test]
async fn a_stopped_consumer_gives_the_partial_result_and_exit_3_within_timeout_plus_1s() {
    let app = TestApp::new().await;
    let _hello = app.consumer_bin("hello", &[]).await;
    let goodbye = app.consumer_bin("goodbye", &[]).await;
    assert_eq!(goodbye.terminate().await.0, 0);

    let run = run_producer(&app, &["--timeout", "1s", "Ada"], None).await;

    run.assert_ended(
        3,
        "no reply from goodbye for \"Ada\" within 1s",
        Duration::from_secs(2),
    );
    assert_eq!(run.stdout, "hello Ada\n");
}

#[tokio::test]
async fn no_bound_queue_is_one_immediate_line_and_exit_5_however_many_names() {
    let app = TestApp::new().await;

    let args = ["--timeout", "30s", "Ada", "Bob", "Cy", "Dee", "Eve", "Flo"];
    let run = run_producer(&app, &args, None).await;

    run.assert_ended(5, "producer: no queue is bound", Duration::from_secs(5));
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, none per name:\n{}", run.stderr);
}

#[tokio::test]
async fn a_wrong_password_is_one_line_naming_the_refused_login_and_exit_4() {
    let app = TestApp::new().await;
    let mut uri: AMQPUri = app.url.parse().expect("the test broker's URL parses");
    uri.authority.userinfo.password = "n0t-the-password".to_owned();
    let url = uri.to_string();

    let run = run_producer(&app, &["--amqp-url", &url, "Ada"], None).await;

    assert_eq!(run.code, 4, "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line:\n{}", run.stderr);
    let line = lines[0];
    assert!(line.starts_with("producer: cannot connect to "), "{line}");
    assert!(line.contains("ACCESS_REFUSED"), "names the cause: {line}");
    assert_eq!(
        line.matches("Login was refused").count(),
        1,
        "the cause once, not once per link of the error chain: {line}"
    );
    assert!(!line.contains("n0t-the-password"), "{line}");
}

#[tokio::test]
async fn invalid_names_exit_2_and_nothing_is_sent() {
    let app = TestApp::new().await;
    let hello = app.consumer_bin("hello", &[]).await;
    let long = "x".repeat(101);

    let run = run_producer(&app, &["--expect", "hello", "Ada", "", &long], None).await;
    run.assert_exit(2, "argument 2: invalid name \"\": name is empty");
    assert!(run.stderr.contains("argument 3"), "{}", run.stderr);
    assert_eq!(run.stdout, "");

    // FIFO queue, prefetch 1: once Bob is answered, anything sent before
    // would have been printed first.
    let run = run_producer(&app, &["--expect", "hello", "Bob"], None).await;
    assert_eq!(run.code, 0, "{run:?}");
    let (_, lines) = hello.terminate().await;
    assert_eq!(lines, ["hello Bob"]);
}

#[tokio::test]
async fn bad_flags_and_settings_exit_2() {
    let app = TestApp::new().await;
    for args in [
        &["--timeout", "soon", "Ada"][..],
        &["--concurrency", "0", "Ada"],
        &["--expect", "bad word", "Ada"],
        &["--no-such-flag"],
    ] {
        let run = run_producer(&app, args, None).await;
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(!run.stderr.is_empty(), "{args:?} explains itself");
    }
}

#[tokio::test]
async fn an_unreachable_broker_exits_4_without_showing_the_password() {
    let app = TestApp::new().await;
    let run = run_producer(
        &app,
        &["--amqp-url", "amqp://guest:s3cr3t@127.0.0.1:1/%2f", "Ada"],
        None,
    )
    .await;
    run.assert_exit(4, "cannot connect to amqp://guest:***@127.0.0.1:1");
    assert!(!run.stderr.contains("s3cr3t"), "{}", run.stderr);
}

#[tokio::test]
async fn a_lost_connection_without_retries_is_one_line_with_its_cause_and_exit_4() {
    let app = TestApp::new().await;
    // A bound queue nobody consumes: the request waits there, the call in flight.
    app.consumer("hello").await.stop().await;
    let raw = app.raw().await;
    let queue = format!("{}.hello", app.prefix);
    let args = ["--expect", "hello", "--timeout", "60s", "Ada"];
    let producer = tokio::spawn(run_producer_with(
        app.env(),
        args.iter().map(|a| (*a).to_owned()).collect(),
        None,
    ));
    wait_until("the request waits in the queue", || {
        let (raw, queue) = (&raw, &queue);
        async move { raw.queue_counts(queue).await == (1, 0) }
    })
    .await;

    kill_connection(&format!("greetings-producer {}", app.prefix)).await;
    let run = producer.await.expect("producer task");

    assert_eq!(run.code, 4, "{run:?}");
    // The warning that nobody consumes hello (true here), then the failure.
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "a warning and one line:\n{}", run.stderr);
    assert!(
        lines[0].starts_with("producer: no consumer is attached to "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("producer: the connection to the broker was lost: "),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("CONNECTION_FORCED"),
        "names the cause: {}",
        lines[1]
    );
}

#[tokio::test]
async fn the_benchmark_runs_both_lanes_and_reports_no_loss() {
    // A smoke test of the README's benchmark command on a tiny run: figures
    // are not checked here (they belong to the benchmark, not to tests).
    let app = TestApp::new().await;
    let output = tokio::process::Command::new(testkit::bin("bench"))
        .args([
            "--spawn-consumers",
            "--baseline",
            "--pairs",
            "1",
            "-n",
            "200",
            "--warmup",
            "20",
            "--json",
        ])
        .args(["--amqp-url", &app.url, "--prefix", &app.prefix])
        .output()
        .await
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "system row, ceiling row, summary: {stdout}");
    for row in &lines[..2] {
        assert_eq!(row["requests"], 200, "{row}");
        assert_eq!(row["lost"], 0, "{row}");
        assert_eq!(row["errors"], 0, "{row}");
    }
    assert_eq!(lines[0]["lane"], "system");
    assert_eq!(lines[1]["lane"], "ceiling");
    assert!(
        lines[2]["median_throughput_ratio"]
            .as_f64()
            .is_some_and(|r| r > 0.0)
    );
}

/// stdout is block-buffered for speed in bulk; a reader that waits for a
/// name's greetings before it sends the next name must still get them.
#[tokio::test]
async fn each_names_greetings_are_written_before_the_next_name_is_read() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let app = TestApp::new().await;
    let (hello, goodbye) = app.greeters().await;
    let mut producer = app
        .command(testkit::bin("producer"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("start the producer");
    let mut stdin = producer.stdin.take().expect("piped stdin");
    let stdout = producer.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();

    for name in ["Ada", "Bob", "Cy"] {
        stdin
            .write_all(format!("{name}\n").as_bytes())
            .await
            .expect("write a name");
        stdin.flush().await.expect("flush stdin");
        let mut greeted = Vec::new();
        for _ in 0..2 {
            let line = testkit::within(&format!("{name}'s greetings"), lines.next_line())
                .await
                .expect("read stdout")
                .expect("a line, not the end of stdout");
            greeted.push(line);
        }
        assert_eq!(
            greeted,
            [format!("hello {name}"), format!("goodbye {name}")],
            "{name}'s greetings, with stdin still open"
        );
    }
    drop(stdin);
    let status = testkit::within("the end of the producer", producer.wait())
        .await
        .expect("the producer ends");
    assert_eq!(status.code(), Some(0));
    testkit::stop_all([hello, goodbye]).await;
}
