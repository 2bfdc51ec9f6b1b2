//! Least privilege, on a private node started with the repository's
//! `rabbitmq/rabbitmq.conf` and the users and permissions that
//! `scripts/gen-definitions.sh` generates (as the compose `init` service
//! does): each user can do its job and the broker refuses everything else.

use std::{path::PathBuf, time::Duration};

use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{
        BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::FieldTable,
};
use rabbit_gather::Settings;

use fixtures::python::run_support_script;
use testkit::support::node::PrivateNode;
use testkit::{TestApp, bin, call_ada, queue_counts};

struct Secured {
    node: PrivateNode,
    app: TestApp,
    secrets: tempfile::TempDir,
}

impl Secured {
    async fn start() -> Self {
        let secrets = tempfile::tempdir().expect("temp dir");
        let prefix = format!("test.{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let status = std::process::Command::new(root.join("scripts/gen-definitions.sh"))
            .args(["--prefix", &prefix])
            .arg(secrets.path())
            .args(["hello", "goodbye"])
            .status()
            .expect("run gen-definitions.sh");
        assert!(status.success(), "gen-definitions.sh failed");
        let config = std::fs::read_to_string(root.join("rabbitmq/rabbitmq.conf"))
            .expect("the repository's rabbitmq.conf");
        let extra = format!(
            "{config}\nload_definitions = {}\n",
            secrets.path().join("definitions.json").display()
        );
        let admin = std::fs::read_to_string(secrets.path().join("admin.password")).expect("admin");
        let node = PrivateNode::start_as(&extra, &format!("admin:{admin}"), "greetings").await;
        let mut app = TestApp::on(&node.url()).await;
        app.prefix.clone_from(&prefix);
        app.settings.topology.prefix = prefix;
        Self { node, app, secrets }
    }

    /// Settings for `user`: its URL without a password, and its password file.
    fn settings(&self, user: &str) -> Settings {
        let mut settings = self.app.settings.clone();
        settings.amqp.url = self.user_url(user).into();
        settings.amqp.password_file = Some(self.secrets.path().join(format!("{user}.password")));
        // As compose runs them: exclusive reply queues, and consumers whose
        // users may not write to the default exchange.
        settings.rpc.reply_queue = rabbit_gather::settings::ReplyQueue::Exclusive;
        settings.consumer.direct_reply_to = false;
        settings
    }

    fn user_url(&self, user: &str) -> String {
        format!("amqp://{user}@127.0.0.1:{}/greetings", self.node.port())
    }

    /// `user`'s URL with its password in it.
    fn password_url(&self, user: &str) -> String {
        let password =
            std::fs::read_to_string(self.secrets.path().join(format!("{user}.password")))
                .expect("password file");
        format!(
            "amqp://{user}:{password}@127.0.0.1:{}/greetings",
            self.node.port()
        )
    }

    async fn connect(&self, user: &str) -> Connection {
        Connection::connect(&self.password_url(user), ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("{user} connects: {e}"))
    }
}

/// Whether the broker refused `what` with ACCESS_REFUSED (403).
fn refused(what: &str, result: Result<impl std::fmt::Debug, lapin::Error>) {
    match result {
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains("ACCESS_REFUSED") || text.contains("ACCESS-REFUSED"),
                "{what}: {text}"
            );
        }
        Ok(ok) => panic!("{what} was allowed: {ok:?}"),
    }
}

/// Publishes a request-shaped message on a new confirm-mode channel and
/// waits for the confirm: a refusal closes the channel, and the confirm
/// carries its reason.
async fn publish_confirmed(
    connection: &Connection,
    exchange: &str,
    key: &str,
) -> Result<lapin::Confirmation, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    channel
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            br#"{"name":"Eve"}"#,
            BasicProperties::default(),
        )
        .await?
        .await
}

