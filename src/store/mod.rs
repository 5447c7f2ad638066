//! The keyspace of a node: numbered databases, each split into independently locked shards.
//!
//! The store is synchronous and knows nothing of sockets or wire formats. Shard locks are
//! `std::sync::Mutex`: critical sections are a hash lookup or two and never `.await`, so an
//! async mutex would only add overhead (the same reasoning as mini-redis's `db.rs`).

pub mod clock;
pub mod expiry;
pub mod pattern;
pub mod shard;
pub mod value;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

pub use shard::{dump_entries, Change, Dumped, Entry, Prepared, Shard};
pub use value::{Collection, DumpError, Hash, Kind, List, Set, Value, ValueRef, WrongType, ZSet};

/// Shared handle to every database of a node.
#[derive(Debug)]
pub struct Store {
    dbs: Box<[Db]>,
    /// Bumped by every change; the snapshot task saves only when it moved.
    dirty: AtomicU64,
    gate: Gate,
}

/// One numbered database (`SELECT n`): a fixed set of shards.
#[derive(Debug)]
pub struct Db {
    shards: Box<[Mutex<Shard>]>,
    /// Picks the shard. Deliberately not the client's MD5 router: every key that reaches a
    /// node already shares the same MD5 remainder, so reusing it would skew the shards. The
    /// same seed in every database, so SWAPDB can swap shard contents pairwise.
    hasher: ahash::RandomState,
}

/// The live keys of one database, as INFO's keyspace section reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyCounts {
    /// Live keys.
    pub keys: usize,
    /// Live keys with a TTL.
    pub expires: usize,
    /// The average remaining TTL of the keys that have one (zero when none has): exact, from
    /// each shard's sum of deadlines.
    pub avg_ttl: Duration,
    /// Keys removed because their TTL passed, since start or CONFIG RESETSTAT.
    pub expired: u64,
}

/// Lets a few operations (EXEC, SWAPDB, a snapshot's copy) see or change the store as one
/// consistent whole. Every ordinary command holds one *shared* slot while it runs; exclusive
/// access takes all slots. Readers spread over several cache-line-padded slots, so ordinary
/// commands on different threads do not contend on one lock word.
#[derive(Debug)]
pub struct Gate {
    slots: Box<[Slot]>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot(RwLock<()>);

/// Held by a command while it runs (see [`Gate`]).
pub type SharedGuard<'a> = RwLockReadGuard<'a, ()>;
/// Held by EXEC or SWAPDB: no other command runs meanwhile.
pub type ExclusiveGuard<'a> = Vec<RwLockWriteGuard<'a, ()>>;

impl Gate {
    fn new(slots: usize) -> Self {
        Gate {
            slots: (0..slots.max(1)).map(|_| Slot::default()).collect(),
        }
    }

    /// Shared access; `hint` (a connection id) spreads callers over the slots.
    pub fn shared(&self, hint: u64) -> SharedGuard<'_> {
        let slot = &self.slots[(hint % self.slots.len() as u64) as usize];
        // Poisoning only follows a panic in a command, which already aborted that request;
        // the guarded data is `()`, so carrying on is safe.
        slot.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Exclusive access: waits for running commands to finish, blocks new ones.
    pub fn exclusive(&self) -> ExclusiveGuard<'_> {
        // Always in slot order, so two exclusive callers cannot deadlock.
        self.slots
            .iter()
            .map(|s| s.0.write().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }
}

impl Store {
    /// A store with `databases` empty databases of `shards` shards each.
    pub fn new(databases: usize, shards: usize) -> Self {
        clock::init();
        let hasher = ahash::RandomState::new();
        Store {
            dbs: (0..databases.max(1))
                .map(|_| Db::new(shards, hasher.clone()))
                .collect(),
            dirty: AtomicU64::new(0),
            gate: Gate::new(16),
        }
    }

