//! A private RabbitMQ node for tests that stop, kill or restart the broker.
//!
//! [`PrivateNode::start`] boots a RabbitMQ 3.10 node of its own (unique name,
//! free AMQP and distribution ports, data and logs in a temporary directory),
//! so a test can break it freely without touching the machine's main broker
//! (`rabbit@localhost` on 5672). Every CLI call names the private node with
//! `-n` and runs with the node's own `HOME`, where its Erlang cookie lives.
//! Dropping the node stops it (SIGKILL as a last resort) and deletes its
//! directory, even when the test panicked.
//!
//! Needs root (or the user owning the RabbitMQ installation) and the server
//! scripts under `/usr/lib/rabbitmq/bin`; the Debian wrappers in `/usr/sbin`
//! switch to the `rabbitmq` user and would ignore the private `HOME`.

use std::{
    future::Future,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Mutex,
    time::{Duration, Instant},
};

use lapin::{Connection, ConnectionProperties};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::Command,
};

const SBIN: &str = "/usr/lib/rabbitmq/bin";
/// Booting takes 4-6 s on an idle machine; leave room for a loaded one.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a single CLI call (`rabbitmqctl ...`) may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the node may take to close its AMQP port or to die.
const DOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// The CLI tools' own distribution ports (RABBITMQ_CTL_DIST_PORT_MIN..MAX):
/// never hand these to a node, a concurrent `rabbitmqctl` may hold one.
const CTL_DIST_PORTS: std::ops::RangeInclusive<u16> = 35672..=35682;
const POLL: Duration = Duration::from_millis(50);

/// What to run when this machine cannot boot private nodes.
pub const PRECONDITION: &str = "private RabbitMQ nodes need root and the server scripts under \
     /usr/lib/rabbitmq/bin (install rabbitmq-server: scripts/ensure-rabbitmq.sh), then run \
     `sudo -E cargo test -p greetings-tests --test nodes` (scripts/test.sh runs it)";

/// Fails the test, saying what to run, when private nodes cannot boot here.
fn require_server_scripts() {
    let server = Path::new(SBIN).join("rabbitmq-server");
    assert!(
        server.exists(),
        "{} is missing: {PRECONDITION}",
        server.display()
    );
}

/// A RabbitMQ node owned by one test. See the module docs.
pub struct PrivateNode {
    /// `t<8 hex>@localhost`
    name: String,
    port: u16,
    dist_port: u16,
    /// `None` only while being dropped.
    dir: Option<tempfile::TempDir>,
    /// OS pid of the node's Erlang VM, while we believe it runs.
    pid: Mutex<Option<u32>>,
    /// `user:password@` and `/vhost` of [`url`](Self::url).
    login: (String, String),
}

impl PrivateNode {
    /// Boots a fresh node; when this returns, AMQP connections succeed.
    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// Boots a fresh node with `extra` lines appended to its `rabbitmq.conf`
    /// (say a TLS listener); its plain listener stays, for readiness checks.
    pub async fn start_with(extra: &str) -> Self {
        Self::start_as(extra, "guest:guest", "%2f").await
    }

