//! The memory budget of a node (Redis's `maxmemory`): the limit and policy CONFIG SET
//! changes, how much memory is in use, and how many keys were evicted to stay under it.
//!
//! **Accounting.** "In use" is what the program holds according to the allocator, the figure
//! Redis reports as `used_memory`: every live allocation, data and buffers alike. The binary's
//! global allocator counts every allocation and free as it happens ([`alloc::Counting`]), so
//! [`Budget::used`] is one load plus an offset: glibc's own figure ([`alloc::in_use`],
//! `mallinfo2`, which walks the free lists and so is only taken every `REBASE_INTERVAL`, on
//! a blocking-pool thread by [`rebase`], never on a connection's thread) less the count at
//! that moment. Between two such samples the count carries every
//! byte the node allocates or frees, whatever allocated it (a write, a connection buffer, an
//! append-only log buffer), within `alloc::FLUSH` bytes per thread. Without the counting
//! allocator (library tests) every call samples.
//!
//! **Not counted** (Redis's `freeMemoryGetNotCountedMemory`): memory that evicting keys could
//! never give back is left out of the figure the limit is checked against, as Redis leaves
//! out its replication backlog and AOF buffer. Here that is the in-memory copies of a
//! replicated cluster's Raft log entries ([`Logs`], weighed by `replication::LogStore`): a log
//! is purged by its group's snapshots, not by eviction, so counting it would refuse writes
//! while the keys it could free are long gone. INFO still reports everything as `used_memory`
//! and the part left out as `mem_not_counted_for_evict`. With a limit set, each group
//! snapshots (and so cuts its log) once its log weighs [`Logs::compact_above`], so the part
//! left out stays bounded too.
//!
//! **Eviction** ([`evict`]) runs before a `denyoom` command when the limit is set and
//! exceeded, as Redis's `performEvictions`; with nothing to evict the command is refused with
//! [`OOM`]. With no limit (the default) the only cost on the request path is one relaxed load
//! ([`Budget::limit`]).
//!
//! **Giving memory back** ([`give_back`]): freeing a victim's chunks lowers `used_memory` at
//! once, but glibc keeps their pages, so a node under a budget would keep the resident set of
//! its highest moment, spread over its worker threads' arenas. Once a second, when keys were
//! evicted (or deleted by a lowered limit) since the last look, the node asks glibc to return
//! free pages to the kernel, as Redis's jemalloc purges dirty pages in the background.
//!
//! This module must not format replies; `cmd` does.

pub mod alloc;
pub mod evict;

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::shard::Mode;
use crate::store::Store;

/// The error a refused write gets, as redis-server 7.0 words it.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// `maxmemory-policy`: what goes when the limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Nothing: writes that need memory are refused.
    NoEviction,
    /// The least recently used of all keys.
    AllKeysLru,
    /// The least frequently used of all keys.
    AllKeysLfu,
    /// Any key.
    AllKeysRandom,
    /// The least recently used of the keys with a TTL.
    VolatileLru,
    /// The least frequently used of the keys with a TTL.
    VolatileLfu,
    /// Any key with a TTL.
    VolatileRandom,
    /// The key with the nearest deadline.
    VolatileTtl,
}

/// Every policy, in the order CONFIG SET's error lists them (Redis's).
pub const POLICIES: [Policy; 8] = [
    Policy::VolatileLru,
    Policy::VolatileLfu,
    Policy::VolatileRandom,
    Policy::VolatileTtl,
    Policy::AllKeysLru,
    Policy::AllKeysLfu,
    Policy::AllKeysRandom,
    Policy::NoEviction,
];

