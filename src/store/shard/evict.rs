//! What eviction asks of a shard: its access sketch switched on or off, random samples of its
//! keys with their eviction scores, the key with the nearest deadline, and the removal of a
//! victim with an estimate of the bytes it frees. Choosing victims across shards and telling
//! the effect stream is `crate::memory`'s job, not this module's.

use tokio::time::Instant;

use super::sketch::{Mode, Sketch};
use super::{clock, Shard};

/// How [`Shard::sample`] scores the keys it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Score {
    /// By the access sketch (LRU idle time or LFU rarity); needs [`Shard::set_tracking`].
    Sketch,
    /// At random (the `*-random` policies).
    Random,
}

/// Bookkeeping bytes of one entry beyond its key and value (table slot, allocation header and
/// rounding), as MEMORY USAGE counts them.
pub const ENTRY_OVERHEAD: usize = 96;

impl Shard {
    /// Switches the access sketch to `mode`, or off (`None`): a new sketch starts as if every
    /// key had just been created; switching between LRU and LFU starts over as well.
    pub fn set_tracking(&mut self, mode: Option<Mode>, now: Instant) {
        if self.sketch.as_ref().map(Sketch::mode) == mode {
            return;
        }
        self.sketch = mode.map(|m| Sketch::new(m, self.table.len(), now_ms(now)));
    }

    /// What the access sketch records, if there is one.
    pub fn tracking(&self) -> Option<Mode> {
        self.sketch.as_ref().map(Sketch::mode)
    }

    /// Bytes the access sketch holds.
    pub fn sketch_bytes(&self) -> usize {
        self.sketch.as_ref().map_or(0, Sketch::bytes)
    }

    /// Runs `f` on the shard without recording accesses (OBJECT, MEMORY USAGE: Redis's
    /// `LOOKUP_NOTOUCH`).
    pub fn untouched<R>(&mut self, f: impl FnOnce(&mut Shard) -> R) -> R {
        let sketch = self.sketch.take();
        let result = f(self);
        self.sketch = sketch;
        result
    }

    /// Bytes of the table's slots (16 per bucket plus a control byte; MEMORY STATS).
    pub fn table_bytes(&self) -> usize {
        self.table.capacity() * 17
    }

    /// Records a write of the key hashing to `hash` in the sketch (`existed`: an overwrite,
    /// an access; otherwise a new key), growing it to the table's size.
    pub(super) fn track_write(&mut self, hash: u64, existed: bool, now: Instant) {
        let len = self.table.len();
        if let Some(sketch) = &mut self.sketch {
            sketch.fit(len);
            if existed {
                sketch.touch(hash, now_ms(now));
            } else {
                sketch.created(hash, now_ms(now));
            }
        }
    }

    /// OBJECT IDLETIME: milliseconds since `key` was last used, under an LRU sketch. Does not
    /// count as an access (Redis's OBJECT does not either).
    pub fn idle_ms(&self, key: &[u8], now: Instant) -> Option<u64> {
        let hash = self.hasher.hash_one(key);
        self.table.find(hash, |i| i.key() == key)?;
        self.sketch.as_ref()?.idle_ms(hash, now_ms(now))
    }

    /// OBJECT FREQ: the decayed LFU counter of `key`, under an LFU sketch.
    pub fn freq(&self, key: &[u8], now: Instant) -> Option<u8> {
        let hash = self.hasher.hash_one(key);
        self.table.find(hash, |i| i.key() == key)?;
        self.sketch.as_ref()?.freq(hash, now_ms(now))
    }

    /// Appends up to `count` keys picked at random, with their score (higher: evict first), to
    /// `out`: from a random bucket on, as Redis's `dictGetSomeKeys` walks its table. With
    /// `volatile` only keys with a deadline count; at most a few hundred buckets are looked at.
    /// [`Score::Sketch`] without a sketch picks nothing.
    pub fn sample(
        &self,
        count: usize,
        volatile: bool,
        score: Score,
        now: Instant,
        out: &mut Vec<(u64, Box<[u8]>)>,
    ) {
        let buckets = self.table.num_buckets();
        if self.table.is_empty() || buckets == 0 || count == 0 {
            return;
        }
        if score == Score::Sketch && self.sketch.is_none() {
            return;
        }
        let now_ms = now_ms(now);
        let start = fastrand::usize(..buckets);
        let (mut found, mut looked) = (0, 0);
        while found < count && looked < buckets.min(count * 64 + 256) {
            let index = (start + looked) & (buckets - 1);
            looked += 1;
            let Some(item) = self.table.get_bucket(index) else {
                continue;
            };
            if volatile && item.deadline().is_none() {
                continue;
            }
            let key = item.key();
            let value = match (score, &self.sketch) {
                (Score::Sketch, Some(sketch)) => sketch.score(self.hasher.hash_one(key), now_ms),
                _ => fastrand::u64(..),
            };
            out.push((value, key.into()));
            found += 1;
        }
    }

    /// The key with the nearest deadline and that deadline (store-clock microseconds), for
    /// `volatile-ttl`: straight from the deadline index, no sampling.
    pub fn nearest_deadline(&self) -> Option<(u64, Box<[u8]>)> {
        let (&(deadline, hash), _) = self.deadlines.index.first_key_value()?;
        let hasher = &self.hasher;
        let item = self.table.find(hash, |i| {
            i.deadline() == Some(deadline) && hasher.hash_one(i.key()) == hash
        })?;
        Some((deadline, item.key().into()))
    }

    /// The eviction score `key` would get now (as [`Shard::sample`] gives it), or `None` when
    /// the key is gone (or, with `volatile`, has no deadline any more).
    pub fn rescore(&self, key: &[u8], volatile: bool, now: Instant) -> Option<u64> {
        let hash = self.hasher.hash_one(key);
        let item = self.table.find(hash, |i| i.key() == key)?;
        if volatile && item.deadline().is_none() {
            return None;
        }
        Some(
            self.sketch
                .as_ref()
                .map_or(0, |s| s.score(hash, now_ms(now))),
        )
    }

    /// Removes `key` whatever its deadline (an eviction); returns an estimate of the bytes
    /// freed (as MEMORY USAGE counts them), `None` when it was not there.
    pub fn evict(&mut self, key: &[u8]) -> Option<usize> {
        let item = self.take(key)?;
        Some(ENTRY_OVERHEAD + key.len() + item.peek().memory_usage())
    }
}

fn now_ms(now: Instant) -> u64 {
    clock::to_micros(now) / 1000
}