    /// Like [`start_with`](Self::start_with), for a node whose users come
    /// from its config (definitions): `userinfo` (`user:password`) and
    /// `vhost` make [`url`](Self::url), used to tell when the node is up.
    pub async fn start_as(extra: &str, userinfo: &str, vhost: &str) -> Self {
        require_server_scripts();
        let short = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (port, dist_port) = free_ports();
        let dir = tempfile::Builder::new()
            .prefix(&format!("rabbitmq-{short}-"))
            .tempdir()
            .expect("create the private node's directory");
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            // Required: /etc/rabbitmq/rabbitmq.conf would otherwise make this
            // node listen on 5672 too (and crash, the main broker has it).
            format!("listeners.tcp.default = 127.0.0.1:{port}\n{extra}\n"),
        )
        .expect("write rabbitmq.conf");
        std::fs::write(dir.path().join("plugins"), "[].\n").expect("write enabled plugins file");
        // Constructed before booting, so a failed boot is still cleaned up.
        let node = Self {
            name: format!("{short}@localhost"),
            port,
            dist_port,
            dir: Some(dir),
            pid: Mutex::new(None),
            login: (userinfo.to_owned(), vhost.to_owned()),
        };
        node.boot("start").await;
        node
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f` (or the login it started with).
    pub fn url(&self) -> String {
        let (userinfo, vhost) = &self.login;
        format!("amqp://{userinfo}@127.0.0.1:{}/{vhost}", self.port)
    }

    /// The node's AMQP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Erlang node name, `t<8 hex>@localhost`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Data, logs and config; deleted when the node is dropped.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("node directory").path()
    }

    /// A connection to this node, failing the test after 10 s.
    pub async fn connect(&self) -> Connection {
        match tokio::time::timeout(
            Duration::from_secs(10),
            Connection::connect(&self.url(), ConnectionProperties::default()),
        )
        .await
        {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => self.fail(&format!("cannot connect to {}: {e}", self.url())),
            Err(_) => self.fail(&format!("connecting to {} took over 10 s", self.url())),
        }
    }

    /// `rabbitmqctl stop_app`: the VM stays up, the broker (and its AMQP
    /// listener) stops. Returns once the AMQP port refuses connections.
    pub async fn stop_app(&self) {
        self.rabbitmqctl(&["stop_app"]).await;
        self.wait_for("the AMQP port refuses after stop_app", DOWN_TIMEOUT, || {
            self.port_refuses()
        })
        .await;
    }

    /// `rabbitmqctl start_app`; returns once AMQP connections succeed.
    pub async fn start_app(&self) {
        self.rabbitmqctl(&["start_app"]).await;
        self.wait_for(
            "AMQP connections succeed after start_app",
            BOOT_TIMEOUT,
            || self.amqp_up(),
        )
        .await;
    }

    /// SIGKILLs the node's Erlang VM: no goodbye to clients, no clean
    /// shutdown. Returns once the VM is dead, the AMQP port refuses and epmd
    /// has forgotten the node name (so [`restart`](Self::restart) can reuse it).
    pub async fn kill(&self) {
        let pid = self
            .current_pid()
            .unwrap_or_else(|| self.fail("kill(): the node is not running"));
        sigkill(pid);
        self.wait_for("the killed VM is dead", DOWN_TIMEOUT, || async move {
            !alive(pid)
        })
        .await;
        self.wait_for("the AMQP port refuses after kill", DOWN_TIMEOUT, || {
            self.port_refuses()
        })
        .await;
        self.wait_for("epmd forgets the killed node", DOWN_TIMEOUT, || async {
            !self.registered_in_epmd().await
        })
        .await;
        *self.pid.lock().expect("pid lock") = None;
    }

    /// Boots the node again after [`kill`](Self::kill): same name, ports and
    /// data directory, so durable queues and messages survive. Returns once
    /// AMQP connections succeed.
    pub async fn restart(&self) {
        if let Some(pid) = self.current_pid() {
            self.fail(&format!(
                "restart(): the node still runs as pid {pid}; call kill() first"
            ));
        }
        self.boot("restart").await;
    }

    /// Runs `rabbitmqctl -n <this node> <args>`, asserts success, returns stdout.
    pub async fn rabbitmqctl(&self, args: &[&str]) -> String {
        let mut command = self.command("rabbitmqctl");
        command
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let what = format!("rabbitmqctl -n {} {}", self.name, args.join(" "));
        let output = match tokio::time::timeout(CLI_TIMEOUT, command.output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => self.fail(&format!("cannot run {what}: {e}")),
            Err(_) => self.fail(&format!("{what} took over {CLI_TIMEOUT:?}")),
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            self.fail(&format!(
                "{what} failed ({}):\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        stdout
    }

    /// `rabbitmqctl set_vm_memory_high_watermark <value>`, e.g. `"0.0000001"`
    /// to raise the memory alarm (publishers get blocked), `"0.4"` to clear it.
    pub async fn set_memory_watermark(&self, value: &str) {
        self.rabbitmqctl(&["set_vm_memory_high_watermark", value])
            .await;
    }

    // ---- internals ----

    /// Launches `rabbitmq-server -detached` and waits until AMQP works.
    async fn boot(&self, what: &str) {
        let dir = self.dir().to_owned();
        // A pid file left by the previous VM would mislead `vm_died`.
        let _ = std::fs::remove_file(self.pid_file());
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.out"))
            .expect("open server.out");
        let mut command = self.command("rabbitmq-server");
        // Output goes to a file, not a pipe: the detached VM inherits it and
        // a pipe would never reach EOF.
        command
            .arg("-detached")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone server.out"))
            .stderr(out)
            .kill_on_drop(true);
        match tokio::time::timeout(CLI_TIMEOUT, command.status()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => self.fail(&format!("rabbitmq-server -detached ({what}): {status}")),
            Ok(Err(e)) => self.fail(&format!("cannot run rabbitmq-server ({what}): {e}")),
            Err(_) => self.fail(&format!(
                "rabbitmq-server -detached ({what}) did not return"
            )),
        }
        self.wait_for(
            &format!("AMQP connections succeed after {what}"),
            BOOT_TIMEOUT,
            || async {
                if let Some(pid) = read_pid_file(&self.pid_file())
                    && !alive(pid)
                {
                    self.fail(&format!("the node's VM (pid {pid}) died while booting"));
                }
                self.amqp_up().await
            },
        )
        .await;
        let stdout = self.rabbitmqctl(&["eval", "os:getpid()."]).await;
        let pid = stdout
            .trim()
            .trim_matches('"')
            .parse::<u32>()
            .unwrap_or_else(|_| self.fail(&format!("unexpected os:getpid() output {stdout:?}")));
        *self.pid.lock().expect("pid lock") = Some(pid);
    }

    /// A command for one of the server scripts, with this node's environment.
    fn command(&self, script: &str) -> Command {
        let mut command = Command::new(Path::new(SBIN).join(script));
        command.envs(self.env()).current_dir(self.dir());
        command
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let dir = self.dir().display().to_string();
        vec![
            // The Erlang cookie is created in and read from $HOME.
            ("HOME", dir.clone()),
            ("RABBITMQ_NODENAME", self.name.clone()),
            ("RABBITMQ_NODE_PORT", self.port.to_string()),
            ("RABBITMQ_DIST_PORT", self.dist_port.to_string()),
            ("RABBITMQ_MNESIA_BASE", format!("{dir}/mnesia")),
            ("RABBITMQ_LOG_BASE", format!("{dir}/log")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", format!("{dir}/plugins")),
            ("RABBITMQ_CONFIG_FILE", format!("{dir}/rabbitmq.conf")),
            ("ERL_CRASH_DUMP", format!("{dir}/erl_crash.dump")),
        ]
    }

    fn pid_file(&self) -> PathBuf {
        self.dir().join("mnesia").join(format!("{}.pid", self.name))
    }

    fn log_file(&self) -> PathBuf {
        self.dir().join("log").join(format!("{}.log", self.name))
    }

    /// The VM's pid if it is (still) alive: the one remembered at boot, or,
    /// for a boot that failed half-way, the one in the pid file.
    fn current_pid(&self) -> Option<u32> {
        let remembered = *self.pid.lock().unwrap_or_else(|e| e.into_inner());
        remembered
            .or_else(|| read_pid_file(&self.pid_file()))
            .filter(|pid| alive(*pid) && self.is_our_vm(*pid))
    }

    /// Whether `pid` is this node's VM: its command line names our `HOME`.
    /// Guards every SIGKILL, so a reused pid or the main broker is never hit.
    fn is_our_vm(&self, pid: u32) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let home = self.dir().as_os_str().as_encoded_bytes();
        args.windows(2).any(|w| w[0] == b"-home" && w[1] == home)
    }

    /// Whether a full AMQP handshake with this node succeeds now.
    async fn amqp_up(&self) -> bool {
        if TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            return false;
        }
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            Connection::connect(&self.url(), ConnectionProperties::default()),
        )
        .await;
        match attempt {
            Ok(Ok(connection)) => {
                let _ = connection.close(200, "probe".into()).await;
                true
            }
            _ => false,
        }
    }

    async fn port_refuses(&self) -> bool {
        matches!(
            TcpStream::connect(("127.0.0.1", self.port)).await,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
        )
    }

    /// Whether epmd (127.0.0.1:4369, shared with the main broker) still lists
    /// this node's name. Asks with the NAMES_REQ of the epmd protocol.
    async fn registered_in_epmd(&self) -> bool {
        let short = self.name.split('@').next().unwrap_or_default();
        let names = async {
            let mut stream = TcpStream::connect("127.0.0.1:4369").await.ok()?;
            stream.write_all(&[0, 1, b'n']).await.ok()?;
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).await.ok()?;
            Some(String::from_utf8_lossy(reply.get(4..)?).into_owned())
        };
        let names = tokio::time::timeout(Duration::from_secs(5), names)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let prefix = format!("name {short} at port ");
        names.lines().any(|line| line.starts_with(&prefix))
    }

    /// Polls `condition` until it holds, failing the test after `limit`.
    async fn wait_for<F, Fut>(&self, what: &str, limit: Duration, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + limit;
        while !condition().await {
            if Instant::now() >= deadline {
                self.fail(&format!("timed out after {limit:?} waiting until {what}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails the test with `message` and the tail of the node's logs.
    fn fail(&self, message: &str) -> ! {
        let dir = self.dir();
        panic!(
            "private RabbitMQ node {} (port {}, dir {}): {message}\n({PRECONDITION})\n\
             --- rabbitmq-server output ---\n{}\n--- tail of {} ---\n{}",
            self.name,
            self.port,
            dir.display(),
            tail(&dir.join("server.out"), 20),
            self.log_file().display(),
            tail(&self.log_file(), 40),
        )
    }
}

impl Drop for PrivateNode {
    /// Stops the node (`rabbitmqctl stop`, SIGKILL if that fails or hangs)
    /// and deletes its directory. Bounded: at most about 20 s.
    fn drop(&mut self) {
        if let Some(pid) = self.current_pid() {
            let mut stop = std::process::Command::new(Path::new(SBIN).join("rabbitmqctl"));
            stop.arg("-n")
                .arg(&self.name)
                .arg("stop")
                .envs(self.env())
                .current_dir(self.dir());
            let stopped = run_bounded(stop, Duration::from_secs(10))
                && poll_blocking(Duration::from_secs(5), || !alive(pid));
            if !stopped {
                if self.is_our_vm(pid) {
                    sigkill(pid);
                }
                if !poll_blocking(Duration::from_secs(5), || !alive(pid)) {
                    eprintln!("private node {}: VM pid {pid} survived SIGKILL", self.name);
                }
            }
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_owned();
            if let Err(e) = dir.close() {
                eprintln!(
                    "private node {}: cannot remove {}: {e}",
                    self.name,
                    path.display()
                );
            }
        }
    }
}

/// A free loopback port, outside the CLI tools' range (for an extra listener).
pub fn free_port() -> u16 {
    free_ports().0
}

/// Two distinct free loopback ports, outside the CLI tools' range.
fn free_ports() -> (u16, u16) {
    // Keep every listener open until both are chosen, so they differ.
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < 2 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("local addr").port();
        if !CTL_DIST_PORTS.contains(&port) {
            ports.push(port);
        }
        held.push(listener);
    }
    (ports[0], ports[1])
}

/// Whether `pid` runs: its /proc entry exists and it is not a zombie (a
/// detached VM is reparented to pid 1, which may reap it late).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "<pid> (<comm>) <state> ..."; comm may contain spaces or parentheses.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}

fn read_pid_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn sigkill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs `command` to completion within `limit` (killing it after); true on success.
fn run_bounded(mut command: std::process::Command, limit: Duration) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let Ok(mut child) = command.spawn() else {
        return false;
    };
    let mut success = false;
    let finished = poll_blocking(limit, || match child.try_wait() {
        Ok(Some(status)) => {
            success = status.success();
            true
        }
        Ok(None) => false,
        Err(_) => true,
    });
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
    }
    success
}

/// Blocking poll for `Drop`, which cannot await: true once `condition` holds.
fn poll_blocking(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// The last `lines` lines of a file, or why there are none.
fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({e})"),
    }
}
