//! Redis's hash type, in Redis 7.0's two encodings.
//!
//! - `listpack` (`packed`): every pair in one contiguous buffer, insertion order, linear
//!   lookup, while the hash has at most `hash-max-listpack-entries` fields and every field
//!   and value is at most `hash-max-listpack-value` bytes.
//! - `hashtable` (`table`): above either limit, fields ordered by a hash in a B-tree, whose
//!   order is also the HSCAN cursor (see `table` for why not a hash table).
//!
//! Conversion goes one way, small to big, at the moments Redis 7.0 converts: before a write
//! whose arguments are too long ([`Hash::prepare_write`], Redis's `hashTypeTryConversion`),
//! and when an insert makes the hash too long or stores a too-long string (`hashTypeSet`).
//!
//! The interface the rest of the node relies on: `new`, `len`, `is_empty`, `insert` (true
//! when the field is new), `for_each` (field, value; any order), `encoding`, `memory_usage`,
//! `Clone`, `PartialEq` (same pairs). The rest serves the hash commands; this module must not
//! know about replies or arguments.

mod packed;
mod table;

use std::collections::HashSet;

use super::limits;
use table::Table;

/// A map of binary-safe fields to binary-safe values. 16 bytes: every hash key pays for it.
#[derive(Clone)]
pub struct Hash {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    /// The `listpack` encoding (an empty buffer for a new hash: no allocation).
    Packed(Box<[u8]>),
    /// The `hashtable` encoding.
    Table(Box<Table>),
}

/// The pairs of a hash: insertion order for a `listpack`, hash order for a `hashtable`.
#[derive(Debug, Clone)]
pub struct Iter<'a>(IterRepr<'a>);

#[derive(Debug, Clone)]
enum IterRepr<'a> {
    Packed(packed::Iter<'a>),
    Table(table::Iter<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Packed(i) => i.next(),
            IterRepr::Table(i) => i.next(),
        }
    }
}

impl Default for Hash {
    fn default() -> Self {
        Hash {
            repr: Repr::Packed(Box::default()),
        }
    }
}

impl Hash {
    /// An empty hash.
    pub fn new() -> Self {
        Hash::default()
    }

