//! Redis's list type, as Redis 7.0 stores it: a quicklist, a deque of packed nodes.
//!
//! The interface the rest of the node relies on (the store, dumps, snapshots, MEMORY USAGE):
//! `new`, `len`, `is_empty`, `push_back`, `push_front`, `for_each` (front to back),
//! `encoding`, `memory_usage`, `Clone`, `PartialEq` (same items in the same order).
//! Everything else is the list commands' business.
//!
//! Each node (`node`) is one buffer of packed entries (a few bytes of header per element,
//! integers stored as integers), bounded by `list-max-listpack-size` as Redis's listpack
//! nodes are: -1..-5 = 4..64 KB per node (-2, 8 KB, by default), a positive value = that many
//! entries per node (and at most 8 KB, Redis's safety limit). A million 3-byte items take
//! about 5 MB this way, where a `VecDeque<Bytes>` would take over 40.
//!
//! Costs: push and pop at either end O(1) (amortised); LINDEX, LSET and the start of an
//! LRANGE walk whole nodes by their counts, then entries inside one node (O(nodes + node
//! size)); LINSERT, LREM and LTRIM rewrite only the nodes they touch.

mod node;

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;

use super::limits;
use node::{entry_at, entry_before, entry_len, Encoded, Node};

pub use node::Item;

/// A list of binary-safe items.
#[derive(Clone, Default)]
pub struct List {
    /// Boxed: a key's value stays small whatever the list holds.
    q: Box<Quick>,
}

#[derive(Clone, Default)]
struct Quick {
    nodes: VecDeque<Node>,
    len: usize,
}

/// Items copied out of a list in their packed form: one buffer, filled with a few `memcpy`s
/// while the shard is locked, and turned into byte strings (slices of that one buffer) after
/// the lock is released.
#[derive(Debug, Clone)]
pub struct Copied {
    raw: Vec<u8>,
    count: usize,
}

impl List {
    /// An empty list.
    pub fn new() -> Self {
        List::default()
    }

    /// Number of items.
    #[inline]
    pub fn len(&self) -> usize {
        self.q.len
    }

