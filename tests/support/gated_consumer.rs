//! `gated-consumer WORD`: the consumer service exactly as the `consumer`
//! binary runs it (same flags, settings, signals and exit), except that its
//! handler holds every request "in hand" until a line arrives on stdin (the
//! gate then stays open). For tests that must kill or stop a consumer with a
//! message in hand, without a test-only setting in the production binary.
//! Each held request is logged on stderr as `gate: holding <NAME>`.

use std::process::ExitCode;

use clap::Parser;
use consumer::Cli;
use rabbit_gather::{
    protocol::Name,
    service::{Context, HandlerError},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::watch,
};

#[tokio::main]
async fn main() -> ExitCode {
    let (open, gate) = watch::channel(false);
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        if let Ok(Some(_)) = lines.next_line().await {
            tracing::info!("gate: open");
            open.send_replace(true);
        }
        // Keep the sender alive (stdin closed: the gate stays as it is).
        std::future::pending::<()>().await;
    });
    let handler = move |name: Name, cx: Context| {
        let mut gate = gate.clone();
        async move {
            tracing::info!("gate: holding {name}");
            gate.wait_for(|open| *open)
                .await
                .map_err(|_| HandlerError::transient("gate dropped"))?;
            Ok(format!("{} {name}", cx.word))
        }
    };
    consumer::serve(Cli::parse(), |service| service.with_handler(handler)).await
}
