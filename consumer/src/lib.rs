//! The `consumer` binary's logic: flags, settings, and the service for one word.
//!
//! `main.rs` only parses flags and calls [`serve`]; tests call [`run`] with a
//! shutdown token of their own, or [`serve`] with another handler (the
//! `gated-consumer` test binary).

pub mod http;
pub mod stopped;

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::Parser;
use rabbit_gather::{
    Settings,
    cli::{SharedArgs, with_default},
    service::{self, ServiceError},
    settings::{DEFAULT_CONSUMER_CONCURRENCY, DEFAULT_PREFETCH},
    shutdown::CancellationToken,
    topology::Word,
};

/// Exit codes of the `consumer` binary.
pub mod exit {
    /// Stopped by SIGINT or SIGTERM after finishing the message in hand.
    pub const OK: u8 = 0;
    /// Any other failure.
    pub const FAILURE: u8 = 1;
    /// Bad flags or configuration, or an `--http-addr` that cannot be bound.
    pub const USAGE: u8 = 2;
    /// The broker refused the service for good: credentials, permissions, or
    /// a queue or exchange that exists with other arguments. (An unreachable
    /// broker is retried forever, never an exit.)
    pub const BROKER: u8 = 4;
}

/// Answers greeting requests for one word: `consumer hello` prints and replies
/// `hello <NAME>` for every request published to the greetings exchange.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    // The word is required except with --probe, which clap alone would
    // show as an optional `[WORD]`.
    override_usage = "consumer [OPTIONS] <WORD>\n       consumer --probe <URL>",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// The greeting word this service answers with (hello, goodbye, bonjour...).
    #[arg(required = true, value_name = "WORD")]
    pub word: Option<String>,
    /// Config file, broker URL and prefix.
    #[command(flatten)]
    pub shared: SharedArgs,
    /// `consumer.prefetch`, when given.
    #[arg(long, help = with_default("Unacknowledged deliveries at once", DEFAULT_PREFETCH))]
    pub prefetch: Option<u16>,
    /// `consumer.concurrency`, when given.
    #[arg(
        long,
        help = with_default(
            "Deliveries handled at once, at most the prefetch",
            DEFAULT_CONSUMER_CONCURRENCY,
        )
    )]
    pub concurrency: Option<u16>,
    /// Serve /healthz, /readyz and /metrics on this address (e.g.
    /// 127.0.0.1:9090) [default: off].
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Health-check mode: GET URL (e.g. http://127.0.0.1:9090/readyz), print
    /// the answer, exit 0 on 200 and 1 otherwise. For container health
    /// checks in an image without curl.
    #[arg(long, value_name = "URL", exclusive = true)]
    pub probe: Option<String>,
}

/// The exit codes of [`exit`], as `consumer --help` lists them.
const EXIT_CODES: &str = "\
Exit codes:
  0  stopped by SIGINT or SIGTERM (after finishing the messages in hand)
  1  any other failure (with --probe: the endpoint is not ready or unreachable)
  2  bad usage: flags, configuration, word, or an --http-addr that cannot be bound
  4  the broker refused the service for good: credentials, permissions, or a queue or
     exchange that exists with other arguments (an unreachable broker is retried, never an exit)";

/// How long `--probe` waits for an answer.
pub const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

impl Cli {
    /// Loads the layered settings and applies the flags on top.
    ///
    /// # Errors
    /// A message naming the bad setting or word.
    pub fn settings(&self) -> anyhow::Result<(Settings, Word)> {
        let mut settings = self.shared.load()?;
        if let Some(prefetch) = self.prefetch {
            settings.consumer.prefetch = prefetch;
        }
        if let Some(concurrency) = self.concurrency {
            settings.consumer.concurrency = concurrency;
        }
        if let Some(addr) = self.http_addr {
            settings.consumer.http_addr = Some(addr);
        }
        settings.validate()?;
        Ok((
            settings,
            Word::parse(self.word.as_deref().unwrap_or_default())?,
        ))
    }
}

