//! Letters taken with `basic.get` and held unacknowledged: how they go
//! back to their place in the queue.

use lapin::{Channel, options::BasicNackOptions};

/// Puts every letter still held on `channel` (taken up to `last_tag` and not
/// acked) back in its place in the queue, then closes the channel. Should
/// either step fail, the broker requeues them anyway when the channel or
/// connection goes.
pub(super) async fn requeue_held(channel: &Channel, last_tag: Option<u64>) {
    if let Some(tag) = last_tag {
        let requeue = BasicNackOptions {
            multiple: true,
            requeue: true,
        };
        if let Err(error) = channel.basic_nack(tag, requeue).await {
            tracing::debug!(%error, "requeueing held letters; closing the channel requeues them");
        }
    }
    // The close is answered after the broker has handled the acks and nacks
    // before it.
    if let Err(error) = channel.close(200, "done".into()).await {
        tracing::debug!(%error, "closing the channel that held letters");
    }
}
