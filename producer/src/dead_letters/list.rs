//! `dead-letters list`: show the letters without removing any.
//!
//! Letters are taken with `basic.get` and held unacknowledged on one channel
//! (so none is taken twice), up to the limit, then all put back at once with
//! `basic.nack` (`multiple`, `requeue`) and the channel closed; a run that
//! dies half-way loses nothing either, as the broker requeues whatever a
//! closed channel held. RabbitMQ puts a requeued message back in its
//! original place in a classic queue, so the order is kept, but marks it
//! `redelivered`; its `x-message-ttl` keeps counting from when it was first
//! queued. While held, letters are invisible to anyone else reading the queue.

use std::{io::Write, time::SystemTime};

use lapin::{Connection, options::BasicGetOptions};

use super::{
    error::{DeadLettersError, broker},
    held::requeue_held,
    letter::Letter,
};

/// How to list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// JSON lines instead of text lines.
    pub(crate) json: bool,
    /// Most letters to show.
    pub(crate) limit: u32,
}

/// Writes one line per letter of `queue` (which held `letters` when counted)
/// to `out`, oldest first, and a summary to `err`; then puts them all back.
pub(crate) async fn list<O: Write, E: Write>(
    connection: &Connection,
    queue: &str,
    letters: u32,
    options: Options,
    out: &mut O,
    err: &mut E,
) -> Result<(), DeadLettersError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(broker("opening a channel"))?;
    let mut last_tag = None;
    let mut listed: u32 = 0;
    let now = SystemTime::now();
    let walked = async {
        while listed < options.limit {
            let taken = channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: false })
                .await
                .map_err(broker("reading a letter"))?;
            let Some(taken) = taken else { break };
            let delivery = taken.delivery;
            last_tag = Some(delivery.delivery_tag);
            listed += 1;
            let letter = Letter::read(
                &delivery.properties,
                &delivery.data,
                delivery.redelivered,
                now,
            );
            let line = if options.json {
                letter.json_line()
            } else {
                letter.text_line()
            };
            writeln!(out, "{line}")?;
        }
        Ok::<_, DeadLettersError>(())
    }
    .await;
    // Put back before anything else, whatever happened above.
    requeue_held(&channel, last_tag).await;
    walked?;
    // Letters may have arrived since they were counted.
    let letters = letters.max(listed);
    let more = if listed < letters && listed == options.limit {
        format!(" (--limit {})", options.limit)
    } else {
        String::new()
    };
    writeln!(
        err,
        "dead-letters: listed {listed} of {letters} letters in {queue}{more}"
    )?;
    Ok(())
}