impl Policy {
    /// The policy's name in CONFIG and INFO.
    pub fn name(self) -> &'static str {
        match self {
            Policy::NoEviction => "noeviction",
            Policy::AllKeysLru => "allkeys-lru",
            Policy::AllKeysLfu => "allkeys-lfu",
            Policy::AllKeysRandom => "allkeys-random",
            Policy::VolatileLru => "volatile-lru",
            Policy::VolatileLfu => "volatile-lfu",
            Policy::VolatileRandom => "volatile-random",
            Policy::VolatileTtl => "volatile-ttl",
        }
    }

    /// The policy named `text` (any case).
    pub fn parse(text: &[u8]) -> Option<Policy> {
        POLICIES
            .into_iter()
            .find(|p| p.name().as_bytes().eq_ignore_ascii_case(text))
    }

    /// What the shards' access sketches must record under this policy.
    pub fn tracking(self) -> Option<Mode> {
        match self {
            Policy::AllKeysLru | Policy::VolatileLru => Some(Mode::Lru),
            Policy::AllKeysLfu | Policy::VolatileLfu => Some(Mode::Lfu),
            _ => None,
        }
    }

    /// Whether only keys with a TTL may go.
    pub fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    fn code(self) -> u8 {
        POLICIES.iter().position(|p| *p == self).unwrap_or(7) as u8
    }
}

/// A node's memory budget (see the module doc).
#[derive(Debug)]
pub struct Budget {
    limit: AtomicU64,
    policy: AtomicU8,
    samples: AtomicU32,
    /// The allocator's figure at the last sample less [`alloc::counted`] then: bytes in use
    /// are `alloc::counted() + offset`. One word, so a reader never sees half a sample.
    offset: AtomicI64,
    /// Whether [`alloc::Counting`] is the global allocator (otherwise every reading samples).
    counting: bool,
    peak: AtomicU64,
    startup: AtomicU64,
    evicted: AtomicU64,
    /// The Raft logs in memory (see "Not counted" in the module doc).
    logs: Arc<Logs>,
    /// The eviction pool; its lock also makes one thread at a time evict.
    pool: Mutex<evict::Pool>,
}

impl Default for Budget {
    fn default() -> Self {
        let counting = alloc::counting();
        let used = alloc::in_use().unwrap_or_else(alloc::rss_bytes);
        Budget {
            limit: AtomicU64::new(0),
            policy: AtomicU8::new(Policy::NoEviction.code()),
            samples: AtomicU32::new(5),
            offset: AtomicI64::new(offset_of(used)),
            counting,
            peak: AtomicU64::new(used),
            startup: AtomicU64::new(used),
            evicted: AtomicU64::new(0),
            logs: Arc::default(),
            pool: Mutex::new(evict::Pool::default()),
        }
    }
}

impl Budget {
    /// `maxmemory` in bytes; 0: no limit. The request path's one check.
    #[inline]
    pub fn limit(&self) -> u64 {
        self.limit.load(Relaxed)
    }

