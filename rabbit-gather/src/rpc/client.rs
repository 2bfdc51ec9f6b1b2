//! [`RpcClient`]: one connection, one confirm-mode channel, one reply
//! consumer, and a map of calls in flight (see the [module docs](super)).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use lapin::{
    BasicProperties, Channel, Confirmation, Connection,
    options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions},
    types::{FieldTable, ShortString},
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::{task::JoinHandle, time::Instant};

use super::{
    correlation::CorrelationId,
    dispatch::{dispatch, probe},
    error::RpcError,
    gather::gather,
    gathered::Gathered,
    pending::Pending,
    stats::{Counters, Stats},
    typed::{encode_item, encode_items, only_decoded},
    until::{ROLL_CALL_STALL, Until},
};
use crate::{
    amqp,
    protocol::{self, Contract, DIRECT_REPLY_TO, Json},
    settings::{ReplyQueue, Settings},
    timing::CLIENT_CLOSE_TIMEOUT,
    topology::Topology,
    trace::Trace,
};

/// A scatter-gather RPC client. Cheap to share by reference across tasks:
/// calls run concurrently over one channel.
#[derive(Debug)]
pub struct RpcClient {
    connection: Connection,
    channel: Channel,
    exchange: ShortString,
    /// Where replies come back to: direct reply-to or this connection's
    /// reply queue.
    reply_to: ShortString,
    persistent: bool,
    /// The broker's largest message body (`amqp.max_message_size`).
    max_message_size: usize,
    /// The envelope's fields and limits.
    contract: Contract,
    pending: Arc<Pending>,
    counters: Arc<Counters>,
    /// The broker is blocking this connection (memory or disk alarm).
    blocked: Arc<AtomicBool>,
    dispatcher: JoinHandle<()>,
}

impl RpcClient {
    /// Connects, enables publisher confirms, declares the request exchange and
    /// starts consuming replies, on the envelope's default [`Contract`].
    ///
    /// # Errors
    /// [`RpcError::Connect`] or [`RpcError::Setup`].
    pub async fn connect(settings: &Settings) -> Result<Self, RpcError> {
        Self::connect_with(settings, Contract::DEFAULT).await
    }

