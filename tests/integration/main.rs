//! Integration tests against a real RabbitMQ (`AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). Each test owns a unique prefix,
//! so they run in parallel and leave nothing behind.

// A failed expectation is a failed test: panicking is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod helpers;
mod ledger;
mod node;
mod proxy;

mod batching;
mod binaries;
mod bounds;
mod cluster;
mod contract;
mod dead_letters;
mod deadlines;
mod faults;
mod interop;
mod node_selftest;
mod non_utf8;
mod operate;
mod overload;
mod privileges;
mod proxy_selftest;
mod quorum;
mod refusals;
mod reply_modes;
mod retries;
mod rpc;
mod shutdown;
mod sizes;
mod soak;
mod stop_rules;
mod tls;
