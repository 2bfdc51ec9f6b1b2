//! `consumer WORD`: answers greeting requests until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use consumer::Cli;

/// mimalloc: a request's JSON and an answer per name are many small
/// allocations; with it the producer ran 28% and the consumer 19% fewer
/// instructions per name in bulk than on glibc's malloc, for about 10-16 MB
/// more RSS (docs/performance.md, "Where the CPU goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    consumer::serve(Cli::parse(), |service| service).await
}