    /// True without items (a key never holds an empty list).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.q.len == 0
    }

    /// Appends `item` at the tail.
    pub fn push_back(&mut self, item: &[u8]) {
        let e = Encoded::new(item);
        let fill = Fill::current();
        let q = &mut *self.q;
        let single = q.nodes.len() == 1;
        match q.nodes.back_mut() {
            Some(last) if fill.allows(last, e.len()) => last.push_back(&e, fill.bytes, single),
            last => {
                if let Some(last) = last {
                    last.shrink();
                }
                q.nodes
                    .push_back(Node::with_entry(&e, fill.room(e.len()), false));
            }
        }
        q.len += 1;
    }

    /// Inserts `item` at the head.
    pub fn push_front(&mut self, item: &[u8]) {
        let e = Encoded::new(item);
        let fill = Fill::current();
        let q = &mut *self.q;
        let single = q.nodes.len() == 1;
        match q.nodes.front_mut() {
            Some(first) if fill.allows(first, e.len()) => first.push_front(&e, fill.bytes, single),
            first => {
                if let Some(first) = first {
                    first.shrink();
                }
                q.nodes
                    .push_front(Node::with_entry(&e, fill.room(e.len()), true));
            }
        }
        q.len += 1;
    }

    /// Removes and returns the head item.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        let first = self.q.nodes.front()?;
        let item = to_bytes(first.entry(first.first()?)?.item);
        self.remove_front(1);
        Some(item)
    }

    /// Removes and returns the tail item.
    pub fn pop_back(&mut self) -> Option<Bytes> {
        let last = self.q.nodes.back()?;
        let item = to_bytes(last.entry(last.last()?)?.item);
        self.remove_back(1);
        Some(item)
    }

    /// Removes the first `n` items (all of them if fewer).
    pub fn remove_front(&mut self, mut n: usize) {
        let q = &mut *self.q;
        while n > 0 {
            let Some(first) = q.nodes.front_mut() else {
                break;
            };
            let gone = first.pop_front_n(n);
            n -= gone;
            q.len -= gone;
            if first.count() == 0 {
                q.nodes.pop_front();
            } else if gone == 0 {
                break;
            }
        }
    }

    /// Removes the last `n` items (all of them if fewer).
    pub fn remove_back(&mut self, mut n: usize) {
        let q = &mut *self.q;
        while n > 0 {
            let Some(last) = q.nodes.back_mut() else {
                break;
            };
            let gone = last.pop_back_n(n);
            n -= gone;
            q.len -= gone;
            if last.count() == 0 {
                q.nodes.pop_back();
            } else if gone == 0 {
                break;
            }
        }
    }

    /// The item at `index` (0 is the head, -1 the tail), as LINDEX takes it.
    pub fn get(&self, index: i64) -> Option<Item<'_>> {
        let (n, at, _) = self.q.locate(self.q.absolute(index)?)?;
        Some(self.q.nodes[n].entry(at)?.item)
    }

    /// Replaces the item at `index` (negative from the tail); false when out of range.
    pub fn set(&mut self, index: i64, item: &[u8]) -> bool {
        let Some(i) = self.q.absolute(index) else {
            return false;
        };
        let Some((mut n, mut at, local)) = self.q.locate(i) else {
            return false;
        };
        let e = Encoded::new(item);
        let fill = Fill::current();
        let q = &mut *self.q;
        let Some(old) = q.nodes[n].entry(at).map(|x| x.len) else {
            return false;
        };
        let node = &q.nodes[n];
        let fits = node.count() == 1 || node.used() - old + e.len() <= fill.bytes;
        if !fits {
            // Too big for its node: give the new item a node of its own, between the
            // entries before it and those after it.
            if local > 0 {
                let tail = q.nodes[n].split_off(at, local);
                q.nodes.insert(n + 1, tail);
                n += 1;
            }
            if q.nodes[n].count() > 1 {
                let Some(next) = q.nodes[n].next(q.nodes[n].first().unwrap_or(0)) else {
                    return false;
                };
                let tail = q.nodes[n].split_off(next, 1);
                q.nodes.insert(n + 1, tail);
            }
            let Some(first) = q.nodes[n].first() else {
                return false;
            };
            at = first;
        }
        q.nodes[n].replace(at, old, &e, fill.bytes);
        true
    }

    /// Inserts `item` before (or `after`) the first item equal to `pivot`, walking from the
    /// head; false when no item equals `pivot`.
    pub fn insert(&mut self, pivot: &[u8], item: &[u8], after: bool) -> bool {
        let pattern = Encoded::new(pivot);
        let Some((n, at, local)) = self.q.find_first(&pattern) else {
            return false;
        };
        let e = Encoded::new(item);
        let fill = Fill::current();
        let q = &mut *self.q;
        q.len += 1;
        let (at, local) = if after {
            let len = q.nodes[n].entry(at).map_or(0, |x| x.len);
            (at + len, local + 1)
        } else {
            (at, local)
        };
        let count = q.nodes[n].count();
        if fill.allows(&q.nodes[n], e.len()) {
            q.nodes[n].insert(at, &e, fill.bytes);
            return true;
        }
        // The node is full: use a neighbour when inserting at the node's edge and it has
        // room, else split the node at the insertion point.
        if local == 0 {
            match n.checked_sub(1) {
                Some(p) if fill.allows(&q.nodes[p], e.len()) => {
                    q.nodes[p].push_back(&e, fill.bytes, false)
                }
                _ => q.nodes.insert(n, Node::with_entry(&e, 0, false)),
            }
        } else if local == count {
            match q.nodes.get_mut(n + 1) {
                Some(next) if fill.allows(next, e.len()) => next.push_front(&e, fill.bytes, false),
                _ => q.nodes.insert(n + 1, Node::with_entry(&e, 0, false)),
            }
        } else {
            let tail = q.nodes[n].split_off(at, local);
            q.nodes.insert(n + 1, tail);
            if fill.allows(&q.nodes[n], e.len()) {
                q.nodes[n].push_back(&e, fill.bytes, false);
            } else if fill.allows(&q.nodes[n + 1], e.len()) {
                q.nodes[n + 1].push_front(&e, fill.bytes, false);
            } else {
                q.nodes.insert(n + 1, Node::with_entry(&e, 0, false));
            }
        }
        true
    }

    /// Removes items equal to `item`: the first `count` from the head for `count > 0`, the
    /// last `-count` for `count < 0`, all for 0 (LREM). Returns how many went.
    pub fn remove(&mut self, item: &[u8], count: i64) -> usize {
        let pattern = Encoded::new(item);
        let limit = match count.unsigned_abs() {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let from_tail = count < 0;
        let q = &mut *self.q;
        let mut removed = 0;
        let order: Vec<usize> = if from_tail {
            (0..q.nodes.len()).rev().collect()
        } else {
            (0..q.nodes.len()).collect()
        };
        for n in order {
            if removed == limit {
                break;
            }
            let node = &q.nodes[n];
            // The local indexes of the matches this node gives up, in walking order.
            let mut hits = Vec::new();
            let mut at = node.first();
            let mut i = 0;
            while let Some(p) = at {
                if node.entry(p).is_some_and(|e| pattern.matches(e.content)) {
                    hits.push(i);
                }
                i += 1;
                at = node.next(p);
            }
            if hits.is_empty() {
                continue;
            }
            let take = hits.len().min(limit - removed);
            let hits = if from_tail {
                &hits[hits.len() - take..]
            } else {
                &hits[..take]
            };
            let gone = q.nodes[n].retain(|i| hits.binary_search(&i).is_err());
            removed += gone;
            q.len -= gone;
        }
        if removed > 0 {
            q.nodes.retain(|n| n.count() > 0);
            q.merge_small(Fill::current());
        }
        removed
    }

    /// Copies `count` items from index `start` (clamped to the list) in packed form.
    pub fn copy_range(&self, start: usize, count: usize) -> Copied {
        let mut copied = Copied {
            raw: Vec::new(),
            count: 0,
        };
        let Some((mut n, at, mut local)) = self.q.locate(start) else {
            return copied;
        };
        let want = count.min(self.q.len - start);
        let mut skip = self.q.nodes[n].first().map_or(0, |first| at - first);
        while copied.count < want {
            let Some(node) = self.q.nodes.get(n) else {
                break;
            };
            let bytes = node.bytes().get(skip..).unwrap_or_default();
            let room = node.count() - local;
            let left = want - copied.count;
            if left >= room {
                copied.raw.extend_from_slice(bytes);
                copied.count += room;
            } else {
                // The range ends inside this node: find where.
                let mut end = 0;
                for _ in 0..left {
                    match entry_len(bytes, end) {
                        Some(len) => end += len,
                        None => break,
                    }
                }
                copied.raw.extend_from_slice(&bytes[..end]);
                copied.count = want;
            }
            skip = 0;
            local = 0;
            n += 1;
        }
        copied
    }

    /// The head-based indexes of the items equal to `item`, walking from the head (or from
    /// the tail when `from_tail`) and looking at no more than `maxlen` items (0: all).
    pub fn positions<'a>(
        &'a self,
        item: &'a [u8],
        from_tail: bool,
        maxlen: usize,
    ) -> impl Iterator<Item = usize> + 'a {
        let pattern = Encoded::new(item);
        let limit = if maxlen == 0 { usize::MAX } else { maxlen };
        let len = self.len();
        let walk: Box<dyn Iterator<Item = Item<'a>> + 'a> = if from_tail {
            Box::new(self.iter_rev())
        } else {
            Box::new(self.iter())
        };
        walk.take(limit)
            .enumerate()
            .filter(move |(_, it)| matches_item(&pattern, *it))
            .map(move |(i, _)| if from_tail { len - 1 - i } else { i })
    }

    /// The items, head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Item<'_>> + '_ {
        self.q.nodes.iter().flat_map(node_items)
    }

    /// The items, tail to head.
    pub fn iter_rev(&self) -> impl Iterator<Item = Item<'_>> + '_ {
        self.q.nodes.iter().rev().flat_map(|n| node_items(n).rev())
    }

    /// Calls `f` on every item, head to tail.
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        self.iter().for_each(|item| item.with_bytes(&mut f));
    }

    /// OBJECT ENCODING: Redis 7.0 reports every list as a quicklist.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Approximate heap bytes (MEMORY USAGE): the nodes' buffers and the node deque.
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Quick>()
            + self.q.nodes.capacity() * std::mem::size_of::<Node>()
            + self.q.nodes.iter().map(Node::capacity).sum::<usize>()
    }

    /// Number of nodes (tests and DEBUG-style introspection).
    #[cfg(test)]
    fn node_count(&self) -> usize {
        self.q.nodes.len()
    }
}

