//! The typed side of a call, shared by both clients: requests encoded to
//! JSON before they are sent, and a single call's one result decoded.

use serde::{Serialize, de::DeserializeOwned};

use super::{error::RpcError, gathered::Gathered, until::Until};
use crate::protocol::{BatchError, Json};

/// Encodes one request.
pub(crate) fn encode_item<Q: Serialize + ?Sized>(request: &Q) -> Result<Json, RpcError> {
    Json::encode(request).map_err(|e| RpcError::InvalidBatch(BatchError::Encode(e.to_string())))
}

/// Encodes every request of a batch.
pub(crate) fn encode_items<Q: Serialize>(requests: &[Q]) -> Result<Vec<Json>, RpcError> {
    requests.iter().map(encode_item).collect()
}

/// The one result of a single call, its answers decoded.
pub(crate) fn only_decoded<R: DeserializeOwned>(
    mut gathered: Vec<Gathered>,
    until: &Until,
) -> Gathered<R> {
    gathered
        .pop()
        .unwrap_or_else(|| Gathered::empty(until.expected()))
        .decode()
}
