//! Redis's set type, in Redis 7.0's two encodings: an intset (sorted packed integers, binary
//! search) while every member is an integer and there are at most `set-max-intset-entries`
//! of them, and a hash table otherwise (module `table`: chained buckets, so that SSCAN's cursor
//! keeps Redis's guarantee). The change goes one way, as in Redis 7.0: a table never turns
//! back into an intset (only a value rebuilt from scratch starts small again: SPOP's
//! large-count path, the STORE commands, a dump being loaded).
//!
//! The interface the rest of the node relies on: `new`, `len`, `is_empty`, `insert`
//! (true when new), `for_each` (any order), `encoding`, `memory_usage`, `Clone`,
//! `PartialEq` (same members). Everything else is the set commands' business; no command
//! parsing here.

mod intset;
mod table;

use bytes::Bytes;

use super::{limits, parse_int};
use intset::IntSet;
use table::Table;

/// A set of binary-safe members. 24 bytes: a boxed slice of packed integers, or a boxed
/// table.
#[derive(Debug, Clone, Default)]
pub struct Set {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    Ints(IntSet),
    Table(Box<Table>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Ints(IntSet::default())
    }
}

/// One member as the set holds it: an intset's integer, or a table's bytes. An integer and
/// its decimal text are the same member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<'a> {
    /// An integer (the member is its decimal text).
    Int(i64),
    /// The member's bytes.
    Bytes(&'a [u8]),
}

impl Member<'_> {
    /// The member's bytes, owned (integers formatted in decimal).
    pub fn to_bytes(self) -> Bytes {
        match self {
            Member::Int(n) => Bytes::copy_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            Member::Bytes(b) => Bytes::copy_from_slice(b),
        }
    }

    /// Calls `f` on the member's bytes (integers formatted on the stack).
    pub fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Member::Int(n) => f(itoa::Buffer::new().format(n).as_bytes()),
            Member::Bytes(b) => f(b),
        }
    }
}

/// One SSCAN step's result: the next cursor (0 when done) and the members seen.
pub type ScanStep<'a> = (u64, Vec<Member<'a>>);

