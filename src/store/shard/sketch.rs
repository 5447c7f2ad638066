//! The access sketch of a shard: what LRU and LFU eviction know about a key's use, without a
//! field in every entry.
//!
//! An entry is a 16-byte slot plus one allocation (see the parent module); Redis keeps 24 bits
//! of LRU clock or LFU counter in every object, which here would cost 8 bytes per key after
//! alignment. Instead a shard that runs under an LRU or LFU policy (and only then: the
//! default path pays nothing) keeps a `Vec<u32>` indexed by bits of the key's hash, at least
//! as long as the shard has keys (a power of two; when it doubles, slot `i` is copied to `i`
//! and `i + old_len`, so no key loses its history). Two keys that share a slot share a
//! history: a collision makes the colder key look as hot as the hotter one (never the other
//! way round), so eviction may keep a cold key a little longer; with at least one slot per key
//! about a third of the keys share one.
//!
//! - LRU: the slot holds the store clock in milliseconds (wrapping every 49 days; an idle
//!   time is a wrapping difference), finer than Redis's 1-second clock.
//! - LFU: Redis's layout, 16 bits of minutes of the last decrement and 8 bits of logarithmic
//!   counter (`lfu-log-factor`, `lfu-decay-time`, new keys at [`LFU_INIT_VAL`]), under an
//!   8-bit tag of the owning key's hash. A key whose tag differs reads as new; it takes the
//!   slot over only when the owner is no hotter than a new key. So a cold key sharing a slot
//!   with a hot one is not protected by it (the LFU collisions that cost hit ratio), at the
//!   price of a key that shares with a hotter one building no history until that one decays.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// The LFU counter of a new key, as Redis's `LFU_INIT_VAL`.
pub const LFU_INIT_VAL: u8 = 5;

/// `lfu-log-factor` (node-wide, like the encoding limits: in `minikv cluster` every node of
/// the process shares it).
pub static LFU_LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
/// `lfu-decay-time`, in minutes (0: counters never decay).
pub static LFU_DECAY_TIME: AtomicU32 = AtomicU32::new(1);

/// What a sketch records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The last access time.
    Lru,
    /// A logarithmic access frequency that decays with time.
    Lfu,
}

/// One shard's access history (see the module doc).
#[derive(Debug, Clone)]
pub struct Sketch {
    mode: Mode,
    slots: Vec<u32>,
}

impl Sketch {
    /// A sketch of `mode` for at least `keys` keys, every slot as if its key were new at
    /// `now_ms` (keys present when a policy is switched on start with no history, as in Redis).
    pub fn new(mode: Mode, keys: usize, now_ms: u64) -> Sketch {
        let len = keys.max(MIN_LEN).next_power_of_two();
        Sketch {
            mode,
            slots: vec![fresh(mode, now_ms); len],
        }
    }

    /// What it records.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Number of slots (never zero).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Always false: a sketch has at least 16 slots.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Bytes held (MEMORY STATS).
    pub fn bytes(&self) -> usize {
        self.slots.capacity() * 4
    }

    /// Doubles until there are at least `keys` slots, copying each slot's history to its two
    /// successors.
    pub fn fit(&mut self, keys: usize) {
        while self.slots.len() < keys {
            self.slots.extend_from_within(..);
        }
    }

    /// Records an access to the key hashing to `hash` (a read or a write of an existing key).
    #[inline]
    pub fn touch(&mut self, hash: u64, now_ms: u64) {
        let i = self.index(hash);
        self.slots[i] = match self.mode {
            Mode::Lru => now_ms as u32,
            Mode::Lfu => {
                let (slot, tag) = (self.slots[i], tag(hash));
                let counter = if slot_tag(slot) == tag {
                    lfu_decayed(slot, now_ms)
                } else if lfu_decayed(slot, now_ms) <= LFU_INIT_VAL {
                    // The slot's owner is no hotter than a new key: this key takes it over.
                    LFU_INIT_VAL
                } else {
                    // A hotter key owns the slot: it keeps it (this one reads as new).
                    return;
                };
                lfu_pack(tag, lfu_log_incr(counter, fastrand::f64()), now_ms)
            }
        };
    }

