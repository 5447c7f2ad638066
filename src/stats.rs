//! Per-node counters: the spec's STATS figures plus what INFO reports.
//!
//! Plain relaxed atomics: each counter is independent and readers only need a recent value.
//! The per-request counters are striped over cache-line-padded copies, one per counting
//! thread, each written only by its thread without `lock`-prefixed instructions (see
//! [`stripe`]); a read sums the stripes. Per-command figures (INFO `commandstats`,
//! `latencystats`) are in [`commands`]; the latency monitor's spikes by event (LATENCY) in
//! [`latency`].

pub mod commands;
pub mod latency;
mod sparkline;
pub mod stripe;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use stripe::STRIPES;

pub use commands::{CommandFigures, CommandStats, Outcome};

/// Live counters of one node.
#[derive(Debug)]
pub struct Stats {
    /// One per writing thread, plus the shared one (see [`stripe`]).
    stripes: [Stripe; STRIPES + 1],
    /// The sums at the last reset, subtracted from every read.
    baseline: Mutex<[u64; COUNTERS]>,
    connections_received: AtomicU64,
    rejected_connections: AtomicU64,
    connected_clients: AtomicU64,
    /// Per-command calls, time and latency histogram.
    pub commands: CommandStats,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            stripes: Default::default(),
            baseline: Mutex::new([0; COUNTERS]),
            connections_received: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            connected_clients: AtomicU64::new(0),
            commands: CommandStats::new(crate::cmd::table().len()),
        }
    }
}

/// Which of the spec's per-command counters a command adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// GET and its variants.
    Get,
    /// SET and its variants.
    Set,
    /// DEL / DELETE.
    Delete,
    /// EXPIRE and its variants.
    Expire,
    /// Counted in the total only.
    Other,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Requests handled (a STATS request sees the count before itself).
    pub total_requests: u64,
    /// GET requests.
    pub get: u64,
    /// SET requests.
    pub set: u64,
    /// DELETE requests.
    pub delete: u64,
    /// EXPIRE requests.
    pub expire: u64,
    /// Reads that found their key.
    pub keyspace_hits: u64,
    /// Reads that did not.
    pub keyspace_misses: u64,
    /// Connections accepted since start.
    pub connections_received: u64,
    /// Connections refused because of the client limit.
    pub rejected_connections: u64,
    /// Connections open now.
    pub connected_clients: u64,
    /// Bytes read from clients' sockets (INFO `total_net_input_bytes`).
    pub net_input_bytes: u64,
    /// Bytes written to clients' sockets (INFO `total_net_output_bytes`).
    pub net_output_bytes: u64,
}

/// Indices into [`Stripe`]'s counters.
const TOTAL: usize = 0;
const GET: usize = 1;
const SET: usize = 2;
const DELETE: usize = 3;
const EXPIRE: usize = 4;
const HITS: usize = 5;
const MISSES: usize = 6;
const NET_IN: usize = 7;
const NET_OUT: usize = 8;
/// Counters per stripe.
const COUNTERS: usize = 9;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe([AtomicU64; COUNTERS]);

impl Stats {
    /// Counts one handled request of the given kind.
    #[inline]
    pub fn record(&self, kind: StatKind) {
        let at = stripe::current();
        let stripe = &self.stripes[at].0;
        stripe::add(&stripe[TOTAL], at, 1);
        let index = match kind {
            StatKind::Get => GET,
            StatKind::Set => SET,
            StatKind::Delete => DELETE,
            StatKind::Expire => EXPIRE,
            StatKind::Other => return,
        };
        stripe::add(&stripe[index], at, 1);
    }

    /// Counts a read that found (`true`) or missed its key.
    #[inline]
    pub fn record_lookup(&self, hit: bool) {
        self.add(if hit { HITS } else { MISSES }, 1);
    }

    /// Counts `n` bytes read from a client's socket.
    pub fn net_input(&self, n: usize) {
        self.add(NET_IN, n as u64);
    }

    /// Counts `n` bytes written to a client's socket.
    pub fn net_output(&self, n: usize) {
        self.add(NET_OUT, n as u64);
    }

    #[inline]
    fn add(&self, index: usize, n: u64) {
        let at = stripe::current();
        stripe::add(&self.stripes[at].0[index], at, n);
    }

    /// The sum of counter `index` over the stripes, less the baseline.
    fn sum(&self, index: usize, baseline: &[u64; COUNTERS]) -> u64 {
        self.raw_sum(index).wrapping_sub(baseline[index])
    }

    fn raw_sum(&self, index: usize) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0[index].load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// Counts an accepted connection and returns the guard that uncounts it when dropped.
    pub fn connection_opened(&self) -> ConnectionGuard<'_> {
        self.connections_received.fetch_add(1, Ordering::Relaxed);
        self.connected_clients.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self)
    }

    /// Counts a connection refused because of the client limit.
    pub fn connection_rejected(&self) {
        self.rejected_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Resets the request counters, per-command figures included (CONFIG RESETSTAT).
    pub fn reset(&self) {
        let mut baseline = self.baseline.lock().unwrap_or_else(|e| e.into_inner());
        for (index, base) in baseline.iter_mut().enumerate() {
            *base = self.raw_sum(index);
        }
        drop(baseline);
        self.connections_received.store(0, Ordering::Relaxed);
        self.rejected_connections.store(0, Ordering::Relaxed);
        self.commands.reset();
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let base = *self.baseline.lock().unwrap_or_else(|e| e.into_inner());
        StatsSnapshot {
            total_requests: self.sum(TOTAL, &base),
            get: self.sum(GET, &base),
            set: self.sum(SET, &base),
            delete: self.sum(DELETE, &base),
            expire: self.sum(EXPIRE, &base),
            keyspace_hits: self.sum(HITS, &base),
            keyspace_misses: self.sum(MISSES, &base),
            connections_received: r(&self.connections_received),
            rejected_connections: r(&self.rejected_connections),
            connected_clients: r(&self.connected_clients),
            net_input_bytes: self.sum(NET_IN, &base),
            net_output_bytes: self.sum(NET_OUT, &base),
        }
    }
}

/// Decrements the connected-clients gauge when the connection ends.
#[derive(Debug)]
pub struct ConnectionGuard<'a>(&'a Stats);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.connected_clients.fetch_sub(1, Ordering::Relaxed);
    }
}
