//! The two lanes a run compares: the system (the real `consumer` processes
//! and the library's RPC client) and the ceiling (raw echo responders and a
//! raw requester, see `echo.rs`), each set up and torn down the same way.

use std::{process::Command, time::Duration};

use anyhow::Context;
use lapin::{
    Connection, ConnectionProperties,
    options::{QueueDeclareOptions, QueueDeleteOptions},
    types::FieldTable,
};
use rabbit_gather::{
    Settings,
    protocol::{Contract, Name},
    rpc::RpcClient,
    topology::{Topology, Word},
};
use secrecy::ExposeSecret;

use crate::{
    echo::EchoClient,
    procs::{self, Children},
};

/// How the consumers of a lane are deployed.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Deployment {
    pub(crate) prefetch: u16,
    pub(crate) concurrency: u16,
    pub(crate) replicas: u16,
}

/// How each responder takes deliveries: the flags `bench` and `bench stock`
/// share.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct ResponderArgs {
    /// Prefetch of each responder (consumer process, echo responder or
    /// warehouse).
    #[arg(long, default_value_t = 1)]
    pub(crate) prefetch: u16,
    /// Deliveries each responder handles at once [default: the prefetch].
    #[arg(long)]
    pub(crate) consumer_concurrency: Option<u16>,
}

impl ResponderArgs {
    /// Deliveries handled at once at `prefetch`: the flag's value, never more
    /// than the prefetch (no more can be delivered at once).
    pub(crate) fn concurrency_at(&self, prefetch: u16) -> u16 {
        self.consumer_concurrency.unwrap_or(prefetch).min(prefetch)
    }
}

/// A lane ready to take calls.
pub(crate) enum Lane {
    System {
        client: RpcClient,
        expect: Vec<String>,
    },
    Baseline(EchoClient),
}

impl Lane {
    /// One round trip to every responder; `Ok(false)` if one was missing.
    pub(crate) async fn call(&self, i: u64, timeout: Duration) -> anyhow::Result<bool> {
        match self {
            Self::System { client, expect } => {
                let name = Name::parse(&format!("n{i}"))?;
                Ok(client
                    .call::<_, String>(&name, expect, timeout)
                    .await?
                    .is_complete())
            }
            Self::Baseline(client) => client.call(format!("n{i}").as_bytes(), timeout).await,
        }
    }

    /// Closes the lane's connection (so that runs do not pile up connections).
    pub(crate) async fn close(self) {
        match self {
            Self::System { client, .. } => client.close().await,
            Self::Baseline(client) => client.close().await,
        }
    }

    pub(crate) fn duplicates(&self) -> u64 {
        match self {
            Self::System { client, .. } => client.stats().duplicates,
            Self::Baseline(_) => 0,
        }
    }
}

/// The words every lane answers with.
pub(crate) fn words() -> anyhow::Result<Vec<Word>> {
    Ok(vec![Word::parse("hello")?, Word::parse("goodbye")?])
}

/// Starts the system lane: `replicas` consumer processes per word (unless
/// `spawn` is false: then consumers must already run for the prefix).
pub(crate) async fn system(
    settings: &Settings,
    deployment: Deployment,
    spawn: bool,
) -> anyhow::Result<(Lane, Children)> {
    let url = settings.amqp.url.expose_secret().to_owned();
    let topology = Topology::from_settings(&settings.topology);
    let mut children = Children::default();
    if spawn {
        // Declared first so that polling for consumers never meets a missing queue.
        crate::echo::declare(&url, &topology, &words()?).await?;
        let consumer = procs::sibling("consumer")?;
        for word in words()? {
            for _ in 0..deployment.replicas {
                children.spawn(
                    Command::new(&consumer)
                        .arg(word.as_str())
                        .args(["--prefetch", &deployment.prefetch.to_string()])
                        .args(["--concurrency", &deployment.concurrency.to_string()])
                        .env("AMQP_URL", &url)
                        .env("GREETINGS_TOPOLOGY__PREFIX", &settings.topology.prefix)
                        .env("RUST_LOG", "warn"),
                )?;
            }
        }
        for word in words()? {
            wait_for_consumers(&url, &topology.queue(&word), deployment.replicas).await?;
        }
    }
    let client = RpcClient::connect_with(settings, Contract::GREETINGS).await?;
    let expect = words()?.iter().map(ToString::to_string).collect();
    Ok((Lane::System { client, expect }, children))
}

