//! A client in another language (Python + pika, `examples/python/greet.py`),
//! written from the documented contract only, gets both replies.

use std::{path::PathBuf, process::Stdio};

use crate::helpers::TestApp;

/// The Python interpreter with pika: `GREETINGS_PYTHON`, else the project's
/// `.venv` made by `scripts/test.sh`.
pub(crate) fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var_os("GREETINGS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh (it creates .venv with pika), \
         or set GREETINGS_PYTHON to a python3 with `pip install -r examples/python/requirements.txt`",
        python.display()
    );
    python
}

/// Runs `tests/support/<script>` with `args` under [`python`], failing the
/// test unless it exits 0 within `timeout`; its stdout.
pub(crate) async fn run_support_script(
    script: &str,
    args: &[&str],
    timeout: std::time::Duration,
) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("support")
        .join(script);
    let output = tokio::process::Command::new(python())
        .arg(path)
        .args(args)
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(timeout, output)
        .await
        .unwrap_or_else(|_| panic!("{script} ends within {timeout:?}"))
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{script}: stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

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