impl Quick {
    /// The head-based index of `index` (negative from the tail), if inside the list.
    fn absolute(&self, index: i64) -> Option<usize> {
        let i = if index < 0 {
            i64::try_from(self.len).ok()?.checked_add(index)?
        } else {
            index
        };
        usize::try_from(i).ok().filter(|&i| i < self.len)
    }

    /// (node, offset in the node, index in the node) of item `i`, walking the nodes from
    /// the nearer end.
    fn locate(&self, i: usize) -> Option<(usize, usize, usize)> {
        if i >= self.len {
            return None;
        }
        let (n, local) = if i < self.len / 2 {
            let mut skip = i;
            let mut n = 0;
            loop {
                let count = self.nodes.get(n)?.count();
                if skip < count {
                    break (n, skip);
                }
                skip -= count;
                n += 1;
            }
        } else {
            let mut from_end = self.len - 1 - i;
            let mut n = self.nodes.len().checked_sub(1)?;
            loop {
                let count = self.nodes.get(n)?.count();
                if from_end < count {
                    break (n, count - 1 - from_end);
                }
                from_end -= count;
                n = n.checked_sub(1)?;
            }
        };
        Some((n, self.nodes[n].offset_of(local)?, local))
    }

    /// (node, offset, index in the node) of the first item matching `pattern`.
    fn find_first(&self, pattern: &Encoded<'_>) -> Option<(usize, usize, usize)> {
        for (n, node) in self.nodes.iter().enumerate() {
            let mut at = node.first();
            let mut i = 0;
            while let Some(p) = at {
                if node.entry(p).is_some_and(|e| pattern.matches(e.content)) {
                    return Some((n, p, i));
                }
                i += 1;
                at = node.next(p);
            }
        }
        None
    }

