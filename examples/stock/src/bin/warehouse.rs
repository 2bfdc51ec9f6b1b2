//! `warehouse NAME --stock apple=3,pear=5`: answers stock queries as the
//! warehouse NAME on the stock route until Ctrl+C or SIGTERM.
//!
//! Exit codes: 0 once stopped by a signal, 1 for bad flags or settings, or a
//! broker refusal that retrying cannot fix (an unreachable broker is retried
//! until stopped).

use std::process::ExitCode;

use clap::Parser;
use rabbit_gather::{report::one_line, service::ConsumerService, shutdown, topology::Word};
use stock::{ROUTE, Warehouse, exit, load_settings};
use tracing_subscriber::EnvFilter;

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
    /// The route (exchange and queue prefix) warehouses and clients share.
    #[arg(long, env = "STOCK_ROUTE", default_value = ROUTE)]
    route: String,
    /// Broker URL [default: AMQP_URL, else the local broker].
    #[arg(long, value_name = "URL")]
    amqp_url: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version are no failure; bad flags exit 1.
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                exit::FAILURE
            } else {
                exit::OK
            });
        }
    };
    init_logs();
    let settings = match load_settings(&cli.route, cli.amqp_url.as_deref()) {
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
    tracing::info!(warehouse = %name, route = %cli.route, stock = %cli.stock, "starting");
    let service = ConsumerService::new(&settings, name, cli.stock);
    match service.run(shutdown::on_signal()).await {
        Ok(()) => ExitCode::from(exit::OK),
        Err(error) => {
            tracing::error!("warehouse stopped: {}", one_line(&error));
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// Log lines on stderr: `RUST_LOG` when set, else this binary's and the
/// library's at info (lapin's own lines repeat what the library reports).
fn init_logs() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("off,rabbit_gather=info,warehouse=info,stock=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