    /// Records the creation of the key hashing to `hash`: LRU as an access, LFU as
    /// [`LFU_INIT_VAL`] unless the slot (shared with another key) is hotter.
    #[inline]
    pub fn created(&mut self, hash: u64, now_ms: u64) {
        let i = self.index(hash);
        self.slots[i] = match self.mode {
            Mode::Lru => now_ms as u32,
            Mode::Lfu => {
                let slot = self.slots[i];
                if slot_tag(slot) != tag(hash) && lfu_decayed(slot, now_ms) > LFU_INIT_VAL {
                    return;
                }
                lfu_pack(tag(hash), LFU_INIT_VAL, now_ms)
            }
        };
    }

    /// The key's eviction score at `now_ms`: higher goes first. LRU: idle milliseconds; LFU:
    /// 255 minus the decayed counter (Redis's `evictionPoolPopulate` idle value).
    pub fn score(&self, hash: u64, now_ms: u64) -> u64 {
        let slot = self.slots[self.index(hash)];
        match self.mode {
            Mode::Lru => u64::from((now_ms as u32).wrapping_sub(slot)),
            Mode::Lfu => 255 - u64::from(lfu_counter(slot, hash, now_ms)),
        }
    }

    /// OBJECT IDLETIME's milliseconds (LRU only).
    pub fn idle_ms(&self, hash: u64, now_ms: u64) -> Option<u64> {
        (self.mode == Mode::Lru).then(|| self.score(hash, now_ms))
    }

    /// OBJECT FREQ's counter, decayed to now (LFU only).
    pub fn freq(&self, hash: u64, now_ms: u64) -> Option<u8> {
        (self.mode == Mode::Lfu).then(|| lfu_counter(self.slots[self.index(hash)], hash, now_ms))
    }

    #[inline]
    fn index(&self, hash: u64) -> usize {
        // Above the bits that pick the shard (`hash % shards`) and hashbrown's bucket.
        ((hash >> 16) as usize) & (self.slots.len() - 1)
    }
}

/// A slot as for a key created at `now_ms`.
fn fresh(mode: Mode, now_ms: u64) -> u32 {
    match mode {
        Mode::Lru => now_ms as u32,
        Mode::Lfu => lfu_pack(0, LFU_INIT_VAL, now_ms),
    }
}

/// The 8 bits of an LFU slot that say which key owns it: the hash's top byte (the index
/// uses bits 16 and up of the low part).
fn tag(hash: u64) -> u32 {
    (hash >> 56) as u32
}

fn slot_tag(slot: u32) -> u32 {
    slot >> 24
}

/// The decayed counter of the key hashing to `hash`: its own when it owns the slot, a new
/// key's otherwise.
fn lfu_counter(slot: u32, hash: u64, now_ms: u64) -> u8 {
    if slot_tag(slot) == tag(hash) {
        lfu_decayed(slot, now_ms)
    } else {
        LFU_INIT_VAL
    }
}

/// Minutes on the store clock, on 16 bits as Redis's `LFUGetTimeInMinutes`.
fn minutes(now_ms: u64) -> u32 {
    ((now_ms / 60_000) & 0xffff) as u32
}

fn lfu_pack(tag: u32, counter: u8, now_ms: u64) -> u32 {
    (tag << 24) | (minutes(now_ms) << 8) | u32::from(counter)
}

/// Redis's `LFUDecrAndReturn`: the counter less one per `lfu-decay-time` minutes elapsed.
pub fn lfu_decayed(slot: u32, now_ms: u64) -> u8 {
    let (ldt, counter) = ((slot >> 8) & 0xffff, (slot & 0xff) as u8);
    let now = minutes(now_ms);
    let elapsed = if now >= ldt {
        now - ldt
    } else {
        65535 - ldt + now
    };
    let decay = LFU_DECAY_TIME.load(Relaxed);
    let periods = elapsed.checked_div(decay).unwrap_or(0);
    counter.saturating_sub(u8::try_from(periods).unwrap_or(u8::MAX))
}

/// Redis's `LFULogIncr` with `r` a uniform number in [0, 1): the counter grows with
/// probability `1 / ((counter - LFU_INIT_VAL) * lfu-log-factor + 1)`.
pub fn lfu_log_incr(counter: u8, r: f64) -> u8 {
    if counter == u8::MAX {
        return counter;
    }
    let base = f64::from(counter.saturating_sub(LFU_INIT_VAL));
    let p = 1.0 / (base * f64::from(LFU_LOG_FACTOR.load(Relaxed)) + 1.0);
    if r < p {
        counter + 1
    } else {
        counter
    }
}

