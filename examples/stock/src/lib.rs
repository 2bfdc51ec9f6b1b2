//! Stock: a second application of `rabbit-gather`, built on its public API
//! only, with a payload of another shape than greetings.
//!
//! Every warehouse is a responder on the route [`ROUTE`] (`topology.prefix`),
//! named after itself (`east`, `west`...). A client asks "how many `apple`?"
//! once; every warehouse answers with its own level, and the client sums the
//! answers and names the warehouses that did not answer in time:
//!
//! - [`StockQuery`] and [`StockLevel`]: the request and the answer, on the
//!   envelope's default [`Contract`](rabbit_gather::protocol::Contract)
//!   (`{"request": {"item": "apple"}}`, answers in `reply`);
//! - [`Warehouse`]: an inventory and the [`Handler`](rabbit_gather::service::Handler)
//!   that answers from it;
//! - [`total`]: the sum of a call's answers, as a [`Total`].
//!
//! The `warehouse` and `stock` binaries are thin layers over these (the
//! latter's exit codes are in [`exit`]).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use rabbit_gather::{
//!     Settings,
//!     rpc::{RpcClient, Until},
//!     service::ConsumerService,
//!     shutdown::CancellationToken,
//!     topology::Word,
//! };
//! use stock::{ROUTE, StockLevel, StockQuery, Warehouse, total};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let mut settings = Settings::default();
//! settings.topology.prefix = ROUTE.to_owned();
//!
//! // A warehouse, answering until `stop` is cancelled.
//! let warehouse: Warehouse = "apple=3,pear=5".parse()?;
//! let service = ConsumerService::new(&settings, Word::parse("east")?, warehouse);
//! let stop = CancellationToken::new();
//! let serving = tokio::spawn(service.run(stop.clone()));
//!
//! // A client asking every live warehouse.
//! let client = RpcClient::connect(&settings).await?;
//! let gathered = client
//!     .call::<_, StockLevel>(&StockQuery::new("apple")?, Until::Live, Duration::from_secs(5))
//!     .await?;
//! let total = total(&gathered);
//! println!("{} apples in {:?}", total.units, total.answered);
//!
//! client.close().await;
//! stop.cancel();
//! serving.await??;
//! # Ok(())
//! # }
//! ```

pub mod cli;
pub mod exit;
mod query;
mod settings;
mod total;
mod warehouse;

pub use query::{ItemError, MAX_ITEM_CHARS, StockLevel, StockQuery, check_item};
pub use settings::load_settings;
pub use total::{Total, total};
pub use warehouse::{SpecError, Warehouse};

/// The route stock's warehouses and clients meet on: their
/// `topology.prefix`, hence the name of the request exchange and the prefix
/// of every queue (`stock.east`).
pub const ROUTE: &str = "stock";
