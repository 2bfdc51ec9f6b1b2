//! When a batch goes: a stream of items in, calls on chunks of them out, in
//! input order, with at most `concurrency` calls in flight.
//!
//! The rule is Nagle's, for messages instead of segments: a full chunk
//! (`batch` items) goes as soon as a call slot is free; a partial chunk goes
//! at once only when no call is in flight (or at the end of the input).
//! While calls are in flight, items that arrive gather into the next chunk
//! until it is full or every call has ended. So a lone item never waits
//! (one item in flight behaves as without batching), and under load chunks
//! fill: without the rule every free slot took whatever had arrived since the
//! last call, and a fast input ran as many small messages (1,000,000 names at
//! `--batch 1000` went in 7,870 requests, 127 names each, where 1,000 would
//! do), which cost the broker and the consumers a message each.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use futures::{
    Stream, StreamExt,
    stream::{FusedStream, FuturesOrdered},
};

/// Calls `call` on chunks of `items` as the module docs say, and yields
/// every output of every call, in input order.
pub(crate) fn chunked_calls<S, F, Fut, T>(
    items: S,
    batch: usize,
    concurrency: usize,
    call: F,
) -> impl Stream<Item = T>
where
    S: Stream,
    F: FnMut(Vec<S::Item>) -> Fut,
    Fut: Future<Output = Vec<T>>,
{
    Chunked {
        items: Box::pin(items.fuse()),
        batch: batch.max(1),
        concurrency: concurrency.max(1),
        call,
        gathering: Vec::new(),
        in_flight: FuturesOrdered::new(),
        ready: Vec::new().into_iter(),
    }
}

struct Chunked<S: Stream, F, Fut: Future<Output = Vec<T>>, T> {
    items: Pin<Box<futures::stream::Fuse<S>>>,
    batch: usize,
    concurrency: usize,
    call: F,
    /// Items of the next chunk.
    gathering: Vec<S::Item>,
    in_flight: FuturesOrdered<Fut>,
    /// Outputs of the oldest call, not yet yielded.
    ready: std::vec::IntoIter<T>,
}

// Nothing is pinned in place: the input stream is boxed, and the calls'
// futures live in `FuturesOrdered`, which pins each on its own.
impl<S: Stream, F, Fut: Future<Output = Vec<T>>, T> Unpin for Chunked<S, F, Fut, T> {}