    /// [`connect`](Self::connect) for a route whose services use `contract`
    /// (greetings: [`Contract::GREETINGS`]).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(settings: &Settings, contract: Contract) -> Result<Self, RpcError> {
        Self::connect_counting(settings, contract, Arc::default()).await
    }

    /// [`connect_with`](Self::connect_with), adding to `counters`.
    pub(crate) async fn connect_counting(
        settings: &Settings,
        contract: Contract,
        counters: Arc<Counters>,
    ) -> Result<Self, RpcError> {
        let name = format!("greetings-producer {}", settings.topology.prefix);
        let connection = amqp::connect(&settings.amqp, &name).await?;
        let channel = connection.create_channel().await.map_err(RpcError::Setup)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(RpcError::Setup)?;
        let topology = Topology::new(&settings.topology.prefix);
        topology
            .declare_exchange(&connection)
            .await
            .map_err(RpcError::Setup)?;
        let reply_to = match settings.rpc.reply_queue {
            ReplyQueue::Direct => DIRECT_REPLY_TO.to_owned(),
            ReplyQueue::Exclusive => {
                let queue = format!(
                    "{}{}",
                    settings.reply_prefix(),
                    uuid::Uuid::new_v4().simple()
                );
                topology
                    .declare_reply_queue(&connection, &queue)
                    .await
                    .map_err(RpcError::Setup)?;
                queue
            }
        };
        // Consumed with no-ack: a reply is as durable as the call waiting for
        // it. Direct reply-to must be consumed on the channel that publishes
        // the requests naming it.
        let replies = channel
            .basic_consume(
                reply_to.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(RpcError::Setup)?;
        // Listened to from here on: lapin reports a channel's error there
        // too, and setup's passive declares close a channel when the object
        // is missing (Topology::declare_exchange), which is no lost
        // connection.
        let events = connection.events_listener();
        let pending = Pending::new();
        let blocked = Arc::new(AtomicBool::new(false));
        let dispatcher = tokio::spawn(dispatch(
            contract,
            replies,
            events,
            probe(channel.clone(), Arc::clone(&blocked)),
            Arc::clone(&pending),
            Arc::clone(&counters),
            Arc::clone(&blocked),
        ));
        Ok(Self {
            connection,
            channel,
            exchange: topology.exchange().into(),
            reply_to: reply_to.into(),
            persistent: settings.rpc.persistent,
            max_message_size: settings.amqp.max_message_size,
            contract,
            pending,
            counters,
            blocked,
            dispatcher,
        })
    }

    /// Sends `request` to every responder of the route and gathers their
    /// answers, decoded as `R`, until `until` says the call is complete or
    /// `timeout` has passed, whichever is first.
    ///
    /// A timeout is not an error: the result holds the replies gathered by
    /// then and names the missing responders (when the rule knows a set).
    /// The deadline covers the publish and its confirm too (and with
    /// [`Until::Live`], the roll call); replies in by the deadline are
    /// returned even when the confirm is late.
    ///
    /// # Errors
    /// [`RpcError::NoRoute`] at once when no queue is bound to the exchange;
    /// [`RpcError::ConnectionLost`] at once when the connection drops;
    /// [`RpcError::Nacked`] when the broker refuses the request;
    /// [`RpcError::InvalidBatch`] before anything is sent when the request
    /// does not encode, or breaks the contract's size limit.
    pub async fn call<Q, R>(
        &self,
        request: &Q,
        until: impl Into<Until>,
        timeout: Duration,
    ) -> Result<Gathered<R>, RpcError>
    where
        Q: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let item = encode_item(request)?;
        let until = until.into();
        let gathered = self
            .call_json(
                CorrelationId::new(),
                std::slice::from_ref(&item),
                &until,
                timeout,
            )
            .await?;
        Ok(only_decoded(gathered, &until))
    }

    /// Sends `requests` in one message (a batch; one request alone is sent
    /// in the single form) and gathers, per request and in order, what each
    /// responder answered, by one deadline, as [`call`](Self::call) does for
    /// one request. Each responder answers a batch with one reply holding a
    /// result per request, so one bad request fails only itself.
    ///
    /// # Errors
    /// [`RpcError::InvalidBatch`] before anything is sent when `requests` is
    /// empty, holds more than the contract allows, or encodes to more than
    /// its limit or `amqp.max_message_size`; else as [`call`](Self::call).
    pub async fn call_batch<Q, R>(
        &self,
        requests: &[Q],
        until: impl Into<Until>,
        timeout: Duration,
    ) -> Result<Vec<Gathered<R>>, RpcError>
    where
        Q: Serialize,
        R: DeserializeOwned,
    {
        let items = encode_items(requests)?;
        let gathered = self
            .call_json(CorrelationId::new(), &items, &until.into(), timeout)
            .await?;
        Ok(gathered.into_iter().map(Gathered::decode).collect())
    }

    /// [`call_batch`](Self::call_batch) of requests already encoded, with a
    /// given correlation id (a retry of a call keeps its id, so that
    /// responders and logs can tell it is the same request), answers left
    /// as JSON.
    ///
    /// # Errors
    /// As [`call_batch`](Self::call_batch).
    pub async fn call_json(
        &self,
        correlation_id: CorrelationId,
        items: &[Json],
        until: &Until,
        timeout: Duration,
    ) -> Result<Vec<Gathered>, RpcError> {
        let body = protocol::encode_batch_within(&self.contract, items, self.max_message_size)?;
        let deadline = Instant::now() + timeout;
        let live;
        let until = if *until == Until::Live {
            live = Until::All(self.responders(timeout, ROLL_CALL_STALL).await?);
            &live
        } else {
            until
        };
        let registered = self
            .pending
            .register(correlation_id, until, items.len())
            .ok_or_else(|| self.pending.lost())?;
        let left = deadline.saturating_duration_since(Instant::now());
        let properties = self.request_properties(correlation_id, left);
        // Boxed: its state (body, properties, lapin's futures) is freed once
        // the request is confirmed, so a call waiting for replies stays small.
        let publish = Box::pin(self.publish(correlation_id, body, properties));
        let stall = match until {
            Until::Stall(after) => Some(*after),
            _ => None,
        };
        let gathered = gather(publish, registered, deadline, stall).await?;
        tracing::trace!(%correlation_id, "call done");
        // A duplicate reply to a batch is one duplicate, whatever its size.
        let duplicates = gathered.first().map_or(0, |g| g.duplicates);
        self.counters
            .duplicates
            .fetch_add(duplicates, Ordering::Relaxed);
        Ok(gathered)
    }

    /// The responders live now: those that answer a roll call (a request
    /// of type [`ROLL_CALL_TYPE`](protocol::names::ROLL_CALL_TYPE) that each
    /// answers at once with its name) before no answer has come for `stall`
    /// after the last one, or `timeout` has passed; sorted. A responder whose
    /// queue holds a backlog answers after it, so a short stall can miss it.
    /// No queue bound to the route: none.
    ///
    /// # Errors
    /// [`RpcError::ConnectionLost`] or [`RpcError::Nacked`], as a call.
    pub async fn responders(
        &self,
        timeout: Duration,
        stall: Duration,
    ) -> Result<Vec<String>, RpcError> {
        let correlation_id = CorrelationId::new();
        let deadline = Instant::now() + timeout;
        let registered = self
            .pending
            .register_roll_call(correlation_id)
            .ok_or_else(|| self.pending.lost())?;
        let properties = protocol::roll_call_properties(
            &correlation_id.to_string(),
            self.reply_to.as_str(),
            timeout,
        )
        .with_headers(Trace::root_with_id(correlation_id.as_u128()).headers());
        let publish = Box::pin(self.publish(correlation_id, b"{}".to_vec(), properties));
        match gather(publish, registered, deadline, Some(stall)).await {
            Ok(gathered) => {
                let mut live: Vec<String> = gathered
                    .into_iter()
                    .flat_map(|g| g.replies)
                    .map(|reply| reply.consumer)
                    .collect();
                live.sort();
                Ok(live)
            }
            Err(RpcError::NoRoute { .. }) => Ok(Vec::new()),
            Err(error) => Err(error),
        }
    }

    /// The contract this client encodes requests and decodes replies with.
    #[must_use]
    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// The largest batch body this client sends (the contract's limit, and
    /// `amqp.max_message_size`).
    #[must_use]
    pub fn max_batch_bytes(&self) -> usize {
        protocol::max_batch_bytes(&self.contract, self.max_message_size)
    }

    fn request_properties(
        &self,
        correlation_id: CorrelationId,
        timeout: Duration,
    ) -> BasicProperties {
        // One trace per call, its id the correlation id's 128 bits: a call's
        // retries (same correlation id) share it; each publish is a new span.
        let trace = Trace::root_with_id(correlation_id.as_u128());
        protocol::request_properties(
            &correlation_id.to_string(),
            self.reply_to.as_str(),
            timeout,
            self.persistent,
        )
        .with_headers(trace.headers())
    }

    async fn publish(
        &self,
        correlation_id: CorrelationId,
        body: Vec<u8>,
        properties: BasicProperties,
    ) -> Result<(), RpcError> {
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        // The trace-level events time a call's steps (docs/performance.md).
        let confirmation = async {
            let confirm = self
                .channel
                .basic_publish(self.exchange.clone(), "".into(), options, &body, properties)
                .await?;
            tracing::trace!(%correlation_id, "request published");
            let confirmation = confirm.await;
            tracing::trace!(%correlation_id, "request confirmed");
            confirmation
        }
        .await
        .map_err(|e| RpcError::ConnectionLost(Some(e)))?;
        match confirmation {
            Confirmation::Ack(Some(_returned)) => Err(RpcError::NoRoute {
                exchange: self.exchange.to_string(),
            }),
            Confirmation::Nack(_) => Err(RpcError::Nacked),
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        }
    }

    /// The client's counters now.
    #[must_use]
    pub fn stats(&self) -> Stats {
        Stats {
            retries: 0,
            reconnects: 0,
            stray: self.counters.stray.load(Ordering::Relaxed),
            duplicates: self.counters.duplicates.load(Ordering::Relaxed),
            malformed: self.counters.malformed.load(Ordering::Relaxed),
            in_flight: self.pending.len(),
            blocked: self.blocked.load(Ordering::Relaxed),
        }
    }

    /// Whether the connection has been lost.
    #[must_use]
    pub fn is_connection_lost(&self) -> bool {
        self.pending.is_closed()
    }

    /// Closes the channel and the connection, giving up after [`CLIENT_CLOSE_TIMEOUT`]
    /// (a blocked or dead broker may never answer the close).
    pub async fn close(&self) {
        let close = async {
            if let Err(error) = self.channel.close(200, "done".into()).await {
                tracing::debug!(%error, "closing the RPC channel");
            }
            if let Err(error) = self.connection.close(200, "done".into()).await {
                tracing::debug!(%error, "closing the RPC connection");
            }
        };
        // A blocked connection is not read by the broker: it would never
        // answer the close.
        if self.blocked.load(Ordering::Relaxed) {
            tracing::debug!("connection blocked; dropping it without a close handshake");
        } else if tokio::time::timeout(CLIENT_CLOSE_TIMEOUT, close)
            .await
            .is_err()
        {
            tracing::warn!("the broker did not answer the close in time; dropping the connection");
        }
        self.pending.close(None);
        self.dispatcher.abort();
    }
}
