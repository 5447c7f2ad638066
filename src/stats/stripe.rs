//! Which copy of a striped counter the running thread writes, and how.
//!
//! Every thread that counts gets a stripe of its own, handed out in order on its first count,
//! so each stripe has exactly one writer: an update is a relaxed load and store, with no
//! `lock`-prefixed instruction (those were about 5% of a node's CPU at `-P 16`: seven per
//! command, docs/performance.md). Readers on other threads still see whole values, since each
//! counter is an atomic. Threads beyond the first [`STRIPES`] share one more stripe with
//! atomic adds. A connection's task never moves between threads (one event loop, or one
//! connection worker each), but correctness does not depend on it: whichever thread runs an
//! update writes that thread's stripe.
//!
//! Counters only grow: a reset (CONFIG RESETSTAT) records the current sums as a baseline that
//! reads subtract, instead of writing to stripes other threads own.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes with a single writer each; one more, [`SHARED`], takes every other thread.
pub const STRIPES: usize = 16;

/// The stripe of threads beyond the first [`STRIPES`]: updated with atomic adds.
pub const SHARED: usize = STRIPES;

/// Not yet assigned.
const UNSET: usize = usize::MAX;

static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static OWN: Cell<usize> = const { Cell::new(UNSET) };
}

/// The stripe the running thread writes: its own (below [`STRIPES`]) or [`SHARED`].
#[inline]
pub fn current() -> usize {
    OWN.with(|own| {
        let stripe = own.get();
        if stripe != UNSET {
            return stripe;
        }
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let stripe = if id < STRIPES { id } else { SHARED };
        own.set(stripe);
        stripe
    })
}

/// Adds `n` to `counter`, which belongs to stripe `stripe` (from [`current`]).
#[inline]
pub fn add(counter: &AtomicU64, stripe: usize, n: u64) {
    if stripe < STRIPES {
        // The only writer of this stripe: no read-modify-write needed.
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    } else {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_threads_counting_lose_nothing() {
        // More threads than stripes: some share the atomic stripe.
        let counters: Vec<AtomicU64> = (0..=STRIPES).map(|_| AtomicU64::new(0)).collect();
        std::thread::scope(|s| {
            for _ in 0..(STRIPES + 8) {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        let stripe = current();
                        add(&counters[stripe], stripe, 1);
                    }
                });
            }
        });
        let total: u64 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(total, (STRIPES as u64 + 8) * 10_000);
    }

    #[test]
    fn a_thread_keeps_its_stripe() {
        let first = current();
        assert_eq!(current(), first);
    }
}