/// Starts the ceiling lane under `<prefix>.base`: echo responder processes
/// (this binary's `echo` mode) with the same deployment; with `confirmed`
/// false its requests are neither confirmed nor mandatory.
pub(crate) async fn baseline(
    settings: &Settings,
    deployment: Deployment,
    confirmed: bool,
) -> anyhow::Result<(Lane, Children)> {
    let url = settings.amqp.url.expose_secret().to_owned();
    let prefix = format!("{}.base", settings.topology.prefix);
    let mut base = settings.topology.clone();
    base.prefix.clone_from(&prefix);
    let topology = Topology::from_settings(&base);
    crate::echo::declare(&url, &topology, &words()?).await?;
    let bench = std::env::current_exe().context("locating the bench binary")?;
    let mut children = Children::default();
    for word in words()? {
        for _ in 0..deployment.replicas {
            children.spawn(
                Command::new(&bench)
                    .args(["echo", "--queue", &topology.queue(&word)])
                    .args(["--prefetch", &deployment.prefetch.to_string()])
                    .args(["--concurrency", &deployment.concurrency.to_string()])
                    .args(["--amqp-url", &url])
                    .args(["--reply-exchange", &topology.reply_exchange()]),
            )?;
        }
    }
    for word in words()? {
        wait_for_consumers(&url, &topology.queue(&word), deployment.replicas).await?;
    }
    let responders = u8::try_from(words()?.len())?;
    let client = EchoClient::connect(
        &url,
        &topology,
        responders,
        settings.rpc.persistent,
        settings.rpc.reply_queue,
        confirmed,
    )
    .await?;
    Ok((Lane::Baseline(client), children))
}

/// Waits (up to 30 s) until `queue` has `count` consumers.
async fn wait_for_consumers(url: &str, queue: &str, count: u16) -> anyhow::Result<()> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let waited = wait_for_queue(&connection, queue, Duration::from_secs(30), |q| {
        q.consumer_count() >= u32::from(count)
    })
    .await;
    let _ = connection.close(200, "ready".into()).await;
    waited.with_context(|| format!("{queue} did not get {count} consumers"))
}

/// Polls `queue` (passive declare, a channel per look, since a missing queue
/// closes the channel) until `ready` holds, for at most `timeout`.
pub(crate) async fn wait_for_queue(
    connection: &Connection,
    queue: &str,
    timeout: Duration,
    ready: impl Fn(&lapin::Queue) -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let channel = connection.create_channel().await?;
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        let _ = channel.close(200, "looked".into()).await;
        if declared.is_ok_and(|q| ready(&q)) {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting on {queue} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes the ceiling lane's queues and exchanges, and the system lane's
/// when the bench created them (`system`).
pub(crate) async fn clean_up(settings: &Settings, system: bool) -> anyhow::Result<()> {
    let url = settings.amqp.url.expose_secret().to_owned();
    let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let mut prefixes = vec![format!("{}.base", settings.topology.prefix)];
    if system {
        prefixes.push(settings.topology.prefix.clone());
    }
    for prefix in prefixes {
        let topology = Topology::new(&prefix);
        for word in words()? {
            for queue in [
                topology.queue(&word),
                topology.retry_queue(&word),
                topology.due_queue(&word),
            ] {
                channel
                    .queue_delete(queue.into(), QueueDeleteOptions::default())
                    .await?;
            }
            channel
                .exchange_delete(topology.retry_exchange(&word).into(), Default::default())
                .await?;
        }
        channel
            .queue_delete(
                topology.dead_letter_queue().into(),
                QueueDeleteOptions::default(),
            )
            .await?;
        for exchange in [
            topology.exchange(),
            topology.dead_letter_exchange(),
            topology.reply_exchange(),
        ] {
            channel
                .exchange_delete(exchange.into(), Default::default())
                .await?;
        }
    }
    let _ = connection.close(200, "cleaned".into()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responder_concurrency_defaults_to_the_prefetch_and_never_exceeds_it() {
        let args = |consumer_concurrency| ResponderArgs {
            prefetch: 8,
            consumer_concurrency,
        };
        assert_eq!(args(None).concurrency_at(32), 32);
        assert_eq!(args(Some(4)).concurrency_at(32), 4);
        assert_eq!(args(Some(64)).concurrency_at(32), 32);
    }
}
