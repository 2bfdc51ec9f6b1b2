//! Tests that boot private RabbitMQ nodes of their own
//! ([`testkit::support::node::PrivateNode`]) to stop, restart, misconfigure or
//! starve them; the machine's main broker is never touched. They need root
//! and the server scripts under `/usr/lib/rabbitmq/bin`, hence a target of
//! their own, left out of a plain `cargo test`:
//! `sudo -E cargo test -p greetings-tests --test nodes` (scripts/test.sh runs
//! it).

// A failed expectation is a failed test: panicking is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod broker_restart;
mod deadlines;
mod node_selftest;
mod privileges;
mod quorum;
mod shutdown;
mod sizes;
mod tls;
