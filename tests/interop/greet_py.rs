//! A client in another language (Python + pika, `examples/python/greet.py`),
//! written from the documented contract only, gets both replies.

use std::{path::PathBuf, process::Stdio};

use fixtures::python::python;

use testkit::TestApp;

#[tokio::test]
async fn a_python_client_following_the_contract_gets_both_replies() {
    let app = TestApp::new().await;
    let _hello = app.consumer_bin("hello", &[]).await;
    let _goodbye = app.consumer_bin("goodbye", &[]).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/python/greet.py");

    let output = tokio::process::Command::new(python())
        .arg(script)
        .args([
            "--url",
            &app.url,
            "--prefix",
            &app.prefix,
            "--timeout",
            "10",
            "Ada",
            "Zoë",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run the Python client");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "pika is not installed for this interpreter: run scripts/test.sh\n{stderr}"
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(stdout, "hello Ada\ngoodbye Ada\nhello Zoë\ngoodbye Zoë\n");
}
