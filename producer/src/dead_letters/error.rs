//! [`DeadLettersError`]: why a `dead-letters` command could not do its
//! work, and its exit code.

use rabbit_gather::amqp::ConnectError;

use super::exit;

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum DeadLettersError {
    /// `purge` without `--yes`.
    #[error(
        "purge deletes every letter in {queue} for good; run `dead-letters purge --yes` to do it"
    )]
    NotConfirmed {
        /// The queue it would purge.
        queue: String,
    },
    /// Bad settings, or the broker cannot be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The dead-letter queue does not exist.
    #[error(
        "{queue} does not exist: no consumer has run with prefix {prefix:?} on this broker and \
         vhost (check --prefix and the URL)"
    )]
    MissingQueue {
        /// The queue.
        queue: String,
        /// The prefix it was derived from.
        prefix: String,
    },
    /// The request exchange does not exist: nothing to replay to.
    #[error(
        "the request exchange {exchange} does not exist: no producer or consumer has run with \
         this prefix on this broker and vhost; nothing was replayed"
    )]
    MissingExchange {
        /// The exchange.
        exchange: String,
    },
    /// The broker refused an operation or the connection was lost.
    #[error("{doing}")]
    Broker {
        /// What was being done.
        doing: &'static str,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// stdout or stderr could not be written (letters held are put back).
    #[error("cannot write output")]
    Output(#[from] std::io::Error),
}

impl DeadLettersError {
    /// The documented exit code for this failure.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NotConfirmed { .. } => exit::USAGE,
            Self::Connect(e) if e.is_configuration() => exit::USAGE,
            Self::Connect(_) | Self::Broker { .. } => exit::BROKER,
            Self::MissingQueue { .. } | Self::MissingExchange { .. } => exit::NO_ROUTE,
            Self::Output(_) => exit::FAILURE,
        }
    }
}

/// Maps a lapin error to [`DeadLettersError::Broker`] saying what was being done.
pub(super) fn broker(doing: &'static str) -> impl FnOnce(lapin::Error) -> DeadLettersError {
    move |source| DeadLettersError::Broker { doing, source }
}
