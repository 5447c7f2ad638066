//! The hash table of a big set: chained buckets over a power-of-two array, as Redis's `dict`,
//! so that SSCAN can use Redis's reverse-binary cursor and keep its guarantee.
//!
//! Why not hashbrown: SSCAN must return every member present for the whole scan at least
//! once, across calls, while the table grows and shrinks in between. Redis gets that from
//! chaining: a member's bucket is `hash & mask`, so the cursor (a bucket index whose bits are
//! incremented from the top, `dictScan`) visits, after a resize, exactly the buckets that
//! hold the members of the buckets not yet visited. An open-addressing table moves members
//! away from their home bucket, and an insertion-ordered vector with swap-remove moves the
//! last member to a position the cursor may have passed; both lose members.
//!
//! Layout: `nodes` holds the members densely (a removal moves the last node into the hole
//! and fixes the one link that pointed to it), so a uniformly random member is
//! `nodes[random index]` (SPOP, SRANDMEMBER), and `buckets` holds the index of each chain's
//! first node. A node is 24 bytes (the member's box, its hash, the next index) plus 4 bytes of
//! bucket per member at full load, against Redis's 24-byte `dictEntry` and 8-byte bucket.
//! Indexes are `u32`: 4 billion members would take hundreds of gigabytes.

use std::sync::LazyLock;

/// Marks an empty bucket or the end of a chain.
const NONE: u32 = u32::MAX;
/// The smallest bucket array (Redis's `DICT_HT_INITIAL_SIZE`).
const MIN_BUCKETS: usize = 4;

/// One process-wide seed: per-set hashers would cost 32 bytes a set, and members only need
/// to be hashed the same way within one process (dumps carry members, never hashes).
static HASHER: LazyLock<ahash::RandomState> = LazyLock::new(ahash::RandomState::new);

/// A set of byte strings in chained buckets.
#[derive(Debug, Clone)]
pub(super) struct Table {
    buckets: Vec<u32>,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
struct Node {
    member: Box<[u8]>,
    /// The member's hash, truncated: buckets never outnumber `u32` indexes.
    hash: u32,
    next: u32,
}

impl Table {
    /// An empty table with room for `capacity` members before it grows.
    pub(super) fn with_capacity(capacity: usize) -> Table {
        Table {
            buckets: vec![NONE; capacity.next_power_of_two().max(MIN_BUCKETS)],
            nodes: Vec::with_capacity(capacity),
        }
    }

    /// Number of members.
    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The member at `index` (0..len, no particular order).
    pub(super) fn get(&self, index: usize) -> Option<&[u8]> {
        self.nodes.get(index).map(|n| &*n.member)
    }

    /// The members, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.nodes.iter().map(|n| &*n.member)
    }

    /// Whether `member` is in the table.
    pub(super) fn contains(&self, member: &[u8]) -> bool {
        self.find(member, hash(member)).is_some()
    }

    /// Adds `member`; true when it was not there.
    pub(super) fn insert(&mut self, member: &[u8]) -> bool {
        let hash = hash(member);
        if self.find(member, hash).is_some() {
            return false;
        }
        // See the module docs: the index cannot overflow in any memory that exists.
        let Ok(index) = u32::try_from(self.nodes.len()) else {
            return false;
        };
        let bucket = self.bucket(hash);
        self.nodes.push(Node {
            member: member.into(),
            hash,
            next: self.buckets[bucket],
        });
        self.buckets[bucket] = index;
        // Redis grows when the members reach the buckets (load factor 1).
        if self.nodes.len() > self.buckets.len() {
            self.rehash(self.buckets.len() * 2);
        }
        true
    }

    /// Removes `member`; true when it was there.
    pub(super) fn remove(&mut self, member: &[u8]) -> bool {
        match self.find(member, hash(member)) {
            Some(index) => {
                self.remove_at(index as usize);
                true
            }
            None => false,
        }
    }

