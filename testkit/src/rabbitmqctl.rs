//! `rabbitmqctl` for the broker under test: `TEST_RABBITMQCTL` (a command
//! and its leading arguments, split on whitespace, e.g. `docker exec
//! greetings-test-rabbitmq4 rabbitmqctl` for the RabbitMQ 4 container that
//! scripts/test.sh runs the suite against too), else the machine's own.

use tokio::process::Command;

/// A `rabbitmqctl` command for the broker under test, ready for arguments.
pub fn rabbitmqctl() -> Command {
    let line = std::env::var("TEST_RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".to_owned());
    let mut words = line.split_whitespace();
    let mut command = Command::new(words.next().unwrap_or("rabbitmqctl"));
    command.args(words);
    command
}

/// `rabbitmqctl list_queues <columns>` on the broker under test: one row of
/// fields per queue.
pub async fn list_queues(columns: &[&str]) -> Vec<Vec<String>> {
    let listed = rabbitmqctl()
        .args(["-q", "list_queues"])
        .args(columns)
        .output()
        .await
        .expect("rabbitmqctl list_queues runs (TEST_RABBITMQCTL)");
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// Closes, from the broker's side, the connections whose name contains `name`
/// (names carry the test's unique prefix, so parallel tests are unaffected).
pub async fn kill_connection(name: &str) {
    let output = rabbitmqctl()
        .args(["-q", "list_connections", "pid", "client_properties"])
        .output()
        .await
        .expect("rabbitmqctl runs (TEST_RABBITMQCTL; the tests need it, as root, on the broker's machine)");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut killed = 0;
    for line in text.lines().filter(|l| l.contains(name)) {
        let pid = line.split_whitespace().next().expect("pid column");
        let status = rabbitmqctl()
            .args(["-q", "close_connection", pid, "test closes the connection"])
            .status()
            .await
            .expect("rabbitmqctl close_connection");
        assert!(status.success());
        killed += 1;
    }
    assert!(killed > 0, "no connection named {name} found:\n{text}");
}
