//! A responder that follows only contract v1 (`tests/support/v1_responder.py`,
//! Python + pika) beside a current consumer: batch 1 works with both, and a
//! batch gets one refusal from the v1 responder standing for every name.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use fixtures::{
    python::python,
    replies::{error_code_of, greeting_of, words},
};
use rabbit_gather::protocol::{Name, names::INVALID_REQUEST};
use testkit::{EVENT_TIMEOUT, TestApp, run_producer};
use tokio::io::{AsyncBufReadExt, BufReader};

/// `tests/support/v1_responder.py` serving `word`: a consumer that follows
/// only contract v1 (see the script). Killed when dropped.
struct V1Responder {
    _child: tokio::process::Child,
    printed: Arc<Mutex<Vec<String>>>,
}

impl V1Responder {
    async fn start(app: &TestApp, word: &str) -> Self {
        app.own_queue(&format!("{}.{word}", app.prefix));
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/v1_responder.py");
        let mut child = tokio::process::Command::new(python())
            .arg(script)
            .args(["--url", &app.url, "--prefix", &app.prefix, "--word", word])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the v1 responder");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
        let first = tokio::time::timeout(EVENT_TIMEOUT, lines.next_line())
            .await
            .expect("the v1 responder starts in time")
            .expect("read its stdout");
        assert_eq!(
            first.as_deref(),
            Some(format!("consuming {}.{word}", app.prefix).as_str()),
            "the v1 responder did not start (pika missing? run scripts/test.sh)"
        );
        let printed = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&printed);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().expect("lock").push(line);
            }
        });
        Self {
            _child: child,
            printed,
        }
    }

    fn printed(&self) -> Vec<String> {
        self.printed.lock().expect("lock").clone()
    }
}

#[tokio::test]
async fn a_v1_only_responder_works_with_batch_1_and_refuses_each_name_of_a_batch() {
    let app = TestApp::new().await;
    let hello = app.consumer("hello").await;
    let old = V1Responder::start(&app, "old").await;
    let names = ["Ada", "Bob", "Zoë"];

    let mut args = vec!["--expect", "hello,old", "--batch", "1"];
    args.extend(names);
    let run = run_producer(&app, &args, None).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "hello Ada\nold Ada\nhello Bob\nold Bob\nhello Zoë\nold Zoë\n"
    );
    assert_eq!(old.printed(), ["old Ada", "old Bob", "old Zoë"]);

    // A batch to the v1 responder: it refuses the body (v1: no string
    // "name"), and that one error reply stands for every name of the batch;
    // the v1.1 consumer answers each name.
    let client = app.client().await;
    let batch = [
        Name::parse("Cy").expect("valid"),
        Name::parse("Dee").expect("valid"),
    ];
    let results = client
        .call_batch::<_, String>(&batch, &words(&["hello", "old"]), Duration::from_secs(10))
        .await
        .expect("batch call");
    assert_eq!(results.len(), 2);
    for (name, gathered) in batch.iter().zip(&results) {
        assert!(gathered.missing.is_empty(), "{name}: {gathered:?}");
        assert_eq!(
            greeting_of(gathered, "hello"),
            Some(format!("hello {name}").as_str())
        );
        assert_eq!(error_code_of(gathered, "old"), Some(INVALID_REQUEST));
    }
    assert_eq!(client.stats().malformed, 0, "{:?}", client.stats());
    assert_eq!(old.printed().len(), 3, "the v1 responder greeted no batch");
    client.close().await;
    hello.stop().await;
}
