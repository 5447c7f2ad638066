//! The background sweep that removes expired keys every cleanup interval.
//!
//! Reads already hide expired keys (lazy expiry in [`super::Shard`]); the sweep only frees
//! their memory. It locks one shard at a time, so requests wait at most for one shard's purge.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Store;
use crate::periodic::Periodic;
use crate::stats::latency::{event, LatencyMonitor};

/// Runs until `shutdown` is cancelled, purging expired keys every `interval`; a sweep that
/// takes at least the latency threshold is recorded in `latency` as `expire-cycle`.
pub async fn run(
    store: Arc<Store>,
    interval: Duration,
    shutdown: CancellationToken,
    latency: Arc<LatencyMonitor>,
) {
    let mut ticks = Periodic::new(interval.max(Duration::from_millis(1)), shutdown);
    while ticks.next().await {
        let started = Instant::now();
        let purged = store.purge_expired(started);
        latency.record(event::EXPIRE_CYCLE, started.elapsed());
        if purged > 0 {
            tracing::debug!(purged, "expired keys removed");
        }
    }
}