impl Set {
    /// An empty set (an intset, as Redis's `createIntsetObject`).
    pub fn new() -> Self {
        Set::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(i) => i.len(),
            Repr::Table(t) => t.len(),
        }
    }

    /// True without members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `member`; true when it was not there. A non-integer member, or one integer more
    /// than `set-max-intset-entries`, turns an intset into a table.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        self.insert_with(member, max_intset())
    }

    /// [`Set::insert`] for a member in either form.
    pub fn insert_member(&mut self, member: Member<'_>) -> bool {
        self.insert_member_with(member, max_intset())
    }

    /// [`Set::insert`] with the intset limit given (tests use small ones without touching
    /// the node-wide setting).
    fn insert_with(&mut self, member: &[u8], max: usize) -> bool {
        match &mut self.repr {
            Repr::Ints(ints) => match parse_int(member) {
                Some(n) => self.insert_int(n, max),
                None => {
                    let mut table = Table::with_capacity(ints.len() + 1);
                    fill(&mut table, ints);
                    let added = table.insert(member);
                    self.repr = Repr::Table(Box::new(table));
                    added
                }
            },
            Repr::Table(t) => t.insert(member),
        }
    }

    fn insert_member_with(&mut self, member: Member<'_>, max: usize) -> bool {
        match (member, &mut self.repr) {
            (Member::Int(n), Repr::Ints(_)) => self.insert_int(n, max),
            (Member::Int(n), Repr::Table(t)) => t.insert(itoa::Buffer::new().format(n).as_bytes()),
            (Member::Bytes(b), _) => self.insert_with(b, max),
        }
    }

    /// Whether `member` is in the set.
    pub fn contains(&self, member: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(ints) => parse_int(member).is_some_and(|n| ints.contains(n)),
            Repr::Table(t) => t.contains(member),
        }
    }

    /// [`Set::contains`] for a member in either form.
    pub fn contains_member(&self, member: Member<'_>) -> bool {
        match (member, &self.repr) {
            (Member::Int(n), Repr::Ints(ints)) => ints.contains(n),
            (Member::Int(n), Repr::Table(t)) => {
                t.contains(itoa::Buffer::new().format(n).as_bytes())
            }
            (Member::Bytes(b), _) => self.contains(b),
        }
    }

    /// Removes `member`; true when it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(ints) => parse_int(member).is_some_and(|n| ints.remove(n)),
            Repr::Table(t) => t.remove(member),
        }
    }

    /// [`Set::remove`] for a member in either form.
    pub fn remove_member(&mut self, member: Member<'_>) -> bool {
        match (member, &mut self.repr) {
            (Member::Int(n), Repr::Ints(ints)) => ints.remove(n),
            (Member::Int(n), Repr::Table(t)) => t.remove(itoa::Buffer::new().format(n).as_bytes()),
            (Member::Bytes(b), _) => self.remove(b),
        }
    }

    /// The member at `index` (0..len): ascending for an intset, no particular order for a
    /// table. Uniform random members are `get(random index)`.
    pub fn get(&self, index: usize) -> Option<Member<'_>> {
        match &self.repr {
            Repr::Ints(ints) => ints.get(index).map(Member::Int),
            Repr::Table(t) => t.get(index).map(Member::Bytes),
        }
    }

    /// Removes the member at `index` (as [`Set::get`] numbers them), if any.
    pub fn remove_at(&mut self, index: usize) {
        match &mut self.repr {
            Repr::Ints(ints) => ints.remove_at(index),
            Repr::Table(t) => t.remove_at(index),
        }
    }

    /// Keeps only the members `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(Member<'_>) -> bool) {
        // Backwards: removing index i moves only members at or after i (a table's last
        // node), which were already looked at.
        for i in (0..self.len()).rev() {
            if self.get(i).is_some_and(|m| !keep(m)) {
                self.remove_at(i);
            }
        }
    }

    /// The members: ascending for an intset, no particular order for a table.
    pub fn iter(&self) -> impl Iterator<Item = Member<'_>> + '_ {
        let (ints, table) = match &self.repr {
            Repr::Ints(i) => (Some(i.iter().map(Member::Int)), None),
            Repr::Table(t) => (None, Some(t.iter().map(Member::Bytes))),
        };
        ints.into_iter()
            .flatten()
            .chain(table.into_iter().flatten())
    }

    /// Calls `f` on every member's bytes (any order).
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        self.iter().for_each(|m| m.with_bytes(&mut f));
    }

    /// One SSCAN step from `cursor`, visiting buckets until `count` members are found or
    /// `count * 10` buckets were visited, as Redis's `scanGenericCommand` does. An intset
    /// answers everything at once with cursor 0, as in Redis. Every member present from the
    /// first call to the last is returned at least once, whatever the table does meanwhile.
    pub fn scan(&self, cursor: u64, count: usize) -> ScanStep<'_> {
        let table = match &self.repr {
            Repr::Ints(ints) => return (0, ints.iter().map(Member::Int).collect()),
            Repr::Table(t) => t,
        };
        let mut members = Vec::new();
        let mut cursor = cursor;
        let mut budget = count.saturating_mul(10);
        loop {
            cursor = table.scan(cursor, |m| members.push(Member::Bytes(m)));
            if cursor == 0 || budget == 0 || members.len() >= count {
                break;
            }
            budget -= 1;
        }
        (cursor, members)
    }

    /// `count` distinct random indexes (0..len, as [`Set::get`] numbers them), each subset
    /// equally likely, in random order; every index when `count >= len`.
    pub fn random_indexes(&self, count: usize) -> Vec<usize> {
        let len = self.len();
        if count >= len {
            return (0..len).collect();
        }
        if count.saturating_mul(3) > len {
            // A partial Fisher-Yates shuffle: O(len), fine when count is close to len.
            let mut all: Vec<usize> = (0..len).collect();
            for i in 0..count {
                let j = fastrand::usize(i..len);
                all.swap(i, j);
            }
            all.truncate(count);
            return all;
        }
        // Draw until `count` distinct indexes: at most a third of them are taken, so each
        // draw succeeds with probability >= 2/3.
        let mut seen = std::collections::HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let i = fastrand::usize(..len);
            if seen.insert(i) {
                out.push(i);
            }
        }
        out
    }

    /// A uniformly random member, or `None` for an empty set.
    pub fn random(&self) -> Option<Member<'_>> {
        match self.len() {
            0 => None,
            len => self.get(fastrand::usize(..len)),
        }
    }

    /// OBJECT ENCODING, by Redis 7.0's rules.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Ints(_) => "intset",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Approximate heap bytes (MEMORY USAGE).
    pub fn memory_usage(&self) -> usize {
        match &self.repr {
            Repr::Ints(ints) => ints.bytes(),
            Repr::Table(t) => std::mem::size_of::<Table>() + t.memory_usage(),
        }
    }

    fn insert_int(&mut self, n: i64, max: usize) -> bool {
        let Repr::Ints(ints) = &mut self.repr else {
            return self.insert_member_with(Member::Int(n), max);
        };
        if !ints.insert(n) {
            return false;
        }
        if ints.len() > max {
            let mut table = Table::with_capacity(ints.len());
            fill(&mut table, ints);
            self.repr = Repr::Table(Box::new(table));
        }
        true
    }
}

impl PartialEq for Set {
    fn eq(&self, other: &Set) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains_member(m))
    }
}

impl Eq for Set {}

/// `set-max-intset-entries`, capped at 2^30 as Redis caps it (intset internals).
fn max_intset() -> usize {
    limits::SET_MAX_INTSET_ENTRIES.count().min(1 << 30)
}

/// Copies an intset's members into `table`, as decimal text.
fn fill(table: &mut Table, ints: &IntSet) {
    for n in ints.iter() {
        table.insert(itoa::Buffer::new().format(n).as_bytes());
    }
}

#[cfg(test)]
mod tests;