    /// The gate commands pass through (see [`Gate`]).
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Swaps the contents of databases `a` and `b` (SWAPDB). Call with the gate held
    /// exclusively so that nobody sees the swap half done. Returns false for a bad index.
    pub fn swap_dbs(&self, a: usize, b: usize) -> bool {
        let (Some(da), Some(db)) = (self.dbs.get(a), self.dbs.get(b)) else {
            return false;
        };
        if a == b {
            return true;
        }
        for i in 0..da.shards.len() {
            let mut x = da.lock(i);
            let mut y = db.lock(i);
            x.swap_contents(&mut y);
        }
        true
    }

    /// Database number `index`, or `None` past the configured count.
    pub fn db(&self, index: usize) -> Option<&Db> {
        self.dbs.get(index)
    }

    /// All databases in index order.
    pub fn dbs(&self) -> &[Db] {
        &self.dbs
    }

    /// Records `n` changes for the snapshot task.
    pub fn mark_dirty(&self, n: u64) {
        self.dirty.fetch_add(n, Ordering::Relaxed);
    }

    /// The change counter: equal values mean nothing changed in between.
    pub fn dirty(&self) -> u64 {
        self.dirty.load(Ordering::Relaxed)
    }

    /// Zeroes every shard's count of expired keys (CONFIG RESETSTAT), one lock at a time.
    pub fn reset_expired(&self) {
        for db in self.dbs.iter() {
            for shard in db.shards.iter() {
                shard.lock().expect("shard lock poisoned").reset_expired();
            }
        }
    }

    /// Removes every expired key in every database, one shard lock at a time.
    pub fn purge_expired(&self, now: Instant) -> usize {
        self.dbs.iter().map(|db| db.purge_expired(now)).sum()
    }
}

impl Db {
    fn new(shards: usize, hasher: ahash::RandomState) -> Self {
        Db {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(Shard::new(hasher.clone())))
                .collect(),
            hasher,
        }
    }

