//! `consumer WORD`: answers greeting requests until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use consumer::{Cli, exit, exit_code};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    common::telemetry::init("info");
    let (settings, word) = match cli.settings() {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::error!("{error:#}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match consumer::run(&settings, word, common::shutdown::shutdown_signal()).await {
        Ok(()) => ExitCode::from(exit::OK),
        Err(error) => {
            let code = exit_code(&error);
            tracing::error!("consumer stopped: {:#}", anyhow::Error::from(error));
            code
        }
    }
}
