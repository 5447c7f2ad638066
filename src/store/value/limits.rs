//! The size thresholds at which a small collection leaves its compact encoding, Redis 7.0's
//! `*-max-listpack-*` / `set-max-intset-entries` settings (with their `*-ziplist-*` aliases in
//! CONFIG). Node-wide and changed at run time by CONFIG SET, as Redis's are, so they live in
//! atomics read on every write that may convert a value.

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

/// One setting: its CONFIG name, the aliases Redis accepts, and the value.
#[derive(Debug)]
pub struct Limit {
    /// The CONFIG name (Redis 7.0's).
    pub name: &'static str,
    /// Older names CONFIG accepts for it.
    pub alias: Option<&'static str>,
    /// The smallest value CONFIG SET accepts.
    pub min: i64,
    /// The largest.
    pub max: i64,
    value: AtomicI64,
}

impl Limit {
    const fn new(
        name: &'static str,
        alias: Option<&'static str>,
        (min, max): (i64, i64),
        default: i64,
    ) -> Self {
        Limit {
            name,
            alias,
            min,
            max,
            value: AtomicI64::new(default),
        }
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> i64 {
        self.value.load(Relaxed)
    }

    /// The current value as a count (negative settings read as 0).
    #[inline]
    pub fn count(&self) -> usize {
        usize::try_from(self.get()).unwrap_or(0)
    }

    /// Sets the value (CONFIG SET).
    ///
    /// # Errors
    /// Redis's reason when `value` is outside `min..=max`.
    pub fn set(&self, value: i64) -> Result<(), String> {
        if !(self.min..=self.max).contains(&value) {
            return Err(format!(
                "argument must be between {} and {} inclusive",
                self.min, self.max
            ));
        }
        self.value.store(value, Relaxed);
        Ok(())
    }
}

/// Sizes: 0 to `LONG_MAX`.
const SIZE: (i64, i64) = (0, i64::MAX);
/// Signed ints: `INT_MIN` to `INT_MAX`.
const INT: (i64, i64) = (i32::MIN as i64, i32::MAX as i64);

// The defaults are redis-server's compiled-in ones (what it runs with without a config file;
// the sample redis.conf lowers hash-max-listpack-entries to 128).

/// `hash-max-listpack-entries` (512): more fields than this and a hash becomes a table.
pub static HASH_MAX_LISTPACK_ENTRIES: Limit = Limit::new(
    "hash-max-listpack-entries",
    Some("hash-max-ziplist-entries"),
    SIZE,
    512,
);
/// `hash-max-listpack-value` (64): a field or value longer than this makes it a table.
pub static HASH_MAX_LISTPACK_VALUE: Limit = Limit::new(
    "hash-max-listpack-value",
    Some("hash-max-ziplist-value"),
    SIZE,
    64,
);
/// `set-max-intset-entries` (512): more integers than this and a set becomes a table.
pub static SET_MAX_INTSET_ENTRIES: Limit = Limit::new("set-max-intset-entries", None, SIZE, 512);
/// `zset-max-listpack-entries` (128).
pub static ZSET_MAX_LISTPACK_ENTRIES: Limit = Limit::new(
    "zset-max-listpack-entries",
    Some("zset-max-ziplist-entries"),
    SIZE,
    128,
);
/// `zset-max-listpack-value` (64).
pub static ZSET_MAX_LISTPACK_VALUE: Limit = Limit::new(
    "zset-max-listpack-value",
    Some("zset-max-ziplist-value"),
    SIZE,
    64,
);
/// `list-max-listpack-size` (-2): a list node's limit, positive = entries, -1..-5 = 4..64 KB.
pub static LIST_MAX_LISTPACK_SIZE: Limit = Limit::new(
    "list-max-listpack-size",
    Some("list-max-ziplist-size"),
    INT,
    -2,
);
/// `list-compress-depth` (0): accepted and reported; nodes are never compressed here.
pub static LIST_COMPRESS_DEPTH: Limit =
    Limit::new("list-compress-depth", None, (0, i32::MAX as i64), 0);

/// Every setting, in CONFIG GET order.
pub static ALL: [&Limit; 7] = [
    &HASH_MAX_LISTPACK_ENTRIES,
    &HASH_MAX_LISTPACK_VALUE,
    &SET_MAX_INTSET_ENTRIES,
    &ZSET_MAX_LISTPACK_ENTRIES,
    &ZSET_MAX_LISTPACK_VALUE,
    &LIST_MAX_LISTPACK_SIZE,
    &LIST_COMPRESS_DEPTH,
];

/// The setting CONFIG knows by `name` (either name, any case).
pub fn find(name: &str) -> Option<&'static Limit> {
    ALL.iter().copied().find(|l| {
        l.name.eq_ignore_ascii_case(name) || l.alias.is_some_and(|a| a.eq_ignore_ascii_case(name))
    })
}

/// The byte limit of one list node for `list-max-listpack-size` values -1..-5 (Redis's
/// `optimization_level`: 4, 8, 16, 32, 64 KB), or `None` for a positive (entry count) setting.
pub fn list_node_bytes() -> Option<usize> {
    match LIST_MAX_LISTPACK_SIZE.get() {
        n if n >= 0 => None,
        n => Some(4096 << (n.unsigned_abs().clamp(1, 5) - 1)),
    }
}
