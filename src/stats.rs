//! Per-node counters: the spec's STATS figures plus what INFO reports.
//!
//! Plain relaxed atomics: each counter is independent and readers only need a recent value.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one node.
#[derive(Debug, Default)]
pub struct Stats {
    total_requests: AtomicU64,
    get: AtomicU64,
    set: AtomicU64,
    delete: AtomicU64,
    expire: AtomicU64,
    keyspace_hits: AtomicU64,
    keyspace_misses: AtomicU64,
    connections_received: AtomicU64,
    rejected_connections: AtomicU64,
    connected_clients: AtomicU64,
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
}

impl Stats {
    /// Counts one handled request of the given kind.
    pub fn record(&self, kind: StatKind) {
        self.total_requests.fetch_add(1, Ordering::Relaxed);
        let counter = match kind {
            StatKind::Get => &self.get,
            StatKind::Set => &self.set,
            StatKind::Delete => &self.delete,
            StatKind::Expire => &self.expire,
            StatKind::Other => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a read that found (`true`) or missed its key.
    pub fn record_lookup(&self, hit: bool) {
        let counter = if hit {
            &self.keyspace_hits
        } else {
            &self.keyspace_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
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

    /// Resets the request counters (CONFIG RESETSTAT).
    pub fn reset(&self) {
        for c in [
            &self.total_requests,
            &self.get,
            &self.set,
            &self.delete,
            &self.expire,
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.connections_received,
            &self.rejected_connections,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            total_requests: r(&self.total_requests),
            get: r(&self.get),
            set: r(&self.set),
            delete: r(&self.delete),
            expire: r(&self.expire),
            keyspace_hits: r(&self.keyspace_hits),
            keyspace_misses: r(&self.keyspace_misses),
            connections_received: r(&self.connections_received),
            rejected_connections: r(&self.rejected_connections),
            connected_clients: r(&self.connected_clients),
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
