//! Peer lanes: the same scatter-gather written by others, run beside the
//! system and ceiling lanes on the same broker with the same prefetch and
//! load: the Python seed design (aio-pika, `bench/seed/seed.py`) and a Rust
//! framework on lapin 4 (`ruststream-lapin`, `bench/peers/ruststream`). Each
//! runs as its own processes, a responder per word and then a requester that
//! prints one JSON line; `scripts/bench.sh` installs and builds them.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use lapin::{Connection, ConnectionProperties, options::QueueDeleteOptions};
use rabbit_gather::Settings;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::procs::Children;

/// A peer implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Peer {
    /// The Python seed design on aio-pika.
    SeedPy,
    /// `ruststream-lapin` 0.7 with its defaults.
    Ruststream,
    /// `ruststream-lapin` 0.7 as close to the system's guarantees as its
    /// API goes: persistent requests, replies confirmed before the ack
    /// (its requester has no publisher confirms and no `mandatory`).
    RuststreamConfirmed,
}

/// What a peer's requester reports for one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PeerRow {
    pub(crate) lane: String,
    pub(crate) in_flight: usize,
    pub(crate) requests: u64,
    pub(crate) complete: u64,
    pub(crate) lost: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) rps: f64,
    pub(crate) p50_us: u64,
    pub(crate) p90_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Self::SeedPy => "seed",
            Self::Ruststream => "peer",
            Self::RuststreamConfirmed => "peer-confirmed",
        }
    }

    /// The command that starts this peer (before its mode's arguments).
    fn command(self) -> anyhow::Result<Command> {
        let (program, script) = match self {
            Self::SeedPy => (
                std::env::var_os("GREETINGS_BENCH_PYTHON").map_or_else(
                    || repository().join(".venv-bench/bin/python"),
                    PathBuf::from,
                ),
                Some(repository().join("bench/seed/seed.py")),
            ),
            Self::Ruststream | Self::RuststreamConfirmed => (
                std::env::var_os("GREETINGS_PEER_BIN").map_or_else(
                    || repository().join("target/peer/release/peer"),
                    PathBuf::from,
                ),
                None,
            ),
        };
        if !program.exists() {
            bail!(
                "{} is missing: scripts/bench.sh installs and builds the peer lanes",
                program.display()
            );
        }
        let mut command = Command::new(program);
        command.args(script);
        Ok(command)
    }

    /// The arguments after the mode's own that choose this peer's guarantees.
    fn guarantees(self) -> &'static [&'static str] {
        match self {
            Self::RuststreamConfirmed => &["--confirmed"],
            Self::SeedPy | Self::Ruststream => &[],
        }
    }
}

/// Runs `peer` once: its responders for hello and goodbye, then its
/// requester with `requests` measured calls at `in_flight`.
pub(crate) async fn run(
    peer: Peer,
    settings: &Settings,
    in_flight: usize,
    requests: u64,
    warmup: u64,
    timeout: Duration,
) -> anyhow::Result<PeerRow> {
    let url = settings.amqp.url.expose_secret().to_owned();
    let prefix = format!("{}.{}", settings.topology.prefix, peer.name());
    let mut responders = Children::default();
    for word in ["hello", "goodbye"] {
        responders.spawn(
            peer.command()?
                .args(["respond", "--amqp-url", &url, "--prefix", &prefix])
                .args(["--word", word])
                .args(peer.guarantees())
                .stderr(Stdio::inherit()),
        )?;
    }
    let mut requester = peer.command()?;
    requester
        .args(["request", "--amqp-url", &url, "--prefix", &prefix])
        .args(["--requests", &requests.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .args(["--in-flight", &in_flight.to_string()])
        .args(peer.guarantees());
    match peer {
        Peer::SeedPy => requester.args(["--timeout", &timeout.as_secs_f64().to_string()]),
        Peer::Ruststream | Peer::RuststreamConfirmed => {
            requester.args(["--timeout-ms", &timeout.as_millis().to_string()])
        }
    };
    if !settings.rpc.persistent && peer == Peer::SeedPy {
        requester.arg("--transient");
    }
    let output = tokio::process::Command::from(requester)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .with_context(|| format!("running the {peer:?} requester"))?;
    drop(responders);
    let removed = clean_up(&url, &prefix).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "the {peer:?} requester exited with {}: {stdout}",
            output.status
        );
    }
    let line = stdout.lines().last().unwrap_or_default();
    let row = serde_json::from_str(line)
        .with_context(|| format!("the {peer:?} requester's result line {line:?}"))?;
    removed?;
    Ok(row)
}

/// Deletes what a peer declared under `prefix`.
async fn clean_up(url: &str, prefix: &str) -> anyhow::Result<()> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    for word in ["hello", "goodbye"] {
        channel
            .queue_delete(
                format!("{prefix}.{word}").into(),
                QueueDeleteOptions::default(),
            )
            .await?;
    }
    for exchange in [format!("{prefix}.requests"), prefix.to_owned()] {
        channel
            .exchange_delete(exchange.into(), Default::default())
            .await?;
    }
    let _ = connection.close(200, "cleaned".into()).await;
    Ok(())
}

/// Header of the peer table.
pub(crate) const HEADER: &str =
    "lane                  in-flight   RPC/s   p50ms   p90ms   p99ms   maxms  lost+errors";

/// One peer table line.
pub(crate) fn line(r: &PeerRow) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "{:<21} {:>9} {:>7.0} {:>7.2} {:>7.2} {:>7.2} {:>7.2}  {:>5}",
        r.lane,
        r.in_flight,
        r.rps,
        ms(r.p50_us),
        ms(r.p90_us),
        ms(r.p99_us),
        ms(r.max_us),
        r.lost + r.errors
    )
}
