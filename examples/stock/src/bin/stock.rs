//! `stock ITEM [--timeout 5s]`: asks every live warehouse how many units of
//! ITEM it holds, prints one line per warehouse that answered (`east 3`) and
//! then `total 8`; names on stderr the warehouses that did not answer.
//!
//! Exit codes are in [`stock::exit`]: 0 when every live warehouse answered,
//! 3 when one was missing, 2 when the broker is unreachable, 1 otherwise.

use std::{fmt::Write as _, io::Write as _, process::ExitCode, time::Duration};

use clap::Parser;
use rabbit_gather::{
    duration,
    report::one_line,
    rpc::{Gathered, RpcClient, RpcError, Until},
    settings::DEFAULT_TIMEOUT,
};
use stock::{
    StockLevel, StockQuery,
    cli::{Connection, init_logs, parse_or_exit},
    exit, total,
};

/// Asks every live warehouse for its stock of an item and sums the answers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The item to count (e.g. apple).
    item: String,
    /// Deadline of the whole call, roll call included.
    #[arg(
        long,
        value_parser = duration::parse,
        help = format!(
            "Deadline of the whole call, roll call included [default: rpc.timeout, {}]",
            duration::format(DEFAULT_TIMEOUT)
        )
    )]
    timeout: Option<Duration>,
    #[command(flatten)]
    connection: Connection,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = match parse_or_exit() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // Warnings and errors only: the program's own output is its answer.
    init_logs("off,rabbit_gather=warn,stock=warn");
    ExitCode::from(run(&cli).await)
}

/// The whole program after flag parsing; the exit code.
async fn run(cli: &Cli) -> u8 {
    let settings = match cli.connection.settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("stock: {}", one_line(&error));
            return exit::FAILURE;
        }
    };
    let query = match StockQuery::new(cli.item.as_str()) {
        Ok(query) => query,
        Err(error) => {
            eprintln!("stock: {error}; nothing was sent");
            return exit::FAILURE;
        }
    };
    let timeout = cli.timeout.unwrap_or(settings.rpc.timeout);
    let client = match RpcClient::connect(&settings).await {
        Ok(client) => client,
        Err(error) => return failed(&error, &cli.connection.route),
    };
    let called = client
        .call::<_, StockLevel>(&query, Until::Live, timeout)
        .await;
    client.close().await;
    match called {
        Ok(gathered) => report(&gathered, &cli.connection.route, timeout),
        Err(error) => failed(&error, &cli.connection.route),
    }
}

/// Prints the levels and the total, names missing and failed warehouses.
fn report(gathered: &Gathered<StockLevel>, route: &str, timeout: Duration) -> u8 {
    let total = total(gathered);
    let mut levels: Vec<(&str, u64)> = gathered
        .replies
        .iter()
        .filter_map(|reply| Some((reply.consumer.as_str(), reply.outcome.ok()?.units)))
        .collect();
    levels.sort_unstable();
    let mut out = String::new();
    for (warehouse, units) in levels {
        let _ = writeln!(out, "{warehouse} {units}");
    }
    // No total when no warehouse is live: 0 would read as an answer.
    if !gathered.replies.is_empty() || !gathered.missing.is_empty() {
        let _ = writeln!(out, "total {}", total.units);
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        eprintln!("stock: cannot write to stdout: {error}");
        return exit::FAILURE;
    }
    for (warehouse, why) in &total.errors {
        eprintln!("stock: {warehouse} failed: {why}");
    }
    for warehouse in &total.missing {
        eprintln!(
            "stock: {warehouse} did not answer within {}",
            duration::format(timeout)
        );
    }
    if !total.missing.is_empty() {
        exit::MISSING
    } else if !total.errors.is_empty() {
        exit::FAILURE
    } else if total.answered.is_empty() {
        eprintln!(
            "stock: no warehouse is live on route {route:?} (none answered the roll call within {})",
            duration::format(timeout)
        );
        exit::FAILURE
    } else {
        exit::OK
    }
}

/// Reports a failed call; the exit code.
fn failed(error: &RpcError, route: &str) -> u8 {
    match error {
        RpcError::NoRoute { .. } => {
            eprintln!("stock: no warehouse serves route {route:?} (no queue is bound to it)");
            exit::FAILURE
        }
        // A wrong URL or an unreadable TLS or password file is a bad flag,
        // not a broker that is down.
        error if error.is_configuration() => {
            eprintln!("stock: {}", one_line(error));
            exit::FAILURE
        }
        error if error.is_connection_error() => {
            eprintln!("stock: {}", one_line(error));
            exit::UNREACHABLE
        }
        error => {
            eprintln!("stock: {}", one_line(error));
            exit::FAILURE
        }
    }
}
