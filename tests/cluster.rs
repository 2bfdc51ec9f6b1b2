//! On the 3-node cluster of `scripts/cluster.sh` (started by
//! `scripts/test.sh` before these tests, `scripts/cluster.sh up` by hand):
//! quorum queues, services spread over the nodes, and a node killed under
//! load. The tests run one at a time (they kill nodes) and leave every node
//! running.
//!
//! A target of its own, left out of a plain `cargo test`: `scripts/cluster.sh
//! up`, then `cargo test -p greetings-tests --test cluster -- --test-threads 1`
//! (scripts/test.sh does both).

// A failed expectation is a failed test: panicking is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use rabbit_gather::Settings;
use rabbit_gather::settings::QueueType;
use tokio::{
    sync::{Mutex, MutexGuard},
    task::JoinHandle,
};

use testkit::support::ledger::Ledger;
use testkit::{ProducerRun, RunningConsumer, TestApp, run_producer_with_stats, wait_until};

/// One test at a time on the cluster: they kill nodes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster.sh")
}

/// Runs `scripts/cluster.sh ARGS`; its stdout.
async fn cluster(args: &[&str]) -> String {
    let output = tokio::process::Command::new(script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run scripts/cluster.sh");
    assert!(
        output.status.success(),
        "scripts/cluster.sh {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The cluster's nodes (name, URL), all running, or a clear failure.
async fn nodes() -> Vec<(String, String)> {
    let status = cluster(&["status"]).await;
    let nodes: Vec<(String, String, String)> = status
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((
                parts.next()?.to_owned(),
                parts.next()?.to_owned(),
                parts.next()?.to_owned(),
            ))
        })
        .collect();
    assert!(
        nodes.len() == 3 && nodes.iter().all(|(_, _, state)| state == "running"),
        "the cluster is not up: run scripts/cluster.sh up first, then \
         cargo test -p greetings-tests --test cluster -- --test-threads 1 \
         (scripts/test.sh does both):\n{status}"
    );
    nodes.into_iter().map(|(n, u, _)| (n, u)).collect()
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i}")).collect()
}

fn lines(names: &[String]) -> String {
    names.iter().map(|n| format!("{n}\n")).collect()
}

