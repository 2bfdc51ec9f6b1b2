//! The one test harness of the workspace, in the manner of
//! zero-to-production's `tests/api/helpers.rs`: every test crate (the
//! `greetings-tests` suites, the producer's, consumer's and stock's own
//! tests) builds its world from here.
//!
//! - [`broker`]: the broker under test (`AMQP_URL`, default the local guest
//!   broker); no broker is a clear failure naming what to start, never a
//!   skipped test.
//! - [`TestApp`]: one test's own uuid-named prefix, so tests run in
//!   parallel; its consumers stop and its queues and exchanges are deleted
//!   when it is dropped, pass or fail.
//! - [`consumer`], [`process`], [`consumer_process`], [`producer_run`]:
//!   consumer services in process, and the workspace's binaries run
//!   black-box.
//! - [`raw`]: plain AMQP, for what the library's client would never send.
//! - [`rabbitmqctl`](mod@rabbitmqctl), [`wait`], [`logs`]: the broker's CLI, waiting on an
//!   event with a bound, and logs when asked (`TEST_LOG=1`).
//! - [`support`]: what the fault suites break things with: private nodes, a
//!   fault-injection proxy, and the ledger of a run.

// A failed expectation is a failed test: the harness panics on purpose, with
// a message saying what did not happen.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod app;
pub mod broker;
pub mod cleanup;
pub mod consumer;
pub mod consumer_process;
mod lines;
pub mod logs;
pub mod process;
pub mod producer_run;
pub mod rabbitmqctl;
pub mod raw;
pub mod support;
pub mod wait;

pub use app::TestApp;
pub use broker::{amqp_url, connect_raw};
pub use consumer::{
    RunningConsumer, TestHandler, call_ada, client_and_call_ada, greeting_reply, stop_all,
    test_handler,
};
pub use consumer_process::ConsumerProcess;
pub use logs::quiet_expected_panics;
pub use process::{Finished, bin, run_to_end, sigterm};
pub use producer_run::{ProducerRun, run_producer, run_producer_with, run_producer_with_stats};
pub use rabbitmqctl::{kill_connection, list_queues, rabbitmqctl};
pub use raw::{
    DeadLetters, Raw, answerable, bind, consume_no_ack, correlation_id, declare_durable,
    publish_routed, queue_counts, queue_exists, reason, routes,
};
pub use wait::{EVENT_TIMEOUT, wait_until, within};
