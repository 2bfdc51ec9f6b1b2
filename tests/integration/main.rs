//! The default suite: integration tests against the test broker only
//! (`AMQP_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`), run by a
//! plain `cargo test --workspace`. Each test owns a unique prefix, so they run
//! in parallel and leave nothing behind. The suites that need more have
//! targets of their own, left out of a plain `cargo test` (`test = false`):
//! `interop` (Python clients: the `.venv` with pika), `nodes` (private
//! RabbitMQ nodes: root and the server scripts), `faults`,
//! `soak` and `cluster` (`scripts/cluster.sh up` first); scripts/test.sh runs
//! them all.

// A failed expectation is a failed test: panicking is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod batching;
mod binaries;
mod bounds;
mod contract;
mod dead_letters;
mod operate;
mod overload;
mod proxy_selftest;
mod refusals;
mod reply_modes;
mod retries;
mod rpc;
mod stop_rules;