/// Runs RabbitMQ CLI `tool` as node `node` (`greetings-cN@localhost`), with
/// that node's HOME (its Erlang cookie); stdout.
async fn cli(tool: &str, node: &str, args: &[&str]) -> String {
    let dir = std::env::var("CLUSTER_DIR").unwrap_or_else(|_| "/tmp/greetings-cluster".to_owned());
    let index = node
        .trim_start_matches("greetings-c")
        .chars()
        .next()
        .unwrap_or('1');
    let output = tokio::process::Command::new(format!("/usr/lib/rabbitmq/bin/{tool}"))
        .args(["-n", node, "-q"])
        .args(args)
        .env("HOME", format!("{dir}/c{index}"))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(
        output.status.success(),
        "{tool} -n {node} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The node leading quorum queue `queue` (`rabbitmq-queues quorum_status`,
/// asked of node `ask`).
async fn leader_of(queue: &str, ask: &str) -> String {
    let text = cli("rabbitmq-queues", ask, &["quorum_status", queue]).await;
    text.lines()
        .find(|l| l.contains("leader"))
        .and_then(|l| l.split_whitespace().find(|w| w.contains('@')))
        .map(|s| s.trim_matches('│').trim().to_owned())
        .unwrap_or_else(|| panic!("no leader for {queue} in:\n{text}"))
}

/// The node (of `nodes`) a connection named `name` is on, from the server
/// port `rabbitmqctl list_connections` (asked of node `ask`) reports.
async fn node_of_connection(nodes: &[(String, String)], ask: &str, name: &str) -> String {
    let listing = cli(
        "rabbitmqctl",
        ask,
        &["list_connections", "port", "client_properties"],
    )
    .await;
    let named = format!("\"connection_name\",\"{name}\"");
    let port = listing
        .lines()
        .find(|l| l.contains(&named))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no connection {name:?} in:\n{listing}"));
    nodes
        .iter()
        .find(|(_, url)| url.contains(&format!(":{port}/")))
        .map(|(node, _)| node.clone())
        .unwrap_or_else(|| panic!("no node on port {port}"))
}

/// Consumer replicas connected to different nodes share one quorum queue's
/// work.
#[tokio::test]
async fn replicas_on_different_nodes_share_the_work() {
    let (_alone, nodes, app, settings, env) = on_cluster().await;
    let mut replicas = Vec::new();
    for (_, url) in &nodes {
        let mut on_node = settings.clone();
        on_node.amqp.url = url.clone().into();
        replicas.push(app.consumer_with("hello", &on_node, None).await);
    }
    let names = names(1000);
    let run = run_producer_with_stats(
        env,
        ["--expect", "hello", "--timeout", "30s"]
            .map(str::to_owned)
            .to_vec(),
        Some(lines(&names)),
    )
    .await;
    let ledger = ledger_of(
        &names,
        &["hello"],
        &run,
        &replicas.iter().collect::<Vec<_>>(),
    );
    let split: Vec<String> = replicas
        .iter()
        .zip(&nodes)
        .map(|(r, (node, _))| format!("{node}={}", r.printed().len()))
        .collect();
    ledger.print("replicas on three nodes");
    println!("split of 1,000 requests: {}", split.join(" "));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(ledger.lost, 0);
    assert!(
        replicas.iter().all(|r| !r.printed().is_empty()),
        "every replica took a share: {split:?}"
    );
    for replica in replicas {
        replica.stop().await;
    }
}

/// One cluster test's world: the cluster to itself (the tests kill nodes,
/// the guard holds it), its nodes (name, URL), a test on the first node,
/// settings for services on quorum queues that know every node, and the
/// producer's environment aimed at every node.
async fn on_cluster() -> (
    MutexGuard<'static, ()>,
    Vec<(String, String)>,
    TestApp,
    Settings,
    Vec<(String, String)>,
) {
    let alone = ONE_AT_A_TIME.lock().await;
    let nodes = nodes().await;
    let all = urls(&nodes);
    let app = TestApp::on(&nodes[0].1).await;
    let mut settings = app.settings.clone();
    settings.topology.queue_type = QueueType::Quorum;
    settings.amqp.url = all.clone().into();
    let mut env = app.env();
    env.push(("AMQP_URL".to_owned(), all));
    (alone, nodes, app, settings, env)
}

/// The producer's flags for a run that rides out a node's loss.
const LONG_RUN: [&str; 6] = ["--retries", "10", "--timeout", "60s", "--concurrency", "64"];

/// Starts a [`LONG_RUN`] of `names` in the background.
fn spawn_long_run(env: &[(String, String)], names: &[String]) -> JoinHandle<ProducerRun> {
    tokio::spawn(run_producer_with_stats(
        env.to_vec(),
        LONG_RUN.map(str::to_owned).to_vec(),
        Some(lines(names)),
    ))
}

/// Waits until `consumer` has answered `count` names.
async fn under_way(consumer: &RunningConsumer, count: usize) {
    wait_until("the run is well under way", || {
        let done = consumer.printed().len();
        async move { done >= count }
    })
    .await;
}

/// The ledger of `run`, with what `consumers` handled.
fn ledger_of(
    names: &[String],
    words: &[&str],
    run: &ProducerRun,
    consumers: &[&RunningConsumer],
) -> Ledger {
    let handled: Vec<String> = consumers.iter().flat_map(|c| c.printed()).collect();
    Ledger::from_output(names, words, &run.stdout)
        .with_handled(handled.iter().map(String::as_str))
        .with_duplicate_replies(run.duplicate_replies())
}

/// Waits until `scripts/cluster.sh status` shows every node running.
async fn every_node_runs(what: &str) {
    wait_until(what, || async {
        cluster(&["status"])
            .await
            .lines()
            .all(|l| l.ends_with("running"))
    })
    .await;
}

fn urls(nodes: &[(String, String)]) -> String {
    nodes
        .iter()
        .map(|(_, u)| u.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The node leading the word's queue is SIGKILLed mid-run: the services
/// move to the other nodes, the queue elects a new leader, nothing is lost.
#[tokio::test]
async fn killing_the_leader_of_the_queue_mid_run_loses_nothing() {
    let (_alone, nodes, app, settings, env) = on_cluster().await;
    let hello = app.consumer_with("hello", &settings, None).await;
    let goodbye = app.consumer_with("goodbye", &settings, None).await;
    let queue = format!("{}.hello", app.prefix);
    let leader = leader_of(&queue, &nodes[0].0).await;

    let names = names(5000);
    let producer = spawn_long_run(&env, &names);
    under_way(&hello, 1000).await;
    let killed = Instant::now();
    let before = hello.printed().len();
    cluster(&["kill", &leader]).await;
    let _restart = Restarter(leader.clone());
    // The window: from the kill until the word answers again.
    wait_until("hello answers again after the kill", || {
        let done = hello.printed().len();
        async move { done > before + 10 }
    })
    .await;
    let window = killed.elapsed();
    let run = producer.await.expect("producer task");
    let survivor = nodes
        .iter()
        .find(|(n, _)| *n != leader)
        .expect("a survivor");
    let new_leader = leader_of(&queue, &survivor.0).await;
    cluster(&["start", &leader]).await;

    let ledger = ledger_of(&names, &["hello", "goodbye"], &run, &[&hello, &goodbye]);
    ledger.print("leader of the hello queue killed");
    println!(
        "leader {leader} killed after {before} hello answers; hello answered again {:.2} s \
         later; new leader {new_leader}; run took {:.1} s",
        window.as_secs_f64(),
        run.elapsed.as_secs_f64()
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!((ledger.lost, ledger.printed_twice), (0, 0));
    assert_ne!(new_leader, leader);
    testkit::stop_all([hello, goodbye]).await;
    // Never leave a node down for the next test.
    every_node_runs("every node runs again").await;
}

/// Two of three nodes down: the last one pauses (`pause_minority`), so calls
/// fail clearly and at once (broker unreachable, exit 4), never a false
/// success or a hang; once the nodes are back, a run completes.
#[tokio::test]
async fn two_nodes_down_fail_calls_clearly_and_a_run_completes_once_they_return() {
    let (_alone, nodes, app, settings, env) = on_cluster().await;
    let hello = app.consumer_with("hello", &settings, None).await;
    let args = ["--expect", "hello", "--timeout", "5s", "--retries", "3"].map(str::to_owned);

    cluster(&["kill", &nodes[1].0]).await;
    cluster(&["kill", &nodes[2].0]).await;
    let started = Instant::now();
    let failed = run_producer_with_stats(env.clone(), args.to_vec(), Some(lines(&names(5)))).await;
    let took = started.elapsed();
    println!(
        "two of three nodes down: exit {} after {:.2} s: {}",
        failed.code,
        took.as_secs_f64(),
        failed.stderr.lines().next().unwrap_or_default()
    );
    assert_eq!(failed.code, 4, "{failed:?}");
    assert!(
        failed.stdout.is_empty(),
        "no false success: {}",
        failed.stdout
    );
    assert!(
        took < Duration::from_secs(5) + UNAVAILABLE_BOUND,
        "within the deadline and {UNAVAILABLE_BOUND:?}: {took:?}"
    );

    let back = Instant::now();
    let (second, third) = (["start", &nodes[1].0], ["start", &nodes[2].0]);
    tokio::join!(cluster(&second), cluster(&third));
    let names = names(200);
    wait_until("a run completes once the nodes are back", || {
        let env = env.clone();
        let args = args.to_vec();
        let input = lines(&names);
        async move { run_producer_with_stats(env, args, Some(input)).await.code == 0 }
    })
    .await;
    println!(
        "nodes back: a run of 200 completed {:.1} s after the restarts began",
        back.elapsed().as_secs_f64()
    );
    hello.stop().await;
}

/// How long after its deadline a call may end when the cluster is
/// unavailable: one connection attempt per address, each refused at once by
/// a paused or dead node (at most `CONNECT_TIMEOUT`, 10 s, for one that does
/// not answer).
const UNAVAILABLE_BOUND: Duration = Duration::from_secs(10);

/// One node cut off from the other two (its distribution links refused):
/// it pauses (`pause_minority`), the services connected to it move to the
/// others, a run on the majority completes with nothing lost, and after
/// healing the cluster is whole and a run completes.
#[tokio::test]
async fn a_node_cut_off_from_the_other_two_pauses_its_clients_move_and_nothing_is_lost() {
    let (_alone, nodes, app, settings, env) = on_cluster().await;
    let hello = app.consumer_with("hello", &settings, None).await;
    let goodbye = app.consumer_with("goodbye", &settings, None).await;
    // Cut off the node the services are on, so that they must move.
    let consume = format!("greetings-consumer {} hello consume", app.prefix);
    let minority = node_of_connection(&nodes, &nodes[0].0, &consume).await;
    let majority = nodes
        .iter()
        .find(|(n, _)| *n != minority)
        .map(|(n, _)| n.clone())
        .expect("another node");

    let names = names(3000);
    let producer = spawn_long_run(&env, &names);
    under_way(&hello, 500).await;
    let cut = Instant::now();
    cluster(&["partition", &minority]).await;
    let _heal = Healer(minority.clone());
    hello.wait_for_sessions(2).await;
    goodbye.wait_for_sessions(2).await;
    let moved = cut.elapsed();
    let now_on = node_of_connection(&nodes, &majority, &consume).await;
    let run = producer.await.expect("producer task");

    let ledger = ledger_of(&names, &["hello", "goodbye"], &run, &[&hello, &goodbye]);
    ledger.print("one node partitioned from the other two");

    let healing = Instant::now();
    cluster(&["heal", &minority]).await;
    every_node_runs("the cluster is whole again").await;
    let healed = healing.elapsed();
    let partitions = cli(
        "rabbitmqctl",
        &majority,
        &["eval", "rabbit_node_monitor:partitions()."],
    )
    .await;
    let after = run_producer_with_stats(
        env,
        LONG_RUN.map(str::to_owned).to_vec(),
        Some(lines(&names[..200])),
    )
    .await;
    println!(
        "partition: {minority} cut off; the services moved to {now_on} within {:.2} s; \
         whole again {:.2} s after healing (partitions seen: {}); run after healing: exit {}",
        moved.as_secs_f64(),
        healed.as_secs_f64(),
        partitions.trim(),
        after.code
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!((ledger.lost, ledger.printed_twice), (0, 0));
    assert_ne!(now_on, minority, "the services left the cut-off node");
    assert_eq!(partitions.trim(), "[]");
    assert_eq!(after.code, 0, "{}", after.stderr);
    testkit::stop_all([hello, goodbye]).await;
}

/// Heals a partitioned node when dropped, so that a failing test never
/// leaves the cluster cut for the next one (healing a whole cluster is
/// harmless).
struct Healer(String);

impl Drop for Healer {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script())
            .args(["heal", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Starts a killed node again when dropped (a no-op for a running one), so
/// that a failing test never leaves the cluster short of a node.
struct Restarter(String);

impl Drop for Restarter {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script())
            .args(["start", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
