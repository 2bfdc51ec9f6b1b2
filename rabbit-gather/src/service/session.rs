//! One connected session of a consumer service: its lifecycle. It opens the
//! consuming connection (deliveries, acks, heartbeats) and a [`Publisher`]
//! (replies and copies, on a connection of its own that a memory alarm may
//! block), declares the topology, runs the delivery loop, and closes
//! everything. What happens to one delivery is in `delivery.rs`. A session
//! ends on shutdown or when the broker goes away; the supervisor in `runtime.rs`
//! then opens a new one.

use std::sync::Arc;

use futures::{StreamExt, stream::FuturesUnordered};
use lapin::{
    Channel, Connection, Consumer,
    options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};
use tokio_util::sync::CancellationToken;

use super::{
    delivery,
    error::{ServiceError, broker},
    health::Phase,
    liveness::closed,
    publisher::Publisher,
    shared::Shared,
};
use crate::{
    amqp,
    timing::{LIVENESS_PROBE_INTERVAL, LIVENESS_PROBE_TIMEOUT, SERVICE_CLOSE_TIMEOUT},
};

pub(crate) struct Session {
    connection: Connection,
    channel: Channel,
    /// The word's queue's consumer, and its due retries'.
    consumers: [Consumer; 2],
    publisher: Publisher,
}

impl Session {
    /// Connects, declares the topology and starts consuming.
    pub(crate) async fn open(shared: &Shared) -> Result<Self, ServiceError> {
        let name = format!(
            "greetings-consumer {} {}",
            shared.settings.topology.prefix, shared.word
        );
        let connection = amqp::connect(&shared.settings.amqp, &format!("{name} consume")).await?;
        shared
            .topology
            .declare_for_consumer(&connection, &shared.word)
            .await
            .map_err(broker("declaring the topology"))?;
        let publisher = Publisher::open(
            &shared.settings.amqp,
            format!("{name} publish"),
            Arc::clone(&shared.counters),
        )
        .await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(broker("opening the consuming channel"))?;
        channel
            .basic_qos(
                shared.settings.consumer.prefetch,
                BasicQosOptions::default(),
            )
            .await
            .map_err(broker("setting prefetch"))?;
        let mut consumers = Vec::with_capacity(2);
        for queue in [&shared.queue, &shared.due_queue] {
            consumers.push(
                channel
                    .basic_consume(
                        queue.as_str().into(),
                        "".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(broker("starting to consume"))?,
            );
        }
        let Ok(consumers) = <[Consumer; 2]>::try_from(consumers) else {
            unreachable!("two consumers were started");
        };
        tracing::info!(queue = %shared.queue, due = %shared.due_queue, prefetch = shared.settings.consumer.prefetch, "consuming");
        Ok(Self {
            connection,
            channel,
            consumers,
            publisher,
        })
    }

    /// Handles deliveries, up to `consumer.concurrency` at once, until
    /// `shutdown` is cancelled (`Ok`) or the broker fails (`Err`). On shutdown
    /// no new delivery is taken and the ones in hand are finished and acked.
    /// Either way the session is closed on return.
    pub(crate) async fn serve(
        self,
        shared: &Shared,
        shutdown: &CancellationToken,
    ) -> Result<(), ServiceError> {
        let Self {
            connection,
            channel,
            consumers,
            publisher,
        } = self;
        let tags = consumers.each_ref().map(Consumer::tag);
        // Both queues' deliveries, taken in turn when both have some; the
        // end of either (say, its queue deleted) ends the session, whose
        // successor declares and consumes both again.
        let ends = |consumer: Consumer| consumer.map(Some).chain(futures::stream::iter([None]));
        let [requests, due] = consumers;
        let mut consumer = futures::stream::select(ends(requests), ends(due));
        let concurrency = usize::from(shared.settings.consumer.concurrency.max(1));
        let mut in_hand = FuturesUnordered::new();
        // Deliveries in hand may wait on the broker; if the connection closes
        // under them, the session ends anyway and they go back to the queue.
        let lost = watch_connection(&connection, &channel, shared, &publisher);
        tokio::pin!(lost);
        let result = loop {
            let stopping = shutdown.is_cancelled();
            tokio::select! {
                biased;
                () = shutdown.cancelled(), if !stopping => shared.health.set(Phase::Draining),
                Some(handled) = in_hand.next(), if !in_hand.is_empty() => {
                    if let Err(error) = handled {
                        break Err(error);
                    }
                }
                delivery = consumer.next(), if !stopping && in_hand.len() < concurrency => match delivery {
                    Some(Some(Ok(delivery))) => in_hand.push(delivery::handle(shared, &publisher, delivery)),
                    Some(Some(Err(source))) => break Err(ServiceError::Broker { doing: "consuming", source }),
                    Some(None) | None => break Err(ServiceError::ConsumerEnded),
                },
                error = &mut lost, if !stopping || !in_hand.is_empty() => break Err(error),
                else => break Ok(()),
            }
        };
        drop(in_hand);
        let closing = async {
            if result.is_ok() {
                for tag in tags {
                    if let Err(error) = channel
                        .basic_cancel(tag, BasicCancelOptions::default())
                        .await
                    {
                        tracing::debug!(%error, "cancelling a consumer");
                    }
                }
            }
            // Prefetched deliveries not yet handled go back to the queue when
            // the channel closes.
            if let Err(error) = channel.close(200, "shutting down".into()).await {
                tracing::debug!(%error, "closing the consuming channel");
            }
            publisher.close().await;
            if let Err(error) = connection.close(200, "shutting down".into()).await {
                tracing::debug!(%error, "closing the consuming connection");
            }
        };
        // A lost connection (or one lapin lost without saying so) never
        // answers: closing must not hold up the next session.
        if tokio::time::timeout(SERVICE_CLOSE_TIMEOUT, closing)
            .await
            .is_err()
        {
            tracing::warn!(queue = %shared.queue, "the broker did not answer the close in time; dropping the connections");
        }
        result
    }
}

/// Resolves when the consuming connection is gone: lapin reports it closed
/// (checked every [`LIVENESS_CHECK`]), or a round trip on it fails or gets
/// no answer (every [`LIVENESS_PROBE_INTERVAL`], within [`LIVENESS_PROBE_TIMEOUT`]). Each check
/// also copies the publishing connection's blocked state to the service's
/// [`Health`](super::health::Health).
///
/// [`LIVENESS_CHECK`]: super::liveness::LIVENESS_CHECK
async fn watch_connection(
    connection: &Connection,
    channel: &Channel,
    shared: &Shared,
    publisher: &Publisher,
) -> ServiceError {
    let prefetch = shared.settings.consumer.prefetch;
    let closed = closed(|| {
        shared.health.set_blocked(publisher.blocked());
        connection.status().connected() && channel.status().connected()
    });
    let probe = async {
        let mut every = tokio::time::interval(LIVENESS_PROBE_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            let answered = tokio::time::timeout(
                LIVENESS_PROBE_TIMEOUT,
                channel.basic_qos(prefetch, BasicQosOptions::default()),
            )
            .await;
            match answered {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    return ServiceError::Broker {
                        doing: "probing the consuming connection",
                        source,
                    };
                }
                Err(_) => {
                    return ServiceError::ConnectionClosed {
                        which: "consuming",
                        doing: "waiting for the answer to a liveness probe",
                    };
                }
            }
        }
    };
    tokio::select! {
        () = closed => ServiceError::ConnectionClosed { which: "consuming", doing: "handling deliveries" },
        error = probe => error,
    }
}
