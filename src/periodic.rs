//! The tick of a node's background loops (expiry sweeps, the memory count's rebase, giving
//! pages back): every so often until the node stops, never a round after shutdown began.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Ticks every `period` until `shutdown`; a late tick waits a whole period from when it came
/// (no burst of catch-up rounds after a stall).
#[derive(Debug)]
pub struct Periodic {
    ticker: tokio::time::Interval,
    shutdown: CancellationToken,
}

impl Periodic {
    /// The first tick comes at once.
    pub fn new(period: Duration, shutdown: CancellationToken) -> Periodic {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Periodic { ticker, shutdown }
    }

    /// Waits for the next tick: true then, false once the node is stopping (checked first, so
    /// a stopping node starts no new round).
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => false,
            _ = self.ticker.tick() => true,
        }
    }
}