    /// Number of fields (a walk of the buffer for a `listpack`, as small as it is).
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Packed(buf) => packed::len(buf),
            Repr::Table(t) => t.len(),
        }
    }

    /// True without fields.
    pub fn is_empty(&self) -> bool {
        match &self.repr {
            Repr::Packed(buf) => buf.is_empty(),
            Repr::Table(t) => t.len() == 0,
        }
    }

    /// The value of `field`.
    #[inline]
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Packed(buf) => packed::get(buf, field),
            Repr::Table(t) => t.get(field),
        }
    }

    /// Whether `field` exists.
    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Sets `field` to `value`; true when the field is new. Leaves the `listpack` encoding
    /// when either string is longer than `hash-max-listpack-value` or the hash grows past
    /// `hash-max-listpack-entries` (Redis's `hashTypeSet`).
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.insert_within(field, value, Limits::current())
    }

    fn insert_within(&mut self, field: &[u8], value: &[u8], limits: Limits) -> bool {
        if let Repr::Packed(buf) = &mut self.repr {
            if field.len() <= limits.value && value.len() <= limits.value {
                let added = packed::insert(buf, field, value);
                if added.is_some_and(|n| n > limits.entries) {
                    self.convert();
                }
                return added.is_some();
            }
            self.convert();
        }
        match &mut self.repr {
            Repr::Table(t) => t.insert(field, value),
            // `convert` above always leaves a table.
            Repr::Packed(buf) => packed::insert(buf, field, value).is_some(),
        }
    }

    /// Sets each pair in turn (HSET's fields and values); returns how many fields are new.
    /// The same as [`Hash::insert`] pair by pair, but a `listpack` is rebuilt once for all of
    /// them rather than regrown for each (fewer allocations, and no fragments left behind).
    pub fn insert_pairs<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> usize {
        self.insert_pairs_within(pairs, Limits::current())
    }

    fn insert_pairs_within<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        limits: Limits,
    ) -> usize {
        let pairs: Vec<_> = pairs.into_iter().collect();
        if let Repr::Packed(buf) = &mut self.repr {
            let fits = |s: &[u8]| s.len() <= limits.value;
            if pairs.iter().all(|(f, v)| fits(f) && fits(v)) {
                let (added, len) = packed::insert_many(buf, &pairs);
                if len > limits.entries {
                    self.convert();
                }
                return added;
            }
        }
        pairs
            .into_iter()
            .filter(|(f, v)| self.insert_within(f, v, limits))
            .count()
    }

    /// Removes `field`; true when it was there. A `hashtable` stays one (as in Redis 7.0).
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Packed(buf) => packed::remove(buf, field),
            Repr::Table(t) => t.remove(field),
        }
    }

    /// Redis's `hashTypeTryConversion`: before a write of strings of these lengths (HSET's
    /// fields and values, all of them, whether or not they end up stored), leaves the
    /// `listpack` encoding if any is longer than `hash-max-listpack-value`.
    pub fn prepare_write(&mut self, lengths: impl IntoIterator<Item = usize>) {
        self.prepare_write_within(lengths, Limits::current());
    }

    fn prepare_write_within(&mut self, lengths: impl IntoIterator<Item = usize>, limits: Limits) {
        if matches!(self.repr, Repr::Packed(_)) && lengths.into_iter().any(|n| n > limits.value) {
            self.convert();
        }
    }

    /// The pairs: insertion order for a `listpack` (as Redis replies), hash order otherwise.
    pub fn iter(&self) -> Iter<'_> {
        Iter(match &self.repr {
            Repr::Packed(buf) => IterRepr::Packed(packed::iter(buf)),
            Repr::Table(t) => IterRepr::Table(t.iter()),
        })
    }

    /// Calls `f` on every (field, value), in [`Hash::iter`]'s order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        self.iter().for_each(|(k, v)| f(k, v));
    }

    /// OBJECT ENCODING: `listpack` or `hashtable`.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Packed(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Approximate heap bytes (MEMORY USAGE).
    pub fn memory_usage(&self) -> usize {
        match &self.repr {
            Repr::Packed(buf) => buf.len(),
            Repr::Table(t) => t.memory_usage(),
        }
    }

    /// One HSCAN step from `cursor`, calling `f` on each pair returned: a `listpack` returns
    /// everything at once, whatever the cursor, as Redis does; a `hashtable` about `count`
    /// pairs. Returns the next cursor, 0 when the scan is complete. Every field present from
    /// the first call to the last is returned, exactly once (see `table`).
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        match &self.repr {
            Repr::Packed(buf) => {
                packed::iter(buf).for_each(|(k, v)| f(k, v));
                0
            }
            Repr::Table(t) => t.scan(cursor, count.max(1), f),
        }
    }

    /// A random pair (`None` when empty).
    pub fn random(&self, rng: &mut fastrand::Rng) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Packed(buf) => {
                let n = packed::len(buf);
                packed::iter(buf).nth(rng.usize(..n.max(1)))
            }
            Repr::Table(t) => t.random(rng),
        }
    }

    /// `count` random pairs, repeats allowed (HRANDFIELD with a negative count), each drawn
    /// on its own; `f` gets them one by one.
    pub fn random_with_repeats(
        &self,
        count: usize,
        rng: &mut fastrand::Rng,
        mut f: impl FnMut(&[u8], &[u8]),
    ) {
        let len = self.len();
        if len == 0 {
            return;
        }
        if matches!(self.repr, Repr::Table(_)) && count < len / 8 {
            // A few draws from a big table: no need to list it.
            for _ in 0..count {
                if let Some((k, v)) = self.random(rng) {
                    f(k, v);
                }
            }
            return;
        }
        // Listing once makes each draw O(1) (a listpack has no index).
        let all: Vec<_> = self.iter().collect();
        for _ in 0..count {
            if let Some(&(k, v)) = all.get(rng.usize(..all.len())) {
                f(k, v);
            }
        }
    }

    /// `count` distinct random pairs (HRANDFIELD with a positive count); the whole hash when
    /// `count` is at least its size. Strategies as Redis's: for a count close to the size, a
    /// random subset of the full list; for a small count, selection sampling along a
    /// `listpack` (so in its order) or repeated draws from a table.
    pub fn random_distinct(&self, count: usize, rng: &mut fastrand::Rng) -> Vec<(&[u8], &[u8])> {
        let len = self.len();
        if count >= len {
            return self.iter().collect();
        }
        match &self.repr {
            _ if count.saturating_mul(3) > len => {
                let mut all: Vec<_> = self.iter().collect();
                for i in 0..count {
                    all.swap(i, rng.usize(i..len));
                }
                all.truncate(count);
                all
            }
            Repr::Packed(buf) => {
                let mut out = Vec::with_capacity(count);
                let mut left = len;
                for pair in packed::iter(buf) {
                    if rng.usize(..left) < count - out.len() {
                        out.push(pair);
                        if out.len() == count {
                            break;
                        }
                    }
                    left -= 1;
                }
                out
            }
            Repr::Table(t) => {
                let mut out = Vec::with_capacity(count);
                let mut seen = HashSet::with_capacity(count);
                while out.len() < count {
                    match t.random(rng) {
                        Some(pair) if seen.insert(pair.0) => out.push(pair),
                        Some(_) => {}
                        None => break,
                    }
                }
                out
            }
        }
    }

    /// Moves a `listpack` to the `hashtable` encoding.
    fn convert(&mut self) {
        if let Repr::Packed(buf) = &self.repr {
            let mut table = Table::default();
            for (k, v) in packed::iter(buf) {
                table.insert(k, v);
            }
            self.repr = Repr::Table(Box::new(table));
        }
    }
}

/// The two CONFIG settings a conversion looks at, read once per write.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// `hash-max-listpack-entries`.
    entries: usize,
    /// `hash-max-listpack-value`.
    value: usize,
}

impl Limits {
    fn current() -> Limits {
        Limits {
            entries: limits::HASH_MAX_LISTPACK_ENTRIES.count(),
            value: limits::HASH_MAX_LISTPACK_VALUE.count(),
        }
    }
}

impl PartialEq for Hash {
    /// Same pairs, whatever the encodings and orders.
    fn eq(&self, other: &Hash) -> bool {
        if let (Repr::Packed(a), Repr::Packed(b)) = (&self.repr, &other.repr) {
            if a == b {
                return true;
            }
        }
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for Hash {}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests;