    /// Merges neighbouring nodes that fit together (after LREM emptied parts of them).
    fn merge_small(&mut self, fill: Fill) {
        let mut n = 0;
        while n + 1 < self.nodes.len() {
            let (a, b) = (&self.nodes[n], &self.nodes[n + 1]);
            if a.used() + b.used() <= fill.bytes / 2 && a.count() + b.count() <= fill.entries {
                let b = self.nodes.remove(n + 1).unwrap_or_default();
                self.nodes[n].append(&b);
            } else {
                n += 1;
            }
        }
    }
}

/// The node size rules of `list-max-listpack-size`, read once per operation.
#[derive(Debug, Clone, Copy)]
struct Fill {
    /// Most bytes of entries in a node.
    bytes: usize,
    /// Most entries in a node.
    entries: usize,
}

impl Fill {
    fn current() -> Fill {
        match limits::list_node_bytes() {
            Some(bytes) => Fill {
                bytes,
                entries: usize::MAX,
            },
            None => Fill {
                bytes: SIZE_SAFETY_LIMIT,
                entries: limits::LIST_MAX_LISTPACK_SIZE.count(),
            },
        }
    }

    /// Whether `node` takes one more entry of `len` bytes (an empty node takes anything).
    #[inline]
    fn allows(self, node: &Node, len: usize) -> bool {
        node.count() == 0 || (node.used() + len <= self.bytes && node.count() < self.entries)
    }