/// Slots of an empty shard's sketch.
const MIN_LEN: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lfu_counter_grows_as_redis_computes_it() {
        // p = 1 / ((counter - 5) * 10 + 1): at 5 every access counts, at 6 one in 11.
        assert_eq!(lfu_log_incr(5, 0.999), 6);
        assert_eq!(lfu_log_incr(0, 0.999), 1, "below the initial value p is 1");
        assert_eq!(lfu_log_incr(6, 1.0 / 11.0 - 1e-9), 7);
        assert_eq!(lfu_log_incr(6, 1.0 / 11.0 + 1e-9), 6);
        assert_eq!(lfu_log_incr(255, 0.0), 255);
        // Redis's table (redis.conf): with factor 10, about 100 hits reach ~10, 1M reach 255.
        let mut c = LFU_INIT_VAL;
        for _ in 0..1_000_000 {
            c = lfu_log_incr(c, fastrand::f64());
        }
        assert!(c > 100, "a million hits make a hot key: {c}");
    }

    #[test]
    fn the_lfu_counter_decays_one_per_period() {
        let slot = lfu_pack(7, 20, 0);
        assert_eq!(lfu_decayed(slot, 59_999), 20);
        assert_eq!(lfu_decayed(slot, 3 * 60_000), 17);
        assert_eq!(lfu_decayed(slot, 600 * 60_000), 0);
        // The 16-bit minute clock wraps as Redis's does.
        let late = lfu_pack(0, 9, 65_535 * 60_000);
        assert_eq!(
            lfu_decayed(late, 65_536 * 60_000 + 2 * 60_000),
            7,
            "Redis counts 65535 - ldt + now"
        );
    }

    #[test]
    fn growing_keeps_every_keys_history() {
        let mut sketch = Sketch::new(Mode::Lru, 0, 1_000);
        assert_eq!(sketch.len(), MIN_LEN);
        let hashes: Vec<u64> = (0..64u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        for (i, h) in hashes.iter().enumerate() {
            sketch.touch(*h, 2_000 + i as u64);
        }
        let before: Vec<u64> = hashes.iter().map(|h| sketch.score(*h, 10_000)).collect();
        sketch.fit(1000);
        assert_eq!(sketch.len(), 1024);
        let after: Vec<u64> = hashes.iter().map(|h| sketch.score(*h, 10_000)).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn a_cold_key_sharing_a_hot_keys_slot_reads_as_new() {
        let mut lfu = Sketch::new(Mode::Lfu, 16, 0);
        let (hot, cold) = (1u64 << 16 | 1 << 56, 1u64 << 16 | 2 << 56);
        // Redis's counter grows with probability 1 / ((c - 5) * 10 + 1) per hit: past 6 after
        // 1000 hits all but surely (a 20-hit loop stayed at 6 about one run in six).
        for _ in 0..1000 {
            lfu.touch(hot, 0);
        }
        let hot_freq = lfu.freq(hot, 0).unwrap_or(0);
        assert!(hot_freq > LFU_INIT_VAL + 1);
        lfu.created(cold, 0);
        lfu.touch(cold, 0);
        assert_eq!(lfu.freq(cold, 0), Some(LFU_INIT_VAL));
        assert_eq!(
            lfu.freq(hot, 0),
            Some(hot_freq),
            "the hot key keeps its slot"
        );
    }

    #[test]
    fn scores_put_cold_keys_first() {
        let mut lru = Sketch::new(Mode::Lru, 1 << 10, 0);
        lru.touch(1 << 16, 100);
        lru.touch(2 << 16, 900);
        assert!(lru.score(1 << 16, 1_000) > lru.score(2 << 16, 1_000));
        assert_eq!(lru.idle_ms(2 << 16, 1_000), Some(100));
        assert_eq!(lru.freq(2 << 16, 1_000), None);

        let mut lfu = Sketch::new(Mode::Lfu, 1 << 10, 0);
        assert_eq!(lfu.freq(3 << 16, 0), Some(LFU_INIT_VAL));
        for _ in 0..50 {
            lfu.touch(3 << 16, 0);
        }
        assert!(lfu.score(3 << 16, 0) < lfu.score(4 << 16, 0));
        assert_eq!(lfu.idle_ms(3 << 16, 0), None);
    }
}