    /// Sets `maxmemory`.
    pub fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, Relaxed);
        self.logs.limit.store(bytes, Relaxed);
    }

    /// `maxmemory-policy`.
    pub fn policy(&self) -> Policy {
        POLICIES[usize::from(self.policy.load(Relaxed)).min(7)]
    }

    /// Sets `maxmemory-policy`, switching every shard's access sketch on, over or off (one
    /// shard lock at a time).
    pub fn set_policy(&self, store: &Store, policy: Policy) {
        self.policy.store(policy.code(), Relaxed);
        let now = Instant::now();
        for db in store.dbs() {
            for i in 0..db.shard_count() {
                db.lock(i).set_tracking(policy.tracking(), now);
            }
        }
        self.pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// `maxmemory-samples`.
    pub fn samples(&self) -> u32 {
        self.samples.load(Relaxed)
    }

    /// Sets `maxmemory-samples`.
    pub fn set_samples(&self, n: u32) {
        self.samples.store(n.max(1), Relaxed);
    }

    /// Keys evicted since start or CONFIG RESETSTAT (INFO `evicted_keys`).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    /// Zeroes [`Budget::evicted`] and the peak (CONFIG RESETSTAT).
    pub fn reset_stats(&self) {
        self.evicted.store(0, Relaxed);
        self.peak.store(self.used_now(), Relaxed);
    }

    /// What a replicated cluster's Raft logs share with the budget: the gauge they keep
    /// their in-memory bytes in (left out of the eviction check, [`Budget::used`]) and the
    /// weight at which a group compacts its log.
    pub fn logs(&self) -> Arc<Logs> {
        self.logs.clone()
    }

    /// Bytes in use that the eviction check leaves out (INFO `mem_not_counted_for_evict`).
    pub fn not_counted(&self) -> u64 {
        self.logs.bytes.load(Relaxed)
    }

    /// Bytes in use, as the eviction check sees them: the count since the last sample plus
    /// that sample (taken again every `REBASE_INTERVAL` by [`rebase`]), less what is
    /// [not counted](Budget::not_counted).
    pub fn used(&self) -> u64 {
        self.allocated().saturating_sub(self.not_counted())
    }

    /// Every byte in use (see the module doc).
    fn allocated(&self) -> u64 {
        if !self.counting {
            return self.sample();
        }
        let used =
            u64::try_from(alloc::counted().saturating_add(self.offset.load(Relaxed))).unwrap_or(0);
        if used > self.peak.load(Relaxed) {
            self.peak.fetch_max(used, Relaxed);
        }
        used
    }

    /// Every byte in use (INFO `used_memory`, MEMORY STATS), [not counted](Budget::not_counted)
    /// included. Never samples on the caller's thread when the counting allocator runs: a
    /// sample walks every arena's free lists under its lock, and the saver thread's arena,
    /// churned by writing a snapshot, took `mallinfo2` 13-57 ms to walk, stalling every
    /// connection of the worker that ran INFO (docs/performance.md, "Latency while saving").
    pub fn used_now(&self) -> u64 {
        self.allocated()
    }

    /// Takes a new sample of the allocator's own figure and rebases the count on it (see the
    /// module doc); [`rebase`] calls it every `REBASE_INTERVAL` off the request path.
    pub fn rebase(&self) -> u64 {
        self.sample()
    }

    /// The most bytes in use seen by a sample.
    pub fn peak(&self) -> u64 {
        self.peak.load(Relaxed)
    }

    /// Bytes in use when the node started, before any data was loaded (MEMORY STATS
    /// `startup.allocated`; Redis takes it in `InitServerLast`, before loading too).
    pub fn startup(&self) -> u64 {
        self.startup.load(Relaxed)
    }

    fn sample(&self) -> u64 {
        let used = alloc::in_use().unwrap_or_else(alloc::rss_bytes);
        self.offset.store(offset_of(used), Relaxed);
        self.peak.fetch_max(used, Relaxed);
        used
    }
}

/// What to add to [`alloc::counted`] to get `used`, sampled now.
fn offset_of(used: u64) -> i64 {
    i64::try_from(used)
        .unwrap_or(i64::MAX)
        .saturating_sub(alloc::counted())
}

/// The Raft logs' side of the budget (see "Not counted" in the module doc).
#[derive(Debug, Default)]
pub struct Logs {
    /// What every Raft log of the node holds in memory, in bytes (estimated).
    pub bytes: Arc<AtomicU64>,
    /// `maxmemory`, as the budget last set it.
    limit: AtomicU64,
}

impl Logs {
    /// A log's weight in bytes past which its group takes a snapshot (which cuts the log):
    /// an eighth of `maxmemory`, at least [`MIN_COMPACT`]; `None` without a limit (the groups
    /// then compact every 50,000 entries only).
    pub fn compact_above(&self) -> Option<u64> {
        let limit = self.limit.load(Relaxed);
        (limit > 0).then(|| (limit / 8).max(MIN_COMPACT))
    }
}

/// Bytes added to a gauge (such as [`Logs::bytes`]) for as long as this is held.
#[derive(Debug)]
pub struct Held {
    gauge: Arc<AtomicU64>,
    bytes: u64,
}

impl Held {
    /// Adds `bytes` to `gauge` until the returned guard is dropped.
    pub fn add(gauge: Arc<AtomicU64>, bytes: u64) -> Held {
        gauge.fetch_add(bytes, Relaxed);
        Held { gauge, bytes }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauge.fetch_sub(self.bytes, Relaxed);
    }
}

/// The least weight [`Logs::compact_above`] lets a log reach (a snapshot per few hundred
/// writes would cost more than the memory it saves).
pub const MIN_COMPACT: u64 = 1 << 20;

