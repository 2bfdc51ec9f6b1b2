//! `warehouse NAME --stock apple=3,pear=5`: answers stock queries as the
//! warehouse NAME on the stock route until Ctrl+C or SIGTERM.
//!
//! Exit codes: 0 once stopped by a signal, 1 for bad flags or settings, or a
//! broker refusal that retrying cannot fix (an unreachable broker is retried
//! until stopped).

use std::process::ExitCode;

use clap::Parser;
use rabbit_gather::{report::one_line, service::ConsumerService, shutdown, topology::Word};
use stock::{
    Warehouse,
    cli::{Connection, init_logs, parse_or_exit},
    exit,
};

/// Serves one warehouse's stock levels on the stock route.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// This warehouse's name, as clients see it (1-64 ASCII letters, digits,
    /// '-' or '_').
    name: String,
    /// What it holds, as ITEM=UNITS pairs, comma-separated (apple=3,pear=5);
    /// any other item has 0 units.
    #[arg(long, value_name = "ITEM=UNITS,...", default_value = "")]
    stock: Warehouse,
    #[command(flatten)]
    connection: Connection,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = match parse_or_exit() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // This binary's and the library's lines at info (lapin's own lines
    // repeat what the library reports).
    init_logs("off,rabbit_gather=info,warehouse=info,stock=info");
    let settings = match cli.connection.settings() {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!("{}", one_line(&error));
            return ExitCode::from(exit::FAILURE);
        }
    };
    let name = match Word::parse(&cli.name) {
        Ok(name) => name,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    tracing::info!(warehouse = %name, route = %cli.connection.route, stock = %cli.stock, "starting");
    let service = ConsumerService::new(&settings, name, cli.stock);
    match service.run(shutdown::on_signal()).await {
        Ok(()) => ExitCode::from(exit::OK),
        Err(error) => {
            tracing::error!("warehouse stopped: {}", one_line(&error));
            ExitCode::from(exit::FAILURE)
        }
    }
}
