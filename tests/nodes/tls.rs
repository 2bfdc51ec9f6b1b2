//! `amqps://` against a private node with a TLS listener and certificates
//! made by `scripts/gen-dev-certs.sh`: an RPC over TLS, the server's
//! certificate checked against the configured CA, mutual TLS, and the clear
//! errors when any of it is wrong.

use std::path::PathBuf;

use rabbit_gather::{
    Settings,
    amqp::{self, ConnectError},
};

use testkit::support::node::{PrivateNode, free_port};
use testkit::{TestApp, call_ada};

/// Certificates in a fresh temporary directory, made by the project's script.
fn certificates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/gen-dev-certs.sh");
    let status = std::process::Command::new(script)
        .arg(dir.path())
        .status()
        .expect("run gen-dev-certs.sh");
    assert!(status.success(), "gen-dev-certs.sh failed");
    dir
}

/// A node with a TLS listener on its own port; `require_client_cert` turns
/// on mutual TLS.
async fn tls_node(certs: &tempfile::TempDir, require_client_cert: bool) -> (PrivateNode, u16) {
    let port = free_port();
    let file = |name: &str| certs.path().join(name).display().to_string();
    let config = format!(
        "listeners.ssl.1 = 127.0.0.1:{port}\n\
         listeners.ssl.2 = 127.0.0.2:{port}\n\
         ssl_options.cacertfile = {}\n\
         ssl_options.certfile = {}\n\
         ssl_options.keyfile = {}\n\
         ssl_options.verify = verify_peer\n\
         ssl_options.fail_if_no_peer_cert = {require_client_cert}\n",
        file("ca.pem"),
        file("server.pem"),
        file("server.key"),
    );
    (PrivateNode::start_with(&config).await, port)
}

fn tls_settings(
    app: &TestApp,
    port: u16,
    certs: &tempfile::TempDir,
    client_cert: bool,
) -> Settings {
    let mut settings = app.settings.clone();
    settings.amqp.url = format!("amqps://guest:guest@localhost:{port}/%2f").into();
    settings.amqp.tls.ca_file = Some(certs.path().join("ca.pem"));
    if client_cert {
        settings.amqp.tls.cert_file = Some(certs.path().join("client.pem"));
        settings.amqp.tls.key_file = Some(certs.path().join("client.key"));
    }
    settings
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    rabbit_gather::report::one_line(error)
}

#[tokio::test]
async fn an_rpc_over_amqps_works_and_a_wrong_ca_or_a_plain_client_is_refused_clearly() {
    let certs = certificates();
    let (node, port) = tls_node(&certs, false).await;
    let app = TestApp::on(&node.url()).await;
    // guest may only log in from localhost: the TLS URL names localhost.
    let settings = tls_settings(&app, port, &certs, false);
    let hello = app.consumer_with("hello", &settings, None).await;
    assert!(
        call_ada(&settings, &["hello"]).await.is_complete(),
        "an RPC over amqps:// completes"
    );

    // Certificates of another CA: the broker's certificate is refused.
    let other = certificates();
    let mut wrong_ca = settings.clone();
    wrong_ca.amqp.tls.ca_file = Some(other.path().join("ca.pem"));
    let error = amqp::connect(&wrong_ca.amqp, "wrong ca")
        .await
        .expect_err("refused");
    let text = chain(&error);
    println!("wrong CA: {text}");
    assert!(matches!(error, ConnectError::Unreachable { .. }), "{text}");
    assert!(
        text.to_lowercase().contains("certificate"),
        "names the cause: {text}"
    );

    // An address the certificate does not carry (the node listens there too).
    let mut wrong_name = settings.clone();
    wrong_name.amqp.url = format!("amqps://guest:guest@127.0.0.2:{port}/%2f").into();
    let error = amqp::connect(&wrong_name.amqp, "wrong name")
        .await
        .expect_err("refused");
    println!("wrong name: {}", chain(&error));
    assert!(
        chain(&error).to_lowercase().contains("certificate"),
        "{}",
        chain(&error)
    );

    // A plain AMQP client on the TLS port.
    let mut plain = settings.clone();
    plain.amqp.url = format!("amqp://guest:guest@localhost:{port}/%2f").into();
    plain.amqp.tls = Default::default();
    let error = amqp::connect(&plain.amqp, "plain")
        .await
        .expect_err("refused");
    println!("plain client on the TLS port: {}", chain(&error));
    assert!(
        chain(&error).contains(&format!("localhost:{port}")),
        "{}",
        chain(&error)
    );
    hello.stop().await;
}

#[tokio::test]
async fn mutual_tls_admits_a_client_certificate_and_refuses_a_client_without_one() {
    let certs = certificates();
    let (node, port) = tls_node(&certs, true).await;
    let app = TestApp::on(&node.url()).await;
    let settings = tls_settings(&app, port, &certs, true);
    let hello = app.consumer_with("hello", &settings, None).await;
    assert!(
        call_ada(&settings, &["hello"]).await.is_complete(),
        "an RPC with client certificates completes"
    );

    let without = tls_settings(&app, port, &certs, false);
    let error = amqp::connect(&without.amqp, "no client cert")
        .await
        .expect_err("refused");
    println!("no client certificate: {}", chain(&error));
    assert!(
        matches!(error, ConnectError::Unreachable { .. }),
        "{}",
        chain(&error)
    );
    hello.stop().await;
}