/// Redis's memory values (`maxmemory 100mb`): a whole number of bytes, optionally followed by
/// `b`, `k` (1000), `kb` (1024), `m`, `mb`, `g` or `gb`, any case; past `u64::MAX` saturates,
/// as redis-server 7.0 does.
///
/// # Errors
/// Redis's reason, `argument must be a memory value`.
pub fn parse_bytes(text: &[u8]) -> Result<u64, String> {
    const UNITS: [(&str, u64); 7] = [
        ("kb", 1024),
        ("mb", 1024 * 1024),
        ("gb", 1024 * 1024 * 1024),
        ("b", 1),
        ("k", 1000),
        ("m", 1000 * 1000),
        ("g", 1000 * 1000 * 1000),
    ];
    let lower = text.to_ascii_lowercase();
    let (digits, unit) = UNITS
        .iter()
        .find_map(|(suffix, unit)| Some((lower.strip_suffix(suffix.as_bytes())?, *unit)))
        .unwrap_or((&lower[..], 1));
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err("argument must be a memory value".into());
    }
    let mut n: u64 = 0;
    for d in digits {
        n = n.saturating_mul(10).saturating_add(u64::from(d - b'0'));
    }
    Ok(n.saturating_mul(unit))
}

/// Redis's `used_memory_human`: `1.50M`, `512B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2}{}", UNITS[unit])
}

/// How often the eviction check asks the allocator for its own figure (INFO asks whenever it
/// runs): it corrects what the count cannot see (C code's allocations, threads' counts not yet
/// flushed, blocks glibc maps on their own).
const REBASE_INTERVAL: Duration = Duration::from_millis(250);

/// How often [`give_back`] looks at the eviction count.
const GIVE_BACK_INTERVAL: Duration = Duration::from_secs(1);

/// Until `shutdown`: every `REBASE_INTERVAL`, samples the allocator's own figure and rebases
/// the count on it ([`Budget::rebase`]), on the blocking pool: the sample walks every arena's
/// free lists, which must not stall a connection's thread. Nothing to do without the counting
/// allocator (every reading samples then).
pub async fn rebase(node: Arc<crate::node::Node>, shutdown: tokio_util::sync::CancellationToken) {
    if !node.memory.counting {
        return;
    }
    let mut ticks = crate::periodic::Periodic::new(REBASE_INTERVAL, shutdown);
    while ticks.next().await {
        let node = node.clone();
        let _ = tokio::task::spawn_blocking(move || node.memory.rebase()).await;
    }
}

/// Until `shutdown`: once a second, when `budget` evicted keys since the last look, returns
/// the allocator's free pages to the kernel ([`alloc::give_back`]), keeping the resident set
/// near `used_memory` on a node that runs as a cache.
pub async fn give_back(
    node: Arc<crate::node::Node>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut ticks = crate::periodic::Periodic::new(GIVE_BACK_INTERVAL, shutdown);
    let mut seen = node.memory.evicted();
    while ticks.next().await {
        let evicted = node.memory.evicted();
        if evicted == seen {
            continue;
        }
        seen = evicted;
        // Off the executor: the walk holds each arena's lock for a while.
        let _ = tokio::task::spawn_blocking(alloc::give_back).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_values_parse_as_redis_does() {
        assert_eq!(parse_bytes(b"100"), Ok(100));
        assert_eq!(parse_bytes(b"1k"), Ok(1000));
        assert_eq!(parse_bytes(b"1KB"), Ok(1024));
        assert_eq!(parse_bytes(b"10mb"), Ok(10 << 20));
        assert_eq!(parse_bytes(b"1g"), Ok(1_000_000_000));
        assert_eq!(parse_bytes(b"5gB"), Ok(5 << 30));
        assert_eq!(parse_bytes(b"0b"), Ok(0));
        assert_eq!(parse_bytes(b"18446744073709551616"), Ok(u64::MAX));
        for bad in [&b"x"[..], b"-1", b"1.5mb", b"1 mb", b"mbk"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn policies_round_trip_and_say_what_they_track() {
        for p in POLICIES {
            assert_eq!(Policy::parse(p.name().to_uppercase().as_bytes()), Some(p));
            assert_eq!(POLICIES[usize::from(p.code())], p);
        }
        assert_eq!(Policy::VolatileLfu.tracking(), Some(Mode::Lfu));
        assert!(Policy::VolatileTtl.volatile() && !Policy::AllKeysRandom.volatile());
        assert_eq!(human(1536 * 1024), "1.50M");
        assert_eq!(human(100), "100B");
    }
}
