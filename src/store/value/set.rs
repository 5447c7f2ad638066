//! Redis's set type.
//!
//! The interface the rest of the node relies on: `new`, `len`, `is_empty`, `insert`
//! (true when new), `for_each` (any order), `encoding`, `memory_usage`, `Clone`,
//! `PartialEq` (same members). Everything else is the set commands' business.

use std::collections::HashSet;

use super::limits;

/// A set of binary-safe members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    members: HashSet<Box<[u8]>, ahash::RandomState>,
}

impl Set {
    /// An empty set.
    pub fn new() -> Self {
        Set::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True without members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Adds `member`; true when it was not there.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        self.members.insert(member.into())
    }

    /// Calls `f` on every member.
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        self.members.iter().for_each(|m| f(m));
    }

    /// OBJECT ENCODING, by Redis 7.0's rules.
    pub fn encoding(&self) -> &'static str {
        let ints = self.members.iter().all(|m| {
            std::str::from_utf8(m).is_ok_and(|s| s.parse::<i64>().is_ok_and(|n| n.to_string() == s))
        });
        if ints && self.len() <= limits::SET_MAX_INTSET_ENTRIES.count() {
            "intset"
        } else {
            "hashtable"
        }
    }

    /// Approximate heap bytes (MEMORY USAGE).
    pub fn memory_usage(&self) -> usize {
        self.members.capacity() * 17 + self.members.iter().map(|m| m.len()).sum::<usize>()
    }
}
