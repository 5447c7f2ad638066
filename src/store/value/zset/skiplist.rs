//! The large encoding (Redis's `skiplist`): a skip list with spans, so that rank and
//! select-by-rank take O(log n) as in Redis's `t_zset.c`, plus a hash index from member to
//! node.
//!
//! Safe Rust without pointers: the nodes live in one `Vec` arena and link to each other by
//! `u32` index; node 0 is the header (it never holds a member, so index 0 doubles as "none"
//! in `forward` and `backward`). Freed slots are reused. The index is a `HashTable` of node
//! indices hashed by the node's member, so each member is stored once (as Redis shares one
//! sds between its dict and skip list). Most nodes have one level (p = 1/4): the first level
//! is kept inline, higher ones in a boxed slice that is empty (unallocated) for them.

use hashbrown::HashTable;

use super::before;

/// Redis's `ZSKIPLIST_MAXLEVEL`.
const MAX_LEVEL: usize = 32;
/// The header's index, and "no node".
const NIL: u32 = 0;

#[derive(Debug, Clone, Copy, Default)]
struct Level {
    forward: u32,
    span: u32,
}

#[derive(Debug, Clone)]
struct Node {
    member: Box<[u8]>,
    score: f64,
    backward: u32,
    level0: Level,
    upper: Box<[Level]>,
}

impl Node {
    fn height(&self) -> usize {
        1 + self.upper.len()
    }

    fn lv(&self, i: usize) -> Level {
        if i == 0 {
            self.level0
        } else {
            self.upper[i - 1]
        }
    }

    fn lv_mut(&mut self, i: usize) -> &mut Level {
        if i == 0 {
            &mut self.level0
        } else {
            &mut self.upper[i - 1]
        }
    }
}

/// Members ordered by (score, member) with O(log n) rank, and O(1) lookup by member.
#[derive(Debug, Clone)]
pub(super) struct Skiplist {
    nodes: Vec<Node>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    tail: u32,
    len: usize,
    level: usize,
}

impl Skiplist {
    /// An empty list.
    pub fn new() -> Self {
        let header = Node {
            member: Box::default(),
            score: 0.0,
            backward: NIL,
            level0: Level::default(),
            upper: vec![Level::default(); MAX_LEVEL - 1].into_boxed_slice(),
        };
        Skiplist {
            nodes: vec![header],
            free: Vec::new(),
            index: HashTable::new(),
            hasher: ahash::RandomState::new(),
            tail: NIL,
            len: 0,
            level: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn node(&self, x: u32) -> &Node {
        // Indices only come from the list's own links and index (an internal invariant).
        &self.nodes[x as usize]
    }

    fn node_mut(&mut self, x: u32) -> &mut Node {
        &mut self.nodes[x as usize]
    }

    fn find(&self, member: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(member);
        let nodes = &self.nodes;
        self.index
            .find(hash, |&i| &*nodes[i as usize].member == member)
            .copied()
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member).map(|x| self.node(x).score)
    }

    /// Sets `member`'s score; true when it is new.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        if let Some(x) = self.find(member) {
            if self.node(x).score != score {
                self.unlink(x);
                self.node_mut(x).score = score;
                self.link(x);
            }
            return false;
        }
        let height = random_level();
        let node = Node {
            member: member.into(),
            score,
            backward: NIL,
            level0: Level::default(),
            upper: vec![Level::default(); height - 1].into_boxed_slice(),
        };
        let x = match self.free.pop() {
            Some(x) => {
                self.nodes[x as usize] = node;
                x
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let hash = self.hasher.hash_one(member);
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        self.index
            .insert_unique(hash, x, |&i| hasher.hash_one(&nodes[i as usize].member));
        self.link(x);
        true
    }

    /// Removes `member`; its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let hash = self.hasher.hash_one(member);
        let nodes = &self.nodes;
        let entry = self
            .index
            .find_entry(hash, |&i| &*nodes[i as usize].member == member)
            .ok()?;
        let (x, _) = entry.remove();
        self.unlink(x);
        let node = self.node_mut(x);
        node.member = Box::default();
        node.upper = Box::default();
        let score = node.score;
        self.free.push(x);
        if self.len == 0 {
            // Give the arena back once empty (a popped-out set about to be deleted anyway).
            self.nodes.truncate(1);
            self.free.clear();
        }
        Some(score)
    }

