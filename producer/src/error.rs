//! [`ProducerError`]: why a run stopped before the end of its input, and
//! its exit code.

use std::io;

use rabbit_gather::rpc::RpcError;

use crate::exit;

/// Why a run stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// Connecting, no route, or connection lost.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// stdout or stderr could not be written.
    #[error("cannot write output")]
    Output(#[from] io::Error),
    /// `--expect all` or `--responders`: no consumer answered a roll call.
    #[error(
        "no consumer answered a roll call within {}: is any consumer running?",
        rabbit_gather::duration::format(*.0)
    )]
    NoResponders(std::time::Duration),
}

impl ProducerError {
    /// The documented exit code for this failure.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Rpc(e) if e.is_configuration() => exit::USAGE,
            Self::Rpc(RpcError::NoRoute { .. }) | Self::NoResponders(_) => exit::NO_ROUTE,
            Self::Rpc(e) if e.is_connection_error() => exit::BROKER,
            Self::Rpc(_) | Self::Output(_) => exit::FAILURE,
        }
    }
}
