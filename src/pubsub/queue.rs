//! One subscribed connection's queue of deliveries, and the output limits judged on it.
//!
//! A [`Subscriber`] (the registry's handle) and its connection's [`Receiver`] share one small
//! mutex-guarded state: the deliveries queued, the bytes pending, and the connection task's
//! waker. A publisher pushes under the lock; the connection takes the whole queue at once
//! (swapping vectors, so neither side allocates once they have grown), one lock per batch of
//! messages rather than one channel operation per message. The waker is taken by the first
//! push after the connection went to sleep, and handed to the publisher's [`Wakes`]: a
//! connection publishing a pipeline of messages wakes each subscriber once, when its batch is
//! answered, as Redis writes subscribers' output once per event-loop turn.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio_util::sync::CancellationToken;

use super::{ClassLimit, Delivery};

/// The registry's handle on one subscribed connection.
#[derive(Debug)]
pub struct Subscriber {
    /// The connection's client id.
    pub id: u64,
    state: Mutex<State>,
    /// Closes the connection (the client's kill token).
    kill: CancellationToken,
}

#[derive(Debug, Default)]
struct State {
    /// Delivered, not yet taken by the connection.
    queue: Vec<Arc<Delivery>>,
    /// Bytes delivered and not yet written to the socket (queued, or taken and not written).
    pending: usize,
    /// When the pending bytes were first seen above the soft limit (milliseconds since the
    /// registry's epoch, plus one), or 0.
    over_soft_since: u64,
    /// The connection task, waiting for a delivery.
    waker: Option<Waker>,
    /// The connection is being closed for its output, or its receiver is gone: nothing more
    /// is queued.
    closed: bool,
}

impl Subscriber {
    /// A subscriber and the receiving end of its queue; `kill` closes the connection.
    pub(super) fn new(id: u64, kill: CancellationToken) -> (Arc<Subscriber>, Receiver) {
        let me = Arc::new(Subscriber {
            id,
            state: Mutex::default(),
            kill,
        });
        let rx = Receiver { me: me.clone() };
        (me, rx)
    }

    /// Gives back `bytes` of deliveries the connection has written to its socket.
    pub fn written(&self, bytes: usize) {
        if bytes > 0 {
            let mut state = self.lock();
            state.pending = state.pending.saturating_sub(bytes);
        }
    }

    /// Bytes delivered and not yet written.
    pub fn pending(&self) -> usize {
        self.lock().pending
    }

    /// Queues `delivery` unless that breaks the output limits, in which case the connection
    /// is closed instead. The connection's waker, if it sleeps, goes to `wakes`.
    pub(super) fn deliver(
        &self,
        delivery: &Arc<Delivery>,
        limit: ClassLimit,
        now_ms: u64,
        wakes: &mut Wakes,
    ) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        let pending = state.pending + delivery.size();
        let over = if limit.hard > 0 && pending as u64 > limit.hard {
            Some("hard")
        } else if limit.soft > 0 && pending as u64 > limit.soft {
            // Redis's soft limit: above it for longer than `soft_seconds`, judged whenever
            // output is added.
            let since = state.over_soft_since;
            if since == 0 {
                state.over_soft_since = now_ms + 1;
                None
            } else {
                let over_ms = (now_ms + 1).saturating_sub(since);
                (over_ms > limit.soft_seconds * 1000).then_some("soft")
            }
        } else {
            state.over_soft_since = 0;
            None
        };
        if let Some(which) = over {
            state.closed = true;
            drop(state);
            tracing::warn!(
                client = self.id,
                pending,
                "Client id={} scheduled to be closed ASAP for overcoming of output buffer \
                 limits ({which} pubsub limit).",
                self.id
            );
            self.kill.cancel();
            return;
        }
        state.pending = pending;
        state.queue.push(delivery.clone());
        if let Some(waker) = state.waker.take() {
            wakes.0.push(waker);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; were it poisoned, the counts are still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The connection's end of its queue. Dropping it (the connection ends) stops deliveries.
#[derive(Debug)]
pub struct Receiver {
    me: Arc<Subscriber>,
}

impl Receiver {
    /// Moves everything queued to the end of `into`; false if nothing was.
    pub fn try_take(&mut self, into: &mut Vec<Arc<Delivery>>) -> bool {
        take(&mut self.me.lock(), into)
    }

    /// Like [`Receiver::try_take`], but when nothing is queued, wakes the task of `cx` when
    /// something is.
    pub fn poll_take(&mut self, cx: &mut Context<'_>, into: &mut Vec<Arc<Delivery>>) -> Poll<()> {
        let mut state = self.me.lock();
        if take(&mut state, into) {
            return Poll::Ready(());
        }
        if !state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The subscriber whose queue this is (to give back written bytes).
    pub fn subscriber(&self) -> &Arc<Subscriber> {
        &self.me
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let queued = {
            let mut state = self.me.lock();
            state.closed = true;
            state.waker = None;
            std::mem::take(&mut state.queue)
        };
        drop(queued);
    }
}

/// Moves `state`'s queue to `into` (swapping when `into` is empty, so that both vectors keep
/// their capacity).
fn take(state: &mut State, into: &mut Vec<Arc<Delivery>>) -> bool {
    if state.queue.is_empty() {
        false
    } else if into.is_empty() {
        std::mem::swap(&mut state.queue, into);
        true
    } else {
        into.append(&mut state.queue);
        true
    }
}

/// Connection tasks to wake because messages were queued for them: woken by
/// [`Wakes::wake`], or when dropped.
#[derive(Debug, Default)]
pub struct Wakes(Vec<Waker>);

impl Wakes {
    /// Wakes every task gathered so far.
    pub fn wake(&mut self) {
        for waker in self.0.drain(..) {
            waker.wake();
        }
    }
}

impl Drop for Wakes {
    fn drop(&mut self) {
        self.wake();
    }
}
