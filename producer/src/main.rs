//! `producer [OPTIONS] [NAME]...`: greets names through every consumer.

use std::{
    io::{IsTerminal, Write as _},
    process::ExitCode,
};

use clap::Parser;
use futures::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressDrawTarget};
use producer::{Cli, Format, Names, Sinks, exit, input, progress};
use rabbit_gather::report::one_line;

/// Below this many names a progress bar is noise.
const PROGRESS_MIN_NAMES: usize = 50;

/// Read buffer of stdin: a full batch of typical names (1,000 x ~10 bytes)
/// is read in one go, so batches fill when names wait.
const STDIN_BUFFER_BYTES: usize = 256 * 1024;

/// Write buffer of stdout: the greetings of a few batches of typical names.
const STDOUT_BUFFER_BYTES: usize = 64 * 1024;

/// mimalloc: a request's JSON and an answer per name are many small
/// allocations; with it the producer ran 28% and the consumer 19% fewer
/// instructions per name in bulk than on glibc's malloc, for about 10-16 MB
/// more RSS (docs/performance.md, "Where the CPU goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = cli.settings();
    let format = match &loaded {
        Ok(settings) => settings.log.format,
        Err(_) => cli.shared.log_format.unwrap_or_default(),
    };
    rabbit_gather::telemetry::init_with(tracing::Level::WARN, format);
    let settings = match loaded {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("producer: {}", one_line(error.as_ref()));
            return ExitCode::from(exit::USAGE);
        }
    };
    if cli.responders {
        let code = match producer::print_responders(&settings, &mut std::io::stdout()).await {
            Ok(()) => exit::OK,
            Err(error) => {
                eprintln!("producer: {}", one_line(&error));
                error.exit_code()
            }
        };
        producer::exit_now(code);
    }
    let (names, count): (Names, Option<usize>) = if cli.reads_stdin() {
        if std::io::stdin().is_terminal() {
            eprintln!("producer: reading names from stdin, one per line (Ctrl+D to end)");
        }
        (
            input::from_reader(std::io::BufReader::with_capacity(
                STDIN_BUFFER_BYTES,
                std::io::stdin(),
            )),
            None,
        )
    } else {
        match input::from_args(&cli.names) {
            Ok(names) => {
                let count = names.len();
                (stream::iter(names.into_iter().map(Ok)).boxed(), Some(count))
            }
            Err(errors) => {
                for error in errors {
                    eprintln!("producer: {error}");
                }
                eprintln!("producer: nothing was sent");
                return ExitCode::from(exit::USAGE);
            }
        }
    };
    let format = if cli.json { Format::Json } else { Format::Text };
    let mut sinks = Sinks {
        // Block-buffered (Rust's stdout alone writes each line with a call
        // of its own); the run flushes it whenever no result is ready.
        out: std::io::BufWriter::with_capacity(STDOUT_BUFFER_BYTES, std::io::stdout()),
        err: std::io::stderr(),
        progress: progress_bar(count),
    };
    let result = producer::run(
        &settings,
        names,
        format,
        &mut sinks,
        rabbit_gather::shutdown::on_signal(),
    )
    .await;
    // The run flushed what it wrote; whatever an error left unwritten is
    // given one more chance before the process exits without unwinding.
    let _ = sinks.out.flush();
    let code = match result {
        Ok(summary) => summary.exit_code(),
        Err(error) => {
            eprintln!("producer: {}", one_line(&error));
            error.exit_code()
        }
    };
    producer::exit_now(code)
}

/// A bar on stderr for long runs, only when stderr is a terminal.
fn progress_bar(count: Option<usize>) -> ProgressBar {
    let long = count.is_none_or(|n| n >= PROGRESS_MIN_NAMES);
    if !std::io::stderr().is_terminal() || !long {
        return ProgressBar::hidden();
    }
    progress::bar(count, ProgressDrawTarget::stderr_with_hz(progress::DRAW_HZ))
}
