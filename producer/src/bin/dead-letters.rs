//! `dead-letters [OPTIONS] <list|replay|purge>`: inspect, replay and purge
//! the dead-letter queue `<prefix>.dead`.

use std::process::ExitCode;

use producer::dead_letters::{self, Cli, Command, exit};
use rabbit_gather::{report::one_line, shutdown::CancellationToken};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_args();
    rabbit_gather::telemetry::init(tracing::Level::WARN);
    let settings = match cli.settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("dead-letters: {}", one_line(error.as_ref()));
            return ExitCode::from(exit::USAGE);
        }
    };
    // Only a replay stops cleanly between two letters; a signal ends a list
    // or a purge at once, and the broker requeues whatever a list held.
    let shutdown = match cli.command {
        Command::Replay(_) => rabbit_gather::shutdown::on_signal(),
        Command::List { .. } | Command::Purge { .. } => CancellationToken::new(),
    };
    let result = dead_letters::run(
        &settings,
        &cli.command,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        shutdown,
    )
    .await;
    let code = match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("dead-letters: {}", one_line(&error));
            error.exit_code()
        }
    };
    producer::exit_now(code)
}