    /// Locks and returns the shard that owns `key`.
    pub fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        self.lock(self.shard_index(key))
    }

    /// The index of the shard owning `key`; lock several keys' shards in ascending `(db,
    /// index)` order (as `cmd::capture` does) to avoid deadlocks.
    pub fn shard_index(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) % self.shards.len() as u64) as usize
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Locks shard `index`.
    ///
    /// # Panics
    /// If `index` is out of range or the lock was poisoned by a panic.
    pub fn lock(&self, index: usize) -> MutexGuard<'_, Shard> {
        self.shards[index].lock().expect("shard lock poisoned")
    }

    /// Number of live keys and how many of them have a TTL.
    pub fn counts(&self, now: Instant) -> (usize, usize) {
        let counts = self.key_counts(now);
        (counts.keys, counts.expires)
    }

    /// Live keys, how many have a TTL and their average remaining TTL (INFO keyspace). Purges
    /// expired keys first, so every deadline counted is after `now`.
    pub fn key_counts(&self, now: Instant) -> KeyCounts {
        let (mut keys, mut expires, mut deadline_sum, mut expired) = (0, 0, 0u128, 0);
        // Last shard first: a snapshot's copy takes the locks first to last, so a walk in the
        // same direction that caught up with it would wait out every remaining shard's copy
        // (INFO and DBSIZE held a connection thread 12-57 ms that way); this way the two
        // cross once.
        for shard in self.shards.iter().rev() {
            let mut shard = shard.lock().expect("shard lock poisoned");
            shard.purge_expired(now);
            expired += shard.expired();
            keys += shard.len();
            expires += shard.len_with_deadline();
            deadline_sum += shard.deadline_sum();
        }
        // The mean deadline minus now is the mean remaining time (deadlines are all after now).
        let avg_ttl = match u128::try_from(expires) {
            Ok(n) if n > 0 => {
                let mean = u64::try_from(deadline_sum / n).unwrap_or(u64::MAX);
                Duration::from_micros(mean.saturating_sub(clock::to_micros(now)))
            }
            _ => Duration::ZERO,
        };
        KeyCounts {
            keys,
            expires,
            avg_ttl,
            expired,
        }
    }

    /// Every live key matching the Redis glob `pattern`.
    pub fn keys(&self, pattern: &[u8], now: Instant) -> Vec<Bytes> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock().expect("shard lock poisoned");
            shard.purge_expired(now);
            out.extend(
                shard
                    .keys()
                    .filter(|(k, _)| pattern::matches(pattern, k))
                    .map(|(k, _)| Bytes::copy_from_slice(k)),
            );
        }
        out
    }

    /// The live keys of shard `index` matching `pattern`, and of `kind` when given (SCAN
    /// walks the shards in order, each read whole under its lock, so a key present for the
    /// whole scan is always seen).
    pub fn shard_keys(
        &self,
        index: usize,
        pattern: &[u8],
        kind: Option<Kind>,
        now: Instant,
    ) -> Vec<Bytes> {
        let Some(shard) = self.shards.get(index) else {
            return Vec::new();
        };
        let mut shard = shard.lock().expect("shard lock poisoned");
        shard.purge_expired(now);
        shard
            .keys()
            .filter(|(k, t)| kind.is_none_or(|want| want == *t) && pattern::matches(pattern, k))
            .map(|(k, _)| Bytes::copy_from_slice(k))
            .collect()
    }

    /// A random live key, or `None` when the database is empty.
    pub fn random_key(&self, now: Instant) -> Option<Bytes> {
        let start = fastrand::usize(..self.shards.len());
        (0..self.shards.len()).find_map(|i| {
            let mut shard = self.lock((start + i) % self.shards.len());
            shard.purge_expired(now);
            let n = shard.len();
            (n > 0).then(|| {
                shard
                    .keys()
                    .nth(fastrand::usize(..n))
                    .map(|(k, _)| Bytes::copy_from_slice(k))
            })?
        })
    }

    /// A copy of every live entry, taken one shard at a time under short locks (a memcpy of
    /// each entry); the caller serialises it outside any lock.
    pub fn export(&self, now: Instant) -> Vec<(Bytes, Entry)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock().expect("shard lock poisoned");
            shard.purge_expired(now);
            out.reserve(shard.len());
            out.extend(shard.iter().map(|(k, value, deadline)| {
                (Bytes::copy_from_slice(k), Entry { value, deadline })
            }));
        }
        out
    }

    /// Copies every live entry into one buffer per shard (see [`Shard::dump_into`]), each
    /// under its shard's lock for just a memcpy; the caller serialises outside any lock.
    pub fn dump(&self, now: Instant) -> Vec<Vec<u8>> {
        self.dump_matching(now, |_| true)
    }

    /// Like [`Db::dump`], for the live entries whose key `keep` accepts only. `keep` runs under
    /// each shard's lock, so it should be cheap (an MD5 of the key is).
    pub fn dump_matching(&self, now: Instant, keep: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = shard.lock().expect("shard lock poisoned");
                shard.purge_expired(now);
                let mut out = Vec::new();
                shard.dump_matching_into(&mut out, &keep);
                out
            })
            .collect()
    }

    /// Removes every key `keep` rejects, one shard lock at a time; returns how many (expired
    /// keys not purged yet included). Like FLUSHDB for a part of the keyspace: call it with the
    /// gate held exclusively when nobody may see it half done.
    pub fn retain(&self, keep: impl Fn(&[u8]) -> bool) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().expect("shard lock poisoned").retain(&keep))
            .sum()
    }

    /// Builds an entry for [`Db::load`], returning the shard it belongs to.
    ///
    /// # Errors
    /// [`DumpError`] when a collection's dump does not decode.
    pub fn prepare(
        &self,
        key: &[u8],
        kind: Kind,
        data: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(usize, Prepared), DumpError> {
        Ok((
            self.shard_index(key),
            Shard::prepare(&self.hasher, key, kind, data, deadline)?,
        ))
    }

    /// Like [`Db::prepare`], from a value already decoded.
    pub fn prepare_value(
        &self,
        key: &[u8],
        value: Value,
        deadline: Option<Instant>,
    ) -> (usize, Prepared) {
        (
            self.shard_index(key),
            Shard::prepare_value(&self.hasher, key, value, deadline),
        )
    }

    /// Inserts prepared entries, grouped by shard index (`by_shard[i]` goes to shard `i`).
    pub fn load(&self, by_shard: Vec<Vec<Prepared>>) {
        for (i, entries) in by_shard.into_iter().enumerate() {
            if !entries.is_empty() && i < self.shards.len() {
                self.lock(i).load(entries);
            }
        }
    }

    /// Removes every key; returns how many there were.
    pub fn clear(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = shard.lock().expect("shard lock poisoned");
                let n = shard.len();
                shard.clear();
                n
            })
            .sum()
    }

    /// Removes expired keys shard by shard; returns how many.
    pub fn purge_expired(&self, now: Instant) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .expect("shard lock poisoned")
                    .purge_expired(now)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_ttl_is_exact_across_shards() {
        let store = Store::new(1, 8);
        let db = store.db(0).expect("db 0");
        let now = Instant::now();
        // TTLs of 10, 20, ..., 100 s spread over the shards, plus keys without one.
        for i in 1..=10u64 {
            let key = format!("ttl:{i}");
            let deadline = Some(now + Duration::from_secs(10 * i));
            db.shard(key.as_bytes())
                .put(key.as_bytes(), b"v", deadline, now);
            let key = format!("plain:{i}");
            db.shard(key.as_bytes())
                .put(key.as_bytes(), b"v", None, now);
        }
        let counts = db.key_counts(now);
        assert_eq!((counts.keys, counts.expires), (20, 10));
        assert_eq!(counts.avg_ttl, Duration::from_secs(55));
        // 20 s on, the keys with 10 and 20 s are gone; the rest have 20 s less each.
        let later = db.key_counts(now + Duration::from_secs(20));
        assert_eq!((later.keys, later.expires), (18, 8));
        assert_eq!(later.avg_ttl, Duration::from_secs(65 - 20));
        assert_eq!(
            Store::new(1, 8).db(0).expect("db").key_counts(now),
            KeyCounts::default()
        );
    }

    #[test]
    fn counts_and_keys_never_include_expired_entries() {
        let store = Store::new(1, 8);
        let db = store.db(0).expect("db 0");
        let now = Instant::now();
        for i in 0..100 {
            let key = format!("key:{i}");
            let deadline = (i % 2 == 0).then(|| now + Duration::from_secs(10));
            let entry = Entry {
                value: Value::String(Bytes::from_static(b"v")),
                deadline,
            };
            db.shard(key.as_bytes()).insert(key.as_bytes(), entry, now);
        }
        assert_eq!(db.counts(now), (100, 50));
        let later = now + Duration::from_secs(11);
        assert_eq!(db.counts(later), (50, 0));
        assert_eq!(db.key_counts(later).avg_ttl, Duration::ZERO, "no TTL left");
        assert_eq!(db.keys(b"key:1*", later).len(), 6); // 1, 11, 13, ..., 19
        assert_eq!(db.export(later).len(), 50);
    }

    #[test]
    fn retain_and_dump_matching_see_only_the_keys_kept() {
        let store = Store::new(1, 4);
        let db = store.db(0).expect("db 0");
        let now = Instant::now();
        for i in 0..40 {
            let key = format!("{}:{i}", if i % 2 == 0 { "even" } else { "odd" });
            let deadline = (i % 4 < 2).then(|| now + Duration::from_secs(10));
            db.shard(key.as_bytes())
                .put(key.as_bytes(), b"v", deadline, now);
        }
        let even = |k: &[u8]| k.starts_with(b"even");
        let dumped: usize = db
            .dump_matching(now, even)
            .iter()
            .map(|d| dump_entries(d).filter(|e| even(e.key)).count())
            .sum();
        let all: usize = db
            .dump_matching(now, even)
            .iter()
            .map(|d| dump_entries(d).count())
            .sum();
        assert_eq!((dumped, all), (20, 20));

        let watched = db.shard(b"odd:1").watch(b"odd:1");
        assert_eq!(db.retain(even), 20);
        assert_ne!(db.shard(b"odd:1").version(b"odd:1", now), watched);
        assert_eq!(db.counts(now), (20, 10), "the deadline index follows");
        assert!(db.keys(b"*", now).iter().all(|k| even(k)));
        // Expired keys the deadline index still held are gone with the others.
        assert_eq!(db.counts(now + Duration::from_secs(11)), (10, 0));
    }
}
