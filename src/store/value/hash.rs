//! Redis's hash type.
//!
//! The interface the rest of the node relies on: `new`, `len`, `is_empty`, `insert`
//! (true when the field is new), `for_each` (field, value; any order), `encoding`,
//! `memory_usage`, `Clone`, `PartialEq` (same pairs). Everything else is the hash commands'
//! business.

use std::collections::HashMap;

use super::limits;

/// A map of binary-safe fields to binary-safe values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hash {
    fields: HashMap<Box<[u8]>, Box<[u8]>, ahash::RandomState>,
}

impl Hash {
    /// An empty hash.
    pub fn new() -> Self {
        Hash::default()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True without fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Sets `field` to `value`; true when the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.fields.insert(field.into(), value.into()).is_none()
    }

    /// Calls `f` on every (field, value).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        self.fields.iter().for_each(|(k, v)| f(k, v));
    }

    /// OBJECT ENCODING, by Redis 7.0's rules.
    pub fn encoding(&self) -> &'static str {
        let max = limits::HASH_MAX_LISTPACK_VALUE.count();
        if self.len() <= limits::HASH_MAX_LISTPACK_ENTRIES.count()
            && self
                .fields
                .iter()
                .all(|(k, v)| k.len() <= max && v.len() <= max)
        {
            "listpack"
        } else {
            "hashtable"
        }
    }

    /// Approximate heap bytes (MEMORY USAGE).
    pub fn memory_usage(&self) -> usize {
        self.fields.capacity() * 33
            + self
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}
