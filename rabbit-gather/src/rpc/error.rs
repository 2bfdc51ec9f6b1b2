//! Errors a caller of the RPC client can act on.

use crate::{amqp::ConnectError, protocol::BatchError};

/// Why a call (or the client) failed. A call that merely timed out is not an
/// error: it returns a [`super::Gathered`] with the missing consumers.
///
/// Cloneable, so that the failure of a batch can be reported for each of
/// its names.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// No connection could be made.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Declaring the exchange or starting the reply consumer failed.
    #[error("cannot set up the RPC client on the broker")]
    Setup(#[source] lapin::Error),
    /// The broker returned the request: no queue is bound to the exchange,
    /// so no consumer can ever answer.
    #[error("no queue is bound to exchange {exchange:?}: is any consumer running?")]
    NoRoute {
        /// The request exchange.
        exchange: String,
    },
    /// The broker refused to take responsibility for the request.
    #[error("the broker refused the request (publisher nack)")]
    Nacked,
    /// A batch that breaks a limit of the contract; nothing was sent.
    #[error("cannot send this batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// The connection or the channel to the broker was lost; every call in
    /// flight fails at once with this error.
    #[error("the connection to the broker was lost")]
    ConnectionLost(#[source] Option<lapin::Error>),
}

impl RpcError {
    /// The broker is unreachable or went away (as opposed to a request problem).
    #[must_use]
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Self::Connect(_) | Self::Setup(_) | Self::ConnectionLost(_)
        )
    }

    /// The settings are wrong ([`ConnectError::is_configuration`]): a
    /// usage error, which no retry can fix.
    #[must_use]
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::Connect(error) if error.is_configuration())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connect_error_in_the_settings_is_a_configuration_error() {
        assert!(RpcError::Connect(ConnectError::TlsWithoutAmqps).is_configuration());
        let timed_out = RpcError::Connect(ConnectError::TimedOut {
            url: "amqp://127.0.0.1:5672".into(),
        });
        assert!(!timed_out.is_configuration());
        assert!(timed_out.is_connection_error());
        assert!(!RpcError::Nacked.is_configuration());
        assert!(!RpcError::ConnectionLost(None).is_configuration());
    }
}