impl<S, F, Fut, T> Chunked<S, F, Fut, T>
where
    S: Stream,
    F: FnMut(Vec<S::Item>) -> Fut,
    Fut: Future<Output = Vec<T>>,
{
    /// Starts every call the rule allows now. Leaves the input polled to
    /// `Pending` (so that a new item wakes the task) unless every slot is
    /// taken (a call ending wakes it then).
    fn start_calls(&mut self, cx: &mut Context<'_>) {
        while self.in_flight.len() < self.concurrency {
            while self.gathering.len() < self.batch {
                match self.items.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => self.gathering.push(item),
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            let full = self.gathering.len() >= self.batch;
            let partial_may_go = !self.gathering.is_empty()
                && (self.in_flight.is_empty() || self.items.is_terminated());
            if !(full || partial_may_go) {
                return;
            }
            let chunk = std::mem::replace(&mut self.gathering, Vec::with_capacity(self.batch));
            self.in_flight.push_back((self.call)(chunk));
        }
    }
}

impl<S, F, Fut, T> Stream for Chunked<S, F, Fut, T>
where
    S: Stream,
    F: FnMut(Vec<S::Item>) -> Fut,
    Fut: Future<Output = Vec<T>>,
{
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        loop {
            if let Some(output) = this.ready.next() {
                return Poll::Ready(Some(output));
            }
            this.start_calls(cx);
            match this.in_flight.poll_next_unpin(cx) {
                Poll::Ready(Some(outputs)) => this.ready = outputs.into_iter(),
                // No call in flight: `start_calls` sent whatever had
                // gathered, so the input is at its end or polled to
                // `Pending` (its next item wakes the task).
                Poll::Ready(None) if this.items.is_terminated() && this.gathering.is_empty() => {
                    return Poll::Ready(None);
                }
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, rc::Rc};

    use futures::{
        FutureExt, SinkExt,
        channel::{mpsc, oneshot},
    };

    use super::*;

    /// A test's calls: the chunks started, and a switch per call that ends it.
    #[derive(Default)]
    struct Calls {
        chunks: Vec<Vec<u32>>,
        ends: Vec<oneshot::Sender<()>>,
    }

    type Shared = Rc<RefCell<Calls>>;

    fn chunked(
        input: mpsc::Receiver<u32>,
        batch: usize,
        concurrency: usize,
        calls: &Shared,
    ) -> impl Stream<Item = u32> + Unpin {
        let calls = Rc::clone(calls);
        Box::pin(chunked_calls(input, batch, concurrency, move |chunk| {
            let (end, ended) = oneshot::channel();
            let mut calls = calls.borrow_mut();
            calls.chunks.push(chunk.clone());
            calls.ends.push(end);
            async move {
                let _ = ended.await;
                chunk
            }
        }))
    }

    fn end_call(calls: &Shared, index: usize) {
        let end = std::mem::replace(&mut calls.borrow_mut().ends[index], oneshot::channel().0);
        end.send(()).expect("the call is waiting");
    }

    fn chunks(calls: &Shared) -> Vec<Vec<u32>> {
        calls.borrow().chunks.clone()
    }

    #[test]
    fn a_lone_item_goes_at_once_and_items_gather_while_a_call_is_in_flight() {
        let calls = Shared::default();
        let (mut input, receiver) = mpsc::channel(16);
        let mut out = chunked(receiver, 100, 8, &calls);

        input.try_send(1).expect("room");
        assert_eq!(out.next().now_or_never(), None);
        assert_eq!(
            chunks(&calls),
            [vec![1]],
            "nothing in flight: it goes alone"
        );

        for item in [2, 3, 4] {
            input.try_send(item).expect("room");
        }
        assert_eq!(out.next().now_or_never(), None);
        assert_eq!(
            chunks(&calls),
            [vec![1]],
            "a call is in flight: they gather"
        );

        end_call(&calls, 0);
        assert_eq!(out.next().now_or_never(), Some(Some(1)));
        assert_eq!(out.next().now_or_never(), None);
        assert_eq!(
            chunks(&calls),
            [vec![1], vec![2, 3, 4]],
            "one chunk once it ended"
        );
    }

    #[test]
    fn a_full_chunk_goes_while_calls_are_in_flight_up_to_the_concurrency() {
        let calls = Shared::default();
        let (mut input, receiver) = mpsc::channel(16);
        let mut out = chunked(receiver, 2, 2, &calls);

        input.try_send(1).expect("room");
        assert_eq!(out.next().now_or_never(), None);
        for item in [2, 3, 4, 5, 6] {
            input.try_send(item).expect("room");
        }
        assert_eq!(out.next().now_or_never(), None);
        assert_eq!(
            chunks(&calls),
            [vec![1], vec![2, 3]],
            "a full chunk goes beside the call in flight; then both slots are taken"
        );

        end_call(&calls, 1);
        assert_eq!(
            out.next().now_or_never(),
            None,
            "outputs wait for the older call: input order"
        );
        end_call(&calls, 0);
        assert_eq!(out.next().now_or_never(), Some(Some(1)));
        assert_eq!(out.next().now_or_never(), Some(Some(2)));
        assert_eq!(out.next().now_or_never(), Some(Some(3)));
        assert_eq!(out.next().now_or_never(), None);
        assert_eq!(chunks(&calls), [vec![1], vec![2, 3], vec![4, 5]]);
    }

    #[test]
    fn the_end_of_the_input_sends_what_gathered_and_every_output_comes_in_order() {
        let calls = Shared::default();
        let (mut input, receiver) = mpsc::channel(16);
        let mut out = chunked(receiver, 10, 4, &calls);

        input.try_send(1).expect("room");
        assert_eq!(out.next().now_or_never(), None);
        input.try_send(2).expect("room");
        input.try_send(3).expect("room");
        futures::executor::block_on(input.close()).expect("close");
        assert_eq!(out.next().now_or_never(), None);
        assert_eq!(
            chunks(&calls),
            [vec![1], vec![2, 3]],
            "the input ended: the partial chunk goes beside the call in flight"
        );

        end_call(&calls, 1);
        end_call(&calls, 0);
        let rest: Vec<u32> = futures::executor::block_on(out.collect());
        assert_eq!(rest, [1, 2, 3]);
    }

    #[test]
    fn an_empty_input_ends_with_no_call() {
        let calls = Shared::default();
        let (input, receiver) = mpsc::channel::<u32>(1);
        drop(input);
        let out = chunked(receiver, 10, 4, &calls);
        let all: Vec<u32> = futures::executor::block_on(out.collect());
        assert!(all.is_empty());
        assert!(chunks(&calls).is_empty());
    }
}
