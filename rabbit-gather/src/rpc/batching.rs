//! Adaptive batching: a stream of names in, one result per name out, in
//! input order, with the names that wait while requests are in flight sent
//! together.
//!
//! Nothing waits to fill a batch. Up to `concurrency` requests are in
//! flight; when one ends, every name already waiting (up to `batch`) goes in
//! the next request, and a name that arrives when nothing waits goes at
//! once, alone, in contract v1 form. So at one name in flight it behaves
//! exactly as without batching, and under load requests grow on their own
//! up to `batch` names. Memory is bounded by `batch` x `concurrency` names,
//! whatever the input size.

use std::{ops::Range, time::Duration};

use futures::{Stream, StreamExt, future, stream};
use tokio::time::Instant;

use super::{Gathered, ReconnectingClient, RpcError};
use crate::protocol::{self, BATCH_OVERHEAD_BYTES, Name};

/// How [`call_each`] sends names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOptions {
    /// Consumers to wait for, per name.
    pub expect: Vec<String>,
    /// Deadline of each request, retries included.
    pub timeout: Duration,
    /// Resends of a request after a lost connection or a nack.
    pub retries: u32,
    /// Most names per request: 1 sends every name alone (contract v1, for
    /// consumers that know only v1). At most
    /// [`MAX_BATCH_NAMES`](protocol::MAX_BATCH_NAMES).
    pub batch: usize,
    /// Most requests in flight.
    pub concurrency: usize,
}

/// One name's result.
#[derive(Debug, Clone)]
pub struct Called {
    /// The name sent.
    pub name: Name,
    /// What each consumer answered for it, or why its request failed (every
    /// name of a failed request gets the same error).
    pub result: Result<Gathered, RpcError>,
    /// How long its request took.
    pub took: Duration,
}

/// Calls every consumer for each name of `items`, batching as the module
/// docs say, and yields one result per item in input order. An `Err` item
/// (say, an input line that is not a valid name) is passed through in its
/// place, so a caller can report it where it was.
pub fn call_each<'a, E, S>(
    client: &'a ReconnectingClient,
    items: S,
    options: &'a CallOptions,
) -> impl Stream<Item = Result<Called, E>> + 'a
where
    S: Stream<Item = Result<Name, E>> + 'a,
    E: 'a,
{
    let batch = options.batch.clamp(1, protocol::MAX_BATCH_NAMES);
    items
        // Every item ready now, up to `batch`: never waits for more.
        .ready_chunks(batch)
        .map(move |chunk| call_chunk(client, chunk, options))
        .buffered(options.concurrency.max(1))
        .flat_map(stream::iter)
}

/// Sends the names of one chunk (split further only when their body would
/// pass the client's [`max_batch_bytes`](ReconnectingClient::max_batch_bytes))
/// and puts every item back in its place.
async fn call_chunk<E>(
    client: &ReconnectingClient,
    chunk: Vec<Result<Name, E>>,
    options: &CallOptions,
) -> Vec<Result<Called, E>> {
    let started = Instant::now();
    let mut names = Vec::with_capacity(chunk.len());
    // `None` where a name goes, else the item passed through.
    let mut order = Vec::with_capacity(chunk.len());
    for item in chunk {
        match item {
            Ok(name) => {
                names.push(name);
                order.push(None);
            }
            Err(error) => order.push(Some(error)),
        }
    }
    let groups = within_byte_limit(&names, client.max_batch_bytes());
    let calls = groups.iter().map(|range| {
        client.call_batch(
            &names[range.clone()],
            &options.expect,
            options.timeout,
            options.retries,
        )
    });
    let outcomes = future::join_all(calls).await;
    let took = started.elapsed();
    let mut results = Vec::with_capacity(names.len());
    for (range, outcome) in groups.into_iter().zip(outcomes) {
        match outcome {
            Ok(gathered) => results.extend(gathered.into_iter().map(Ok)),
            Err(error) => results.extend(range.map(|_| Err(error.clone()))),
        }
    }
    let mut called =
        names
            .into_iter()
            .zip(results)
            .map(|(name, result)| Called { name, result, took });
    order
        .into_iter()
        .filter_map(|slot| match slot {
            Some(error) => Some(Err(error)),
            None => called.next().map(Ok),
        })
        .collect()
}

/// Consecutive ranges of `names` whose batch bodies stay within `limit`
/// bytes (at most [`MAX_BATCH_BYTES`](protocol::MAX_BATCH_BYTES); usually one range: 1,000 names of up
/// to 60 bytes fit in 64 KiB).
fn within_byte_limit(names: &[Name], limit: usize) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut bytes = BATCH_OVERHEAD_BYTES - 1;
    for (index, name) in names.iter().enumerate() {
        let more = protocol::batch_bytes_of(name);
        if index > start && bytes + more > limit {
            groups.push(start..index);
            start = index;
            bytes = BATCH_OVERHEAD_BYTES - 1;
        }
        bytes += more;
    }
    if start < names.len() {
        groups.push(start..names.len());
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MAX_BATCH_BYTES;

    fn name(text: &str) -> Name {
        Name::parse(text).expect("valid")
    }

    #[test]
    fn names_are_grouped_so_that_every_batch_body_fits_the_limit() {
        // 100 four-byte characters: 403 bytes each in a body.
        let wide = name(&"😀".repeat(100));
        let names = vec![wide; 1000];
        let groups = within_byte_limit(&names, MAX_BATCH_BYTES);
        assert!(groups.len() > 1);
        assert_eq!(groups.first().map(|r| r.start), Some(0));
        assert_eq!(groups.last().map(|r| r.end), Some(1000));
        for pair in groups.windows(2) {
            assert_eq!(pair[0].end, pair[1].start, "consecutive, nothing left out");
        }
        for range in groups {
            let body = protocol::encode_names(&names[range]).expect("within the limits");
            assert!(body.len() <= MAX_BATCH_BYTES);
        }
        let small = within_byte_limit(&[name("Ada"), name("Bob")], MAX_BATCH_BYTES);
        assert_eq!((small.len(), small.first()), (1, Some(&(0..2))));
        assert!(within_byte_limit(&[], MAX_BATCH_BYTES).is_empty());
        // A smaller broker limit cuts smaller batches.
        let names = vec![name(&"n".repeat(100)); 1000];
        let groups = within_byte_limit(&names, 65_536);
        assert_eq!(groups.len(), 2);
        for range in groups {
            let body = protocol::encode_names_within(&names[range], 65_536).expect("fits");
            assert!(body.len() <= 65_536);
        }
    }
}
