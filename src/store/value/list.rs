//! Redis's list type.
//!
//! The interface the rest of the node relies on (the store, dumps, snapshots, MEMORY USAGE):
//! `new`, `len`, `is_empty`, `push_back`, `push_front`, `for_each` (front to back),
//! `encoding`, `memory_usage`, `Clone`, `PartialEq` (same items in the same order).
//! Everything else is the list commands' business.

use std::collections::VecDeque;

/// A list of binary-safe items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List {
    items: VecDeque<Box<[u8]>>,
}

impl List {
    /// An empty list.
    pub fn new() -> Self {
        List::default()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True without items (a key never holds an empty list).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends `item` at the tail.
    pub fn push_back(&mut self, item: &[u8]) {
        self.items.push_back(item.into());
    }

    /// Inserts `item` at the head.
    pub fn push_front(&mut self, item: &[u8]) {
        self.items.push_front(item.into());
    }

    /// Calls `f` on every item, head to tail.
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        self.items.iter().for_each(|i| f(i));
    }

    /// OBJECT ENCODING: Redis 7.0 reports every list as a quicklist.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Approximate heap bytes (MEMORY USAGE).
    pub fn memory_usage(&self) -> usize {
        self.items.capacity() * 16 + self.items.iter().map(|i| i.len()).sum::<usize>()
    }
}
