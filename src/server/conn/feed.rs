//! A subscribed connection's side of pub/sub: taking its deliveries from its queue in batches
//! and appending their frames to the connection's output.

use std::sync::Arc;

use bytes::BytesMut;

use crate::protocol::{Codec, ProtocolError, ReplyShape};
use crate::pubsub::{Delivery, Receiver};

/// A subscribed connection's deliveries: the receiving end, what was taken from it and not
/// yet encoded, and the bytes encoded from it that are not yet written (given back to the
/// registry's count once they are).
pub(super) struct Feed {
    rx: Receiver,
    /// Deliveries taken from the queue in one go; those from `next` on are still to encode.
    batch: Vec<Arc<Delivery>>,
    next: usize,
    encoded: usize,
}

impl Feed {
    pub(super) fn new(rx: Receiver) -> Feed {
        Feed {
            rx,
            batch: Vec::new(),
            next: 0,
            encoded: 0,
        }
    }

    /// Encodes what has arrived, until `wbuf` holds `limit` bytes.
    pub(super) fn drain<C: Codec>(
        &mut self,
        codec: &mut C,
        wbuf: &mut BytesMut,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        while wbuf.len() < limit {
            if self.next == self.batch.len() {
                self.batch.clear();
                self.next = 0;
                if !self.rx.try_take(&mut self.batch) {
                    break;
                }
            }
            let delivery = &self.batch[self.next];
            self.next += 1;
            self.encoded += delivery.size();
            // Encoded once per publish and way of encoding, whichever subscriber comes first.
            delivery.encode_into(codec.push_encoding(), wbuf, |reply, dst| {
                codec.encode(reply, &ReplyShape::generic(), dst)
            })?;
        }
        Ok(())
    }

    /// Ready when there is something to encode.
    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.next < self.batch.len() {
            return std::task::Poll::Ready(());
        }
        self.batch.clear();
        self.next = 0;
        self.rx.poll_take(cx, &mut self.batch)
    }

    /// After a write: the deliveries encoded so far are on their way.
    pub(super) fn written(feed: &mut Option<Feed>) {
        if let Some(feed) = feed {
            feed.rx
                .subscriber()
                .written(std::mem::take(&mut feed.encoded));
        }
    }
}

/// Waits until there are deliveries to encode; never, when the connection has not subscribed.
pub(super) async fn next_delivery(feed: &mut Option<Feed>) {
    match feed {
        Some(feed) => std::future::poll_fn(|cx| feed.poll_ready(cx)).await,
        None => std::future::pending().await,
    }
}
