//! Adaptive batching: a stream of requests in, one result per request out,
//! in input order, with the requests that wait while others are in flight
//! sent together.
//!
//! Up to `concurrency` requests are in flight. A full batch (`batch` names)
//! goes as soon as a slot is free; a partial one goes at once only when no
//! request is in flight (Nagle's rule, in [`chunks`](super::chunks)), so a
//! name that arrives alone goes at once, alone, in contract v1 form, and at
//! one name in flight it behaves exactly as without batching, while under
//! load the names that arrive during requests in flight gather into full
//! batches. Memory is bounded by `batch` x `concurrency` names, whatever the
//! input size.

use std::{ops::Range, time::Duration};

use futures::{Stream, future};
use tokio::time::Instant;

use serde::{Serialize, de::DeserializeOwned};

use super::{
    chunks::chunked_calls, error::RpcError, gathered::Gathered, reconnecting::ReconnectingClient,
    typed::encode_item, until::Until,
};
use crate::protocol::{self, Json};

/// How [`call_each`] sends requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOptions {
    /// When each request's gather ends (besides its deadline).
    pub until: Until,
    /// Deadline of each request, retries included.
    pub timeout: Duration,
    /// Resends of a request after a lost connection or a nack.
    pub retries: u32,
    /// Most requests per message: 1 sends every request alone (for
    /// greetings, contract v1, for consumers that know only v1). At most the
    /// contract's `max_batch_items`.
    pub batch: usize,
    /// Most requests in flight.
    pub concurrency: usize,
}

/// One request's result.
#[derive(Debug, Clone)]
pub struct Called<Q, R = Json> {
    /// The request sent.
    pub request: Q,
    /// What each responder answered to it, or why its message failed (every
    /// request of a failed batch gets the same error).
    pub result: Result<Gathered<R>, RpcError>,
    /// How long its request took.
    pub took: Duration,
}

/// Calls every consumer for each name of `items`, batching as the module
/// docs say, and yields one result per item in input order. An `Err` item
/// (say, an input line that is not a valid name) is passed through in its
/// place, so a caller can report it where it was.
pub fn call_each<'a, Q, R, E, S>(
    client: &'a ReconnectingClient,
    items: S,
    options: &'a CallOptions,
) -> impl Stream<Item = Result<Called<Q, R>, E>> + 'a
where
    S: Stream<Item = Result<Q, E>> + 'a,
    Q: Serialize + 'a,
    R: DeserializeOwned + 'a,
    E: 'a,
{
    let batch = options.batch.clamp(1, client.contract().max_batch_items);
    chunked_calls(items, batch, options.concurrency, move |chunk| {
        call_chunk(client, chunk, options)
    })
}

/// Sends the names of one chunk (split further only when their body would
/// pass the client's [`max_batch_bytes`](ReconnectingClient::max_batch_bytes))
/// and puts every item back in its place.
async fn call_chunk<Q, R, E>(
    client: &ReconnectingClient,
    chunk: Vec<Result<Q, E>>,
    options: &CallOptions,
) -> Vec<Result<Called<Q, R>, E>>
where
    Q: Serialize,
    R: DeserializeOwned,
{
    let started = Instant::now();
    let mut requests = Vec::with_capacity(chunk.len());
    let mut items = Vec::with_capacity(chunk.len());
    // Per request, in order: why it could not be encoded, if it could not
    // (it fails alone; the others go).
    let mut unencoded = Vec::with_capacity(chunk.len());
    // `None` where a request goes, else the item passed through.
    let mut order = Vec::with_capacity(chunk.len());
    for item in chunk {
        match item {
            Ok(request) => {
                match encode_item(&request) {
                    Ok(json) => {
                        items.push(json);
                        unencoded.push(None);
                    }
                    Err(error) => unencoded.push(Some(error)),
                }
                requests.push(request);
                order.push(None);
            }
            Err(error) => order.push(Some(error)),
        }
    }
    let groups = within_byte_limit(
        &items,
        client.contract().batch_overhead(),
        client.max_batch_bytes(),
    );
    let calls = groups.iter().map(|range| {
        client.call_json(
            &items[range.clone()],
            &options.until,
            options.timeout,
            options.retries,
        )
    });
    let outcomes = future::join_all(calls).await;
    let took = started.elapsed();
    let mut results = Vec::with_capacity(items.len());
    for (range, outcome) in groups.into_iter().zip(outcomes) {
        match outcome {
            Ok(gathered) => results.extend(gathered.into_iter().map(|g| Ok(g.decode()))),
            Err(error) => results.extend(range.map(|_| Err(error.clone()))),
        }
    }
    let mut results = results.into_iter();
    let results = unencoded.into_iter().map(|unencoded| match unencoded {
        None => results
            .next()
            .unwrap_or(Err(RpcError::ConnectionLost(None))),
        Some(error) => Err(error),
    });
    let mut called = requests
        .into_iter()
        .zip(results)
        .map(|(request, result)| Called {
            request,
            result,
            took,
        });
    order
        .into_iter()
        .filter_map(|slot| match slot {
            Some(error) => Some(Err(error)),
            None => called.next().map(Ok),
        })
        .collect()
}

/// Consecutive ranges of `items` whose batch bodies (`overhead` bytes
/// besides the items) stay within `limit` bytes (usually one range: 1,000
/// names of up to 60 bytes fit in 64 KiB).
fn within_byte_limit(items: &[Json], overhead: usize, limit: usize) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut bytes = overhead - 1;
    for (index, item) in items.iter().enumerate() {
        let more = protocol::item_bytes(item);
        if index > start && bytes + more > limit {
            groups.push(start..index);
            start = index;
            bytes = overhead - 1;
        }
        bytes += more;
    }
    if start < items.len() {
        groups.push(start..items.len());
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Contract, Name};

    const GREETINGS: Contract = Contract::GREETINGS;

    fn name(text: &str) -> Json {
        Json::encode(&Name::parse(text).expect("valid")).expect("encodes")
    }

    fn groups_of(items: &[Json], limit: usize) -> Vec<Range<usize>> {
        within_byte_limit(items, GREETINGS.batch_overhead(), limit)
    }

    #[test]
    fn names_are_grouped_so_that_every_batch_body_fits_the_limit() {
        let max = GREETINGS.max_batch_bytes;
        // 100 four-byte characters: 403 bytes each in a body.
        let wide = name(&"😀".repeat(100));
        let names = vec![wide; 1000];
        let groups = groups_of(&names, max);
        assert!(groups.len() > 1);
        assert_eq!(groups.first().map(|r| r.start), Some(0));
        assert_eq!(groups.last().map(|r| r.end), Some(1000));
        for pair in groups.windows(2) {
            assert_eq!(pair[0].end, pair[1].start, "consecutive, nothing left out");
        }
        for range in groups {
            let body = protocol::encode_batch_within(&GREETINGS, &names[range], max)
                .expect("within the limits");
            assert!(body.len() <= max);
        }
        let small = groups_of(&[name("Ada"), name("Bob")], max);
        assert_eq!((small.len(), small.first()), (1, Some(&(0..2))));
        assert!(groups_of(&[], max).is_empty());
        // A smaller broker limit cuts smaller batches.
        let names = vec![name(&"n".repeat(100)); 1000];
        let groups = groups_of(&names, 65_536);
        assert_eq!(groups.len(), 2);
        for range in groups {
            let body =
                protocol::encode_batch_within(&GREETINGS, &names[range], 65_536).expect("fits");
            assert!(body.len() <= 65_536);
        }
    }
}
