//! `consumer WORD`: answers greeting requests until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use consumer::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    consumer::serve(Cli::parse(), |service| service).await
}
