//! The big encoding: fields ordered by a 64-bit hash, in a B-tree.
//!
//! Why a B-tree of hashes and not a hash table: HSCAN. Redis's cursor is a position in its
//! power-of-two table, walked in reverse-binary order so that a scan survives the table
//! growing or shrinking between calls. Here the cursor is simply a hash value: a call returns
//! the fields whose hashes come next from the cursor up, in increasing order, and answers the
//! hash after the last one it returned. A field's hash never changes, so a field present for
//! the whole scan is returned exactly once, however many fields are added or removed between
//! calls (no duplicates either, which Redis does not promise), and there is no table to resize
//! at all: no rehash pause, and memory shrinks with the hash. Lookups cost O(log n) comparisons
//! of integers instead of one probe, an acceptable price above 512 fields.
//!
//! Each entry of the tree is one bucket: the pairs whose fields share the hash, in the
//! `packed` form (one pair but for a 64-bit collision, which the process-wide random seed
//! makes practically impossible to provoke; a collision still only costs a longer bucket).
//! Per field: 24 bytes in a tree node plus one allocation of the pair, against Redis's
//! 24-byte dict entry, bucket pointer and two sds allocations.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use super::packed;

/// Fields by hash. `len` counts fields (the tree counts buckets).
#[derive(Debug, Clone, Default)]
pub(super) struct Table {
    buckets: BTreeMap<u64, Box<[u8]>>,
    len: usize,
}

/// Iterates the pairs of a table, in hash order.
pub(super) type Iter<'a> = std::iter::FlatMap<
    std::collections::btree_map::Values<'a, u64, Box<[u8]>>,
    packed::Iter<'a>,
    fn(&'a Box<[u8]>) -> packed::Iter<'a>,
>;

impl Table {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn get(&self, field: &[u8]) -> Option<&[u8]> {
        packed::get(self.buckets.get(&hash(field))?, field)
    }

    /// True when the field is new.
    pub(super) fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        use std::collections::btree_map::Entry;
        let new = match self.buckets.entry(hash(field)) {
            Entry::Vacant(slot) => {
                slot.insert(packed::single(field, value));
                true
            }
            Entry::Occupied(mut slot) => packed::insert(slot.get_mut(), field, value).is_some(),
        };
        self.len += usize::from(new);
        new
    }

    /// True when the field was there.
    pub(super) fn remove(&mut self, field: &[u8]) -> bool {
        use std::collections::btree_map::Entry;
        let Entry::Occupied(mut slot) = self.buckets.entry(hash(field)) else {
            return false;
        };
        if !packed::remove(slot.get_mut(), field) {
            return false;
        }
        if slot.get().is_empty() {
            slot.remove();
        }
        self.len -= 1;
        true
    }

    pub(super) fn iter(&self) -> Iter<'_> {
        self.buckets
            .values()
            .flat_map(bucket_pairs as fn(&Box<[u8]>) -> packed::Iter<'_>)
    }

    /// One HSCAN step: calls `f` on the pairs of the buckets from `cursor` up until at least
    /// `count` pairs were seen (or the end); returns the next cursor, 0 at the end.
    pub(super) fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        let mut seen = 0;
        for (&h, bucket) in self.buckets.range(cursor..) {
            for (field, value) in packed::iter(bucket) {
                f(field, value);
                seen += 1;
            }
            if seen >= count {
                // `h + 1` is never 0 (a continuing scan), but for the last possible hash.
                return h.checked_add(1).unwrap_or(0);
            }
        }
        0
    }

    /// A random pair, each about equally likely: exactly uniform for small tables; above,
    /// uniform among the [`WINDOW`] buckets that follow a random hash, which evens out the
    /// unequal gaps between hashes much as Redis's `dictGetFairRandomKey` samples several
    /// buckets.
    pub(super) fn random(&self, rng: &mut fastrand::Rng) -> Option<(&[u8], &[u8])> {
        if self.len <= EXACT_RANDOM_MAX {
            return self.iter().nth(rng.usize(..self.len.max(1)));
        }
        let start = rng.u64(..);
        let pick = rng.usize(..WINDOW);
        let bucket = self
            .buckets
            .range(start..)
            .chain(self.buckets.range(..start))
            .nth(pick)
            .map(|(_, b)| b)?;
        let n = packed::len(bucket);
        packed::iter(bucket).nth(rng.usize(..n.max(1)))
    }

    /// Approximate heap bytes: the tree's share per bucket and each bucket's allocation.
    pub(super) fn memory_usage(&self) -> usize {
        self.buckets
            .values()
            .map(|b| BUCKET_OVERHEAD + b.len())
            .sum()
    }
}

/// The pairs of one bucket.
#[allow(clippy::borrowed_box)] // the tree's values are boxes; `Iter` names this function's type
fn bucket_pairs(bucket: &Box<[u8]>) -> packed::Iter<'_> {
    packed::iter(bucket)
}

/// A field's hash: one seed for the whole process, so that a cursor stays meaningful from one
/// HSCAN call to the next (Redis's dict seed is per process too: cursors do not survive a
/// restart there either). Random, so clients cannot choose colliding fields.
fn hash(field: &[u8]) -> u64 {
    static SEED: LazyLock<ahash::RandomState> = LazyLock::new(ahash::RandomState::new);
    SEED.hash_one(field)
}

/// Up to this many fields, a random pick walks to a uniformly chosen position.
const EXACT_RANDOM_MAX: usize = 64;
/// Buckets a random pick chooses among above [`EXACT_RANDOM_MAX`].
const WINDOW: usize = 16;
/// Bytes per bucket besides its pairs: 24 in a B-tree node about 2/3 full, plus the
/// allocator's header.
const BUCKET_OVERHEAD: usize = 44;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_returns_every_field_once_while_the_table_changes() {
        let mut t = Table::default();
        for i in 0..1000u32 {
            t.insert(&i.to_be_bytes(), b"v");
        }
        let (mut cursor, mut seen) = (0, Vec::new());
        let mut extra = 10_000u32;
        loop {
            cursor = t.scan(cursor, 7, |f, _| seen.push(f.to_vec()));
            // Grow and shrink between calls: fields 0..500 stay, the rest churn.
            for _ in 0..20 {
                t.insert(&extra.to_be_bytes(), b"x");
                extra += 1;
            }
            for i in 500..510u32 {
                t.remove(&(i + (extra % 400)).to_be_bytes());
            }
            if cursor == 0 {
                break;
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "no field twice");
        for i in 0..500u32 {
            assert!(
                unique.contains(&i.to_be_bytes().to_vec()),
                "field {i} missed"
            );
        }
    }

    #[test]
    fn random_reaches_every_field() {
        let mut t = Table::default();
        for i in 0..200u32 {
            t.insert(&i.to_be_bytes(), b"v");
        }
        let mut rng = fastrand::Rng::with_seed(7);
        let mut hits = std::collections::HashMap::new();
        for _ in 0..20_000 {
            let (f, _) = t.random(&mut rng).expect("not empty");
            *hits.entry(f.to_vec()).or_insert(0u32) += 1;
        }
        assert_eq!(hits.len(), 200);
        // Expected 100 each; the window keeps every field within a few times of that.
        assert!(hits.values().all(|&n| (20..=400).contains(&n)), "{hits:?}");
    }
}