#[tokio::test]
async fn each_user_does_its_job_and_the_broker_refuses_everything_else() {
    let secured = Secured::start().await;
    let app = &secured.app;
    let prefix = app.prefix.clone();
    let hello = app
        .consumer_with("hello", &secured.settings("hello"), None)
        .await;
    let goodbye = app
        .consumer_with("goodbye", &secured.settings("goodbye"), None)
        .await;
    let gathered = call_ada(&secured.settings("producer"), &["hello", "goodbye"]).await;
    assert!(gathered.is_complete(), "the full RPC works: {gathered:?}");

    let producer = secured.connect("producer").await;
    let consume = |queue: String| {
        let connection = &producer;
        async move {
            let channel = connection.create_channel().await.expect("channel");
            channel
                .basic_consume(
                    queue.into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
        }
    };
    refused(
        "producer consumes a request queue",
        consume(format!("{prefix}.hello")).await,
    );
    let channel = producer.create_channel().await.expect("channel");
    refused(
        "producer declares a queue",
        channel
            .queue_declare(
                format!("{prefix}.mine").into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await,
    );
    let channel = producer.create_channel().await.expect("channel");
    refused(
        "producer declares a queue under the reply exchange's name but not a reply queue",
        channel
            .queue_declare(
                format!("{prefix}.replyish").into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await,
    );
    let channel = producer.create_channel().await.expect("channel");
    refused(
        "producer binds a queue",
        channel
            .queue_bind(
                format!("{prefix}.hello").into(),
                prefix.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await,
    );

    let word = secured.connect("hello").await;
    for (what, exchange, key) in [
        (
            "a consumer publishes a request",
            prefix.clone(),
            String::new(),
        ),
        // No write on the default exchange nor on another word's retry
        // exchange: a word cannot aim a message at another word's queue.
        (
            "the hello consumer publishes into goodbye's queue through the default exchange",
            String::new(),
            format!("{prefix}.goodbye"),
        ),
        (
            "the hello consumer publishes into goodbye's queue through goodbye's retry exchange",
            format!("{prefix}.goodbye.retry"),
            "due".to_owned(),
        ),
    ] {
        refused(what, publish_confirmed(&word, &exchange, &key).await);
    }
    let channel = word.create_channel().await.expect("channel");
    refused(
        "the hello consumer consumes goodbye's queue",
        channel
            .basic_consume(
                format!("{prefix}.goodbye").into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await,
    );

    // Every other cross-role action, with each service's own credential
    // (the list lives in the script, which the compose test runs too).
    for (role, other) in [
        ("hello", "goodbye"),
        ("goodbye", "hello"),
        ("producer", "hello"),
    ] {
        let url = secured.password_url(role);
        let out = run_support_script(
            "cross_role.py",
            &[&url, &prefix, role, other],
            Duration::from_secs(120),
        )
        .await;
        println!("{role}: {out}");
        let report: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON report");
        assert_eq!(report["allowed"], serde_json::json!([]), "{role}: {out}");
        assert!(
            report["refused"].as_array().is_some_and(|r| r.len() >= 20),
            "{role}: {out}"
        );
    }

    let guest = Connection::connect(
        &format!("amqp://guest:guest@127.0.0.1:{}/%2f", secured.node.port()),
        ConnectionProperties::default(),
    )
    .await;
    assert!(guest.is_err(), "guest is refused");
    testkit::stop_all([hello, goodbye]).await;
}

#[tokio::test]
async fn a_wrong_password_is_one_clear_line_and_exit_4_from_both_binaries() {
    let secured = Secured::start().await;
    let wrong = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(wrong.path(), "not-the-password").expect("write");
    for (program, user, args) in [
        ("producer", "producer", vec!["Ada"]),
        ("consumer", "hello", vec!["hello"]),
    ] {
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(bin(program))
                .args(&args)
                .env("AMQP_URL", secured.user_url(user))
                .env("GREETINGS_AMQP__PASSWORD_FILE", wrong.path())
                .env("GREETINGS_TOPOLOGY__PREFIX", &secured.app.prefix)
                .env_remove("RUST_LOG")
                .output(),
        )
        .await
        .expect("exits in time")
        .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        println!("{program} with a wrong password: {stderr}");
        assert_eq!(output.status.code(), Some(4), "{program}: {stderr}");
        assert!(
            stderr.contains("ACCESS_REFUSED") || stderr.contains("ACCESS-REFUSED"),
            "{program}: {stderr}"
        );
        assert!(!stderr.contains("not-the-password"), "{program}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{program}: one line: {stderr}");
    }
}

#[tokio::test]
async fn a_letter_a_word_forges_is_replayed_to_that_word_alone() {
    let secured = Secured::start().await;
    let app = &secured.app;
    let prefix = app.prefix.clone();
    for word in ["hello", "goodbye"] {
        app.consumer_with(word, &secured.settings(word), None)
            .await
            .stop()
            .await;
    }
    // A dead letter is within hello's role; one that claims to come from
    // goodbye's queue is the forgery.
    let hello = secured.connect("hello").await;
    let channel = hello.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let mut headers = FieldTable::default();
    headers.insert(
        "x-greetings-queue".into(),
        lapin::types::AMQPValue::LongString(format!("{prefix}.goodbye").into()),
    );
    let confirmation = channel
        .basic_publish(
            format!("{prefix}.hello.retry").as_str().into(),
            "dead".into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            br#"{"name":"Mallory"}"#,
            BasicProperties::default()
                .with_correlation_id("forged".into())
                .with_headers(headers),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(
        matches!(confirmation, lapin::Confirmation::Ack(None)),
        "hello's letter reaches the dead-letter queue: {confirmation:?}"
    );

    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(bin("dead-letters"))
            .args(["replay", "--all"])
            .envs(app.env())
            .env_remove("RUST_LOG")
            .output(),
    )
    .await
    .expect("replay ends in time")
    .expect("replay runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("replayed 1,"), "{stdout}");
    // Each replay was confirmed, so it is routed: counting is exact.
    let admin = Connection::connect(&app.url, ConnectionProperties::default())
        .await
        .expect("admin connects");
    for (queue, expected) in [
        ("hello.due", 1),
        ("hello", 0),
        ("goodbye", 0),
        ("goodbye.due", 0),
        ("dead", 0),
    ] {
        let queue = format!("{prefix}.{queue}");
        assert_eq!(queue_counts(&admin, &queue).await.0, expected, "{queue}");
    }
}
