//! Why a service or one of its sessions stopped, and which of those reasons
//! retrying cannot fix.

use std::time::Duration;

use lapin::{
    ErrorKind,
    protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError},
};

use crate::amqp::ConnectError;

/// Why the service stopped other than by a shutdown signal, or why a session
/// ended (logged, then retried unless [`ServiceError::is_fatal`]).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No connection could be made.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A broker operation failed.
    #[error("broker operation failed while {doing}")]
    Broker {
        /// What the service was doing.
        doing: &'static str,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// The broker cancelled the consumer or the connection closed.
    #[error("the broker stopped delivering to this consumer (queue deleted or connection closed)")]
    ConsumerEnded,
    /// A connection was found closed while work on it was still waiting for
    /// the broker (see [`LIVENESS_CHECK`](crate::service::LIVENESS_CHECK)).
    #[error("the {which} connection closed while {doing}")]
    ConnectionClosed {
        /// `consuming` or `publishing`.
        which: &'static str,
        /// What was waiting on it.
        doing: &'static str,
    },
    /// Opening a session (connections, topology, consumer) took longer than
    /// [`OPEN_TIMEOUT`](crate::service::OPEN_TIMEOUT).
    #[error("opening a session took longer than {0:?}")]
    OpenTimedOut(Duration),
}

impl ServiceError {
    /// Errors that retrying cannot fix: an invalid URL, refused credentials or
    /// permissions, a queue or exchange that exists with other arguments.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        let source = match self {
            Self::Connect(error) if error.is_configuration() => return true,
            Self::Connect(ConnectError::Unreachable { source, .. }) => source,
            Self::Broker { source, .. } => source,
            Self::Connect(_)
            | Self::ConsumerEnded
            | Self::ConnectionClosed { .. }
            | Self::OpenTimedOut(_) => return false,
        };
        match source.kind() {
            ErrorKind::ProtocolError(error) => matches!(
                error.kind(),
                AMQPErrorKind::Soft(
                    AMQPSoftError::ACCESSREFUSED | AMQPSoftError::PRECONDITIONFAILED
                ) | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED)
            ),
            _ => false,
        }
    }
}

/// Maps a lapin error to [`ServiceError::Broker`] saying what was being done.
pub(crate) fn broker(doing: &'static str) -> impl FnOnce(lapin::Error) -> ServiceError {
    move |source| ServiceError::Broker { doing, source }
}