    /// Removes the member at `index`, if any: the last node moves into its place.
    pub(super) fn remove_at(&mut self, index: usize) {
        let Some(node) = self.nodes.get(index) else {
            return;
        };
        let (hash, next) = (node.hash, node.next);
        self.relink(hash, index as u32, next);
        let last = self.nodes.len() - 1;
        self.nodes.swap_remove(index);
        if index != last {
            // The node that was last now sits at `index`: repoint the link that named it.
            let moved = self.nodes[index].hash;
            self.relink(moved, last as u32, index as u32);
        }
        self.shrink_if_sparse();
    }

    /// One step of SSCAN: calls `f` on every member of the bucket `cursor` names and returns
    /// the next cursor (0 once every bucket was visited). Redis's `dictScan` for one table:
    /// the cursor's bits are incremented from the most significant masked bit down, so that
    /// after the table doubles or halves, the buckets still to visit are exactly those that
    /// hold the members of the buckets the old cursor had not reached.
    pub(super) fn scan<'a>(&'a self, cursor: u64, mut f: impl FnMut(&'a [u8])) -> u64 {
        let mask = (self.buckets.len() - 1) as u64;
        let mut at = self.buckets[(cursor & mask) as usize];
        while let Some(node) = self.nodes.get(at as usize) {
            f(&node.member);
            at = node.next;
        }
        let mut v = cursor | !mask;
        v = v.reverse_bits().wrapping_add(1).reverse_bits();
        v
    }

    /// Approximate heap bytes.
    pub(super) fn memory_usage(&self) -> usize {
        self.buckets.capacity() * 4
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.nodes.iter().map(|n| n.member.len()).sum::<usize>()
    }

    /// The bucket array's length (tests check the cursor across resizes).
    #[cfg(test)]
    pub(super) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    fn bucket(&self, hash: u32) -> usize {
        hash as usize & (self.buckets.len() - 1)
    }

    fn find(&self, member: &[u8], hash: u32) -> Option<u32> {
        let mut at = self.buckets[self.bucket(hash)];
        while let Some(node) = self.nodes.get(at as usize) {
            if node.hash == hash && *node.member == *member {
                return Some(at);
            }
            at = node.next;
        }
        None
    }

    /// In the chain of `hash`'s bucket, makes the link that points to `from` point to `to`.
    fn relink(&mut self, hash: u32, from: u32, to: u32) {
        let bucket = self.bucket(hash);
        if self.buckets[bucket] == from {
            self.buckets[bucket] = to;
            return;
        }
        let mut at = self.buckets[bucket];
        while let Some(node) = self.nodes.get_mut(at as usize) {
            if node.next == from {
                node.next = to;
                return;
            }
            at = node.next;
        }
    }

    /// Shrinks the buckets below 10% load (Redis's `htNeedsResize`) and the nodes' spare
    /// capacity beyond 3/4 empty.
    fn shrink_if_sparse(&mut self) {
        let len = self.nodes.len();
        if self.buckets.len() > MIN_BUCKETS && len * 10 < self.buckets.len() {
            self.rehash(len.next_power_of_two().max(MIN_BUCKETS));
        }
        if self.nodes.capacity() > 16 && self.nodes.capacity() / 4 > len {
            self.nodes.shrink_to(len * 2);
        }
    }

    /// Rebuilds the chains over `size` buckets (a power of two).
    fn rehash(&mut self, size: usize) {
        self.buckets.clear();
        self.buckets.resize(size, NONE);
        self.buckets.shrink_to_fit();
        let mask = size - 1;
        for (index, node) in self.nodes.iter_mut().enumerate() {
            let bucket = node.hash as usize & mask;
            node.next = self.buckets[bucket];
            self.buckets[bucket] = index as u32;
        }
    }
}

/// The member's hash, truncated to the bits a bucket index can use.
fn hash(member: &[u8]) -> u32 {
    HASHER.hash_one(member) as u32
}