/// Runs the service for `word` until `shutdown` completes.
///
/// # Errors
/// The service's failure; see [`ServiceError`].
pub async fn run(
    settings: &Settings,
    word: Word,
    shutdown: rabbit_gather::shutdown::CancellationToken,
) -> Result<(), ServiceError> {
    service::run(settings, word, shutdown).await
}

/// The whole `consumer` program after flag parsing: logs, settings, the
/// service for the word (which `customize` may change, e.g. its handler),
/// run until SIGINT or SIGTERM, and the documented exit code. A binary of
/// your own with another handler is `serve(Cli::parse(), |s| s.with_handler(h))`.
pub async fn serve(
    cli: Cli,
    customize: impl FnOnce(service::ConsumerService) -> service::ConsumerService,
) -> ExitCode {
    if let Some(url) = &cli.probe {
        return probe(url).await;
    }
    let loaded = cli.settings();
    let format = match &loaded {
        Ok((settings, _)) => settings.log.format,
        Err(_) => cli.shared.log_format.unwrap_or_default(),
    };
    rabbit_gather::telemetry::init_with(tracing::Level::INFO, format);
    let (settings, word) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!(
                "consumer: {}",
                rabbit_gather::report::one_line(error.as_ref())
            );
            return ExitCode::from(exit::USAGE);
        }
    };
    let service = customize(service::ConsumerService::greetings(&settings, word));
    let word = service.word().to_string();
    let counters = service.counters();
    let sessions = service.sessions();
    let endpoint = match settings.consumer.http_addr {
        Some(addr) => match http::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                eprintln!(
                    "consumer: cannot serve HTTP on {addr} (--http-addr, consumer.http_addr): \
                     {error}"
                );
                return ExitCode::from(exit::USAGE);
            }
        },
        None => None,
    };
    let stop_http = CancellationToken::new();
    let http_server = endpoint.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
        }
        let observed = http::Observed {
            health: service.health(),
            counters: service.counters(),
            route: settings.topology.prefix.clone(),
            word: service.word().to_string(),
        };
        tokio::spawn(http::serve(listener, observed, stop_http.clone()))
    });
    let result = service.run(rabbit_gather::shutdown::on_signal()).await;
    stop_http.cancel();
    if let Some(server) = http_server
        && let Ok(Err(error)) = server.await
    {
        tracing::warn!(%error, "the HTTP endpoint failed");
    }
    // A service that never consumed has nothing to count; its error says why.
    if *sessions.borrow() > 0 {
        eprintln!("{}", stopped::line(&word, &counters.snapshot()));
    }
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(error) => {
            let code = exit_code(&error);
            eprintln!("consumer: {}", rabbit_gather::report::one_line(&error));
            code
        }
    }
}

/// `consumer --probe URL`: exit 0 on a 200, 1 otherwise, the answer on stdout.
async fn probe(url: &str) -> ExitCode {
    match http::probe(url, HEALTH_PROBE_TIMEOUT).await {
        Ok((200, body)) => {
            print!("{body}");
            ExitCode::from(exit::OK)
        }
        Ok((status, body)) => {
            println!("{status} {}", body.trim_end());
            ExitCode::from(exit::FAILURE)
        }
        Err(error @ http::ProbeError::BadUrl(_)) => {
            eprintln!("consumer: {error}");
            ExitCode::from(exit::USAGE)
        }
        Err(error) => {
            println!("unreachable: {error}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// Maps a service failure to the documented exit code.
#[must_use]
pub fn exit_code(error: &ServiceError) -> ExitCode {
    ExitCode::from(match error {
        ServiceError::Connect(e) if e.is_configuration() => exit::USAGE,
        ServiceError::Connect(_)
        | ServiceError::ConsumerEnded
        | ServiceError::Broker { .. }
        | ServiceError::ConnectionClosed { .. }
        | ServiceError::OpenTimedOut(_) => exit::BROKER,
    })
}
