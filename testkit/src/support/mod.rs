//! What the fault suites break things with: a private RabbitMQ node
//! ([`node`]), a fault-injection TCP proxy ([`proxy`]) and the ledger of a
//! run ([`ledger`]).

pub mod ledger;
pub mod node;
pub mod proxy;
