//! Scatter-gather RPC over RabbitMQ, for requests and replies of any serde
//! type.
//!
//! A caller publishes one request to a route (a fanout exchange); every
//! responder of the route (a service with a queue of its own) answers on the
//! caller's reply queue with the same correlation id, and the caller gathers
//! the answers until its stop rule ([`rpc::Until`]: a named set, the first,
//! N, a stall, or every live responder) is met or its deadline passes. It
//! gets each responder's typed answer or error, and the names of the ones
//! that are missing. Underneath: publisher confirms, mandatory routing,
//! manual acks only after a confirmed reply, deadlines carried in the
//! message, retries counted in the message, dead letters, batches, trace
//! context, metrics and reconnection after broker faults. Greetings (the
//! `producer` and `consumer` binaries of this repository) is its first
//! application; `examples/stock` is another.
//!
//! # A service
//!
//! A route (`topology.prefix`), a responder name and an async handler from
//! the request type to the reply type:
//!
//! ```
//! use rabbit_gather::service::{ConsumerService, Context, HandlerError};
//! use rabbit_gather::{Settings, shutdown::CancellationToken, topology::Word};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Ask { item: String }
//! #[derive(Serialize)]
//! struct Level { units: u64 }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut settings = Settings::default(); // amqp://guest:guest@127.0.0.1:5672
//! # if let Ok(url) = std::env::var("AMQP_URL") { settings.amqp.url = url.into(); }
//! settings.topology.prefix = "doc-service".into();
//! let handler = |ask: Ask, _: Context| async move {
//!     match ask.item.as_str() {
//!         "" => Err(HandlerError::permanent("no item named")),
//!         _ => Ok(Level { units: 3 }),
//!     }
//! };
//! let service = ConsumerService::new(&settings, Word::parse("east")?, handler);
//! let shutdown = CancellationToken::new(); // or rabbit_gather::shutdown::on_signal()
//! # let (mut up, stop) = (service.sessions(), shutdown.clone());
//! # tokio::spawn(async move { let _ = up.wait_for(|n| *n >= 1).await; stop.cancel() });
//! service.run(shutdown).await?; // answers until shutdown, reconnecting after faults
//! # Ok(())
//! # }
//! ```
//!
//! # A client
//!
//! Send a request to every live responder and read their typed answers:
//!
//! ```
//! use std::time::Duration;
//!
//! use rabbit_gather::rpc::{Gathered, RpcClient, Until};
//! use rabbit_gather::{Settings, protocol::Outcome};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Ask { item: String }
//! #[derive(Serialize, Deserialize)]
//! struct Level { units: u64 }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut settings = Settings::default();
//! # if let Ok(url) = std::env::var("AMQP_URL") { settings.amqp.url = url.into(); }
//! settings.topology.prefix = "doc-client".into();
//! # let service = rabbit_gather::service::ConsumerService::new(&settings,
//! #     rabbit_gather::topology::Word::parse("east")?,
//! #     |_: Ask, _: rabbit_gather::service::Context| async { Ok(Level { units: 3 }) });
//! # let (mut up, stop) = (service.sessions(), rabbit_gather::shutdown::CancellationToken::new());
//! # let running = tokio::spawn(service.run(stop.clone()));
//! # up.wait_for(|n| *n >= 1).await?;
//! let client = RpcClient::connect(&settings).await?;
//! let ask = Ask { item: "apple".into() };
//! let gathered: Gathered<Level> = client.call(&ask, Until::Live, Duration::from_secs(5)).await?;
//! for reply in &gathered.replies {
//!     match &reply.outcome {
//!         Outcome::Ok(level) => println!("{}: {} units", reply.consumer, level.units),
//!         Outcome::Error { code, message } => println!("{}: {code}: {message}", reply.consumer),
//!     }
//! }
//! for responder in &gathered.missing {
//!     println!("{responder}: no answer in time");
//! }
//! client.close().await;
//! # assert_eq!(gathered.replies.len(), 1);
//! # stop.cancel();
//! # running.await??;
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! - [`service`]: the responder runtime ([`service::ConsumerService`], the
//!   [`service::Handler`] trait);
//! - [`rpc`]: the gathering client ([`rpc::RpcClient`], with reconnection
//!   [`rpc::ReconnectingClient`], adaptive batching [`rpc::call_each`]) and
//!   the stop rules;
//! - [`protocol`]: the wire contract: the general envelope
//!   ([`protocol::Contract`]) and greetings' use of it;
//! - [`settings`]: configuration, with defaults ([`Settings::default`]) and
//!   layering (file, environment);
//! - [`amqp`], [`topology`]: connections and the exchanges and queues;
//! - [`timing`], [`backoff`]: the bounds the client and the service share
//!   on waiting for the broker, and the reconnection backoff;
//! - [`shutdown`], [`trace`], [`report`]: signals, W3C trace context, error
//!   lines;
//! - `cli` and `telemetry` (cargo features of the same names): the
//!   binaries' shared flags and log setup, left out of an embedder's build.

pub mod amqp;
pub mod backoff;
#[cfg(feature = "cli")]
pub mod cli;
pub mod duration;
mod naming;
pub mod protocol;
pub mod report;
pub mod rpc;
pub mod service;
pub mod settings;
pub mod shutdown;
#[cfg(feature = "telemetry")]
pub mod telemetry;
pub mod timing;
pub mod topology;
pub mod trace;

pub use settings::Settings;