    /// Spare room a new node starts with: a small buffer, grown by doubling.
    fn room(self, len: usize) -> usize {
        if self.entries <= 1 || len >= self.bytes {
            0
        } else {
            (len * 4).clamp(32, self.bytes) - len.min(32)
        }
    }
}

/// The most bytes a node limited by entry count may hold (Redis's `SIZE_SAFETY_LIMIT`).
const SIZE_SAFETY_LIMIT: usize = 8192;

/// The items of one node, both ways.
fn node_items(node: &Node) -> NodeItems<'_> {
    NodeItems {
        node,
        front: node.first(),
        back: node.last(),
        left: node.count(),
    }
}

/// A double-ended walk over one node's entries.
struct NodeItems<'a> {
    node: &'a Node,
    front: Option<usize>,
    back: Option<usize>,
    left: usize,
}

impl<'a> Iterator for NodeItems<'a> {
    type Item = Item<'a>;

    #[inline]
    fn next(&mut self) -> Option<Item<'a>> {
        if self.left == 0 {
            return None;
        }
        let at = self.front?;
        let e = self.node.entry(at)?;
        self.left -= 1;
        self.front = Some(at + e.len);
        Some(e.item)
    }
}

impl DoubleEndedIterator for NodeItems<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let at = self.back?;
        let e = self.node.entry(at)?;
        self.left -= 1;
        self.back = self.node.prev(at);
        Some(e.item)
    }
}

fn matches_item(pattern: &Encoded<'_>, item: Item<'_>) -> bool {
    match item {
        Item::Str(s) => pattern.matches_str(s),
        Item::Int(n) => pattern.matches_int(n),
    }
}

fn to_bytes(item: Item<'_>) -> Bytes {
    match item {
        Item::Str(s) => Bytes::copy_from_slice(s),
        Item::Int(n) => Bytes::copy_from_slice(itoa::Buffer::new().format(n).as_bytes()),
    }
}

impl Copied {
    /// Number of items copied.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when nothing was copied.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The items as byte strings (string items are slices of one shared buffer), in list
    /// order or `reverse`d.
    pub fn into_items(self, reverse: bool) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(self.count);
        self.for_each_item(reverse, |b| out.push(b));
        out
    }

    /// The size of the copy in bytes: about the total length of the items as text.
    pub fn bytes(&self) -> usize {
        self.raw.len()
    }

    /// Calls `f` with each item's bytes in list order, integers formatted as decimal text;
    /// borrowed, so nothing is allocated or counted per item.
    pub fn for_each_slice(&self, mut f: impl FnMut(&[u8])) {
        let mut at = 0;
        while at < self.raw.len() {
            let Some(e) = entry_at(&self.raw, at) else {
                break;
            };
            match e.item {
                Item::Str(s) => f(s),
                Item::Int(n) => f(itoa::Buffer::new().format(n).as_bytes()),
            }
            at += e.len;
        }
    }

    /// Calls `f` with each item as a byte string (string items are slices of one shared
    /// buffer), in list order or `reverse`d.
    pub fn for_each_item(self, reverse: bool, mut f: impl FnMut(Bytes)) {
        let raw = Bytes::from(self.raw);
        let mut one = |at: usize| -> Option<usize> {
            let e = entry_at(&raw, at)?;
            f(match e.item {
                Item::Str(s) => {
                    let from = at + (e.content.len() - s.len());
                    raw.slice(from..from + s.len())
                }
                Item::Int(n) => to_bytes(Item::Int(n)),
            });
            Some(e.len)
        };
        if reverse {
            let mut end = raw.len();
            while let Some(at) = entry_before(&raw, end) {
                if one(at).is_none() {
                    break;
                }
                end = at;
            }
        } else {
            let mut at = 0;
            while at < raw.len() {
                match one(at) {
                    Some(len) => at += len,
                    None => break,
                }
            }
        }
    }
}

impl PartialEq for List {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for List {}

impl fmt::Debug for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|i| String::from_utf8_lossy(&i.to_vec()).into_owned()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests;
