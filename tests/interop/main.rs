//! Clients and responders in another language (Python + pika, written from
//! the documented contract only) against the test broker. They need the
//! project's `.venv` with pika (scripts/test.sh makes it; or set
//! `GREETINGS_PYTHON`), hence a target of their own, left out of a plain
//! `cargo test`: `cargo test -p greetings-tests --test interop` (scripts/test.sh
//! runs it on RabbitMQ 3.10 and 4.0.5).

// A failed expectation is a failed test: panicking is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod greet_py;
mod non_utf8;
mod traceparent;
mod v1_responder;