    /// Predecessors of (score, member) at every level, and their ranks.
    fn search(&self, score: f64, member: &[u8]) -> ([u32; MAX_LEVEL], [usize; MAX_LEVEL]) {
        let mut update = [NIL; MAX_LEVEL];
        let mut rank = [0usize; MAX_LEVEL];
        let mut x = NIL;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let l = self.node(x).lv(i);
                if l.forward == NIL {
                    break;
                }
                let f = self.node(l.forward);
                if !before(f.score, &f.member, score, member) {
                    break;
                }
                rank[i] += l.span as usize;
                x = l.forward;
            }
            update[i] = x;
        }
        (update, rank)
    }

    /// Links the allocated node `x` in at the place of its (score, member) (`zslInsert`).
    fn link(&mut self, x: u32) {
        let (score, height) = (self.node(x).score, self.node(x).height());
        let (mut update, mut rank) = self.search(score, &self.node(x).member);
        if height > self.level {
            for i in self.level..height {
                rank[i] = 0;
                update[i] = NIL;
                self.node_mut(NIL).lv_mut(i).span = self.len as u32;
            }
            self.level = height;
        }
        for i in 0..height {
            let u = self.node(update[i]).lv(i);
            let gap = (rank[0] - rank[i]) as u32;
            *self.node_mut(x).lv_mut(i) = Level {
                forward: u.forward,
                span: u.span - gap,
            };
            *self.node_mut(update[i]).lv_mut(i) = Level {
                forward: x,
                span: gap + 1,
            };
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(height) {
            self.node_mut(u).lv_mut(i).span += 1;
        }
        self.node_mut(x).backward = update[0];
        let next = self.node(x).level0.forward;
        if next == NIL {
            self.tail = x;
        } else {
            self.node_mut(next).backward = x;
        }
        self.len += 1;
    }

    /// Unlinks node `x` from the list (`zslDeleteNode`); its slot stays allocated.
    fn unlink(&mut self, x: u32) {
        let (update, _) = self.search(self.node(x).score, &self.node(x).member);
        for (i, &u) in update.iter().enumerate().take(self.level) {
            let ul = self.node(u).lv(i);
            if ul.forward == x {
                let xl = self.node(x).lv(i);
                *self.node_mut(u).lv_mut(i) = Level {
                    forward: xl.forward,
                    span: ul.span + xl.span - 1,
                };
            } else {
                self.node_mut(u).lv_mut(i).span = ul.span.saturating_sub(1);
            }
        }
        let (next, back) = (self.node(x).level0.forward, self.node(x).backward);
        if next == NIL {
            self.tail = back;
        } else {
            self.node_mut(next).backward = back;
        }
        while self.level > 1 && self.node(NIL).lv(self.level - 1).forward == NIL {
            self.level -= 1;
        }
        self.len -= 1;
    }

    /// The 0-based rank of `member`, with its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        let score = self.score(member)?;
        let mut rank = 0usize;
        let mut x = NIL;
        for i in (0..self.level).rev() {
            loop {
                let l = self.node(x).lv(i);
                if l.forward == NIL {
                    break;
                }
                let f = self.node(l.forward);
                if !(f.score < score || (f.score == score && *f.member <= *member)) {
                    break;
                }
                rank += l.span as usize;
                x = l.forward;
            }
            if x != NIL && *self.node(x).member == *member {
                return Some((rank - 1, score));
            }
        }
        None
    }

    /// How many leading members satisfy `pred` (which holds for a prefix of the order).
    pub fn partition_point(&self, mut pred: impl FnMut(&[u8], f64) -> bool) -> usize {
        let mut rank = 0usize;
        let mut x = NIL;
        for i in (0..self.level).rev() {
            loop {
                let l = self.node(x).lv(i);
                if l.forward == NIL {
                    break;
                }
                let f = self.node(l.forward);
                if !pred(&f.member, f.score) {
                    break;
                }
                rank += l.span as usize;
                x = l.forward;
            }
        }
        rank
    }

    /// The node at 0-based `rank` (`zslGetElementByRank`), `NIL` past the end.
    fn at(&self, rank: usize) -> u32 {
        let target = rank + 1;
        let mut traversed = 0usize;
        let mut x = NIL;
        for i in (0..self.level).rev() {
            loop {
                let l = self.node(x).lv(i);
                if l.forward == NIL || traversed + l.span as usize > target {
                    break;
                }
                traversed += l.span as usize;
                x = l.forward;
            }
            if traversed == target {
                return x;
            }
        }
        NIL
    }

    /// The member and score at 0-based `rank`.
    pub fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        match self.at(rank) {
            NIL => None,
            x => Some((&self.node(x).member, self.node(x).score)),
        }
    }

    /// Calls `f` on the members of ranks `start..end`, ascending, or descending with `rev`.
    pub fn range(&self, start: usize, end: usize, rev: bool, mut f: impl FnMut(&[u8], f64)) {
        let end = end.min(self.len);
        if start >= end {
            return;
        }
        let mut x = if rev {
            self.at(end - 1)
        } else {
            self.at(start)
        };
        for _ in start..end {
            if x == NIL {
                return;
            }
            let n = self.node(x);
            f(&n.member, n.score);
            x = if rev { n.backward } else { n.level0.forward };
        }
    }

    /// The members' hashes (ZSCAN's cursor space), in list order.
    pub fn hashes<'a>(&'a self, mut f: impl FnMut(u64, &'a [u8], f64)) {
        let mut x = self.node(NIL).level0.forward;
        while x != NIL {
            let n = self.node(x);
            f(self.hasher.hash_one(&*n.member), &n.member, n.score);
            x = n.level0.forward;
        }
    }

    /// Approximate heap bytes.
    pub fn memory_usage(&self) -> usize {
        let node = std::mem::size_of::<Node>();
        let mut total = self.nodes.capacity() * node + self.index.capacity() * 5;
        let mut x = self.node(NIL).level0.forward;
        while x != NIL {
            let n = self.node(x);
            total += n.member.len() + n.upper.len() * std::mem::size_of::<Level>();
            x = n.level0.forward;
        }
        total
    }
}

/// Redis's `zslRandomLevel`: each further level with probability 1/4.
fn random_level() -> usize {
    let mut level = 1;
    while level < MAX_LEVEL && fastrand::u32(..) & 0xFFFF < 0x4000 {
        level += 1;
    }
    level
}
