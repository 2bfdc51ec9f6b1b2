//! Memory per request in flight: hold 10,000 unanswered requests (queues
//! bound, no consumers) and compare with one in flight, both as the process's
//! RSS (what the issue asks for) and as live heap bytes (exact, from the
//! counting allocator). Requests are sent in batches, each confirmed by the
//! broker before the next, so that the transient cost of publishing (which
//! the allocator keeps as RSS afterwards) does not pass for the cost of
//! waiting.

use std::{sync::Arc, time::Duration};

use rabbit_gather::{
    Settings,
    protocol::{Contract, Name},
    rpc::RpcClient,
    topology::Topology,
};

use lapin::{Connection, ConnectionProperties};
use secrecy::ExposeSecret;

use crate::{lanes, procs};

const HELD: usize = 10_000;
const BATCH: usize = 500;

pub(crate) async fn per_request(settings: &Settings) -> anyhow::Result<()> {
    let url = settings.amqp.url.expose_secret().to_owned();
    let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
    let topology = Topology::from_settings(&settings.topology);
    for word in lanes::words()? {
        topology.declare_for_consumer(&connection, &word).await?;
    }
    let client = Arc::new(RpcClient::connect_with(settings, Contract::GREETINGS).await?);
    let expect: Arc<Vec<String>> =
        Arc::new(lanes::words()?.iter().map(ToString::to_string).collect());
    let hold = |i: usize| {
        let (client, expect) = (Arc::clone(&client), Arc::clone(&expect));
        tokio::spawn(async move {
            let name = Name::parse(&format!("n{i}"))?;
            client
                .call::<_, String>(&name, expect.as_slice(), Duration::from_secs(600))
                .await?;
            anyhow::Ok(())
        })
    };
    let future_size = {
        let name = Name::parse("n0")?;
        std::mem::size_of_val(&client.call::<_, String>(
            &name,
            expect.as_slice(),
            Duration::from_secs(1),
        ))
    };
    let queue = topology.queue(&lanes::words()?[0]);
    let me = std::process::id();
    let mut tasks = vec![hold(0)];
    wait_confirmed(&connection, &queue, 1).await?;
    let (rss_one, heap_one) = (
        procs::memory(me).map_or(0, |m| m.rss_kib),
        crate::live_heap_bytes(),
    );
    for batch in (1..HELD).collect::<Vec<_>>().chunks(BATCH) {
        tasks.extend(batch.iter().copied().map(hold));
        wait_confirmed(&connection, &queue, batch[batch.len() - 1] + 1).await?;
    }
    anyhow::ensure!(
        client.stats().in_flight == HELD,
        "expected {HELD} calls in flight"
    );
    let (rss_many, heap_many) = (
        procs::memory(me).map_or(0, |m| m.rss_kib),
        crate::live_heap_bytes(),
    );
    let per = |one: u64, many: u64| many.saturating_sub(one) as f64 / (HELD - 1) as f64;
    println!(
        "memory: {HELD} requests in flight: RSS {rss_one} -> {rss_many} KiB = {:.0} bytes per request; \
         live heap {heap_one} -> {heap_many} bytes = {:.0} bytes per request; \
         a call's future is {future_size} bytes (inline in the producer's stream, in a task here)",
        per(rss_one, rss_many) * 1024.0,
        per(heap_one, heap_many),
    );
    for task in tasks {
        task.abort();
    }
    let _ = connection.close(200, "measured".into()).await;
    Ok(())
}

/// Waits until `queue` holds `n` messages: that many requests are confirmed.
async fn wait_confirmed(connection: &Connection, queue: &str, n: usize) -> anyhow::Result<()> {
    lanes::wait_for_queue(connection, queue, Duration::from_secs(60), |q| {
        usize::try_from(q.message_count()).is_ok_and(|count| count >= n)
    })
    .await
}
