//! Redis's sorted set type, in Redis 7.0's two encodings: `listpack` (`packed`: one buffer
//! of members and scores in order) while it has at most `zset-max-listpack-entries` members
//! of at most `zset-max-listpack-value` bytes, then `skiplist` (`skiplist`: a skip list with
//! spans plus a member index). Conversion goes one way, as in Redis: a set that grew big
//! stays big; only a set built afresh (a STORE command's result, a loaded dump) starts small.
//!
//! The interface the rest of the node relies on: `new`, `len`, `is_empty`, `insert`
//! (member, score; true when new), `for_each` (member, score, in ascending (score, member)
//! order), `encoding`, `memory_usage`, `Clone`, `PartialEq` (same members and scores).
//! Scores are never NaN. The rest (ranks, ranges, pops, scans) serves the sorted-set
//! commands; this module knows nothing of arguments or replies.

mod packed;
mod skiplist;

use super::limits;
use skiplist::Skiplist;

/// Members with scores, ordered by (score, member). 24 bytes.
#[derive(Debug, Clone)]
pub struct ZSet(Repr);

#[derive(Debug, Clone)]
enum Repr {
    /// The listpack encoding (see `packed`).
    Packed(Box<[u8]>),
    /// The skiplist encoding.
    Big(Box<Skiplist>),
}

use Repr::{Big, Packed};

impl Default for ZSet {
    fn default() -> Self {
        ZSet(Packed(packed::empty()))
    }
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let mut mine = Vec::with_capacity(self.len());
        self.for_each(|m, s| mine.push((m.to_vec(), s)));
        let mut at = 0;
        let mut same = true;
        other.for_each(|m, s| {
            same &= mine.get(at).is_some_and(|(mm, ss)| mm == m && *ss == s);
            at += 1;
        });
        same
    }
}
impl Eq for ZSet {}

/// Whether (score `a`, member `am`) sorts before (`b`, `bm`): Redis's order (scores by
/// `<`, so `-0` and `0` tie; then members bytewise).
pub(crate) fn before(a: f64, am: &[u8], b: f64, bm: &[u8]) -> bool {
    a < b || (a == b && am < bm)
}

impl ZSet {
    /// An empty sorted set (a first member too big for a listpack converts it at once).
    pub fn new() -> Self {
        ZSet::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.0 {
            Packed(buf) => packed::len(buf),
            Big(list) => list.len(),
        }
    }

    /// True without members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.0 {
            Packed(buf) => packed::find(buf, member).map(|e| e.score),
            Big(list) => list.score(member),
        }
    }

    /// Sets `member`'s score; true when the member is new. Converts to the skiplist encoding
    /// first when a new member would break the listpack limits (Redis's `zsetAdd`).
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        if let Packed(buf) = &mut self.0 {
            match packed::find(buf, member) {
                Some(e) if e.score == score => return false,
                Some(e) => {
                    let without = packed::remove_span(buf, e.start, e.end);
                    *buf = packed::insert(&without, member, score);
                    return false;
                }
                None if packed::len(buf) < limits::ZSET_MAX_LISTPACK_ENTRIES.count()
                    && member.len() <= limits::ZSET_MAX_LISTPACK_VALUE.count() =>
                {
                    *buf = packed::insert(buf, member, score);
                    return true;
                }
                None => self.convert(),
            }
        }
        match &mut self.0 {
            Big(list) => list.insert(member, score),
            Packed(_) => false,
        }
    }

    /// Removes `member`; true when it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.0 {
            Packed(buf) => match packed::find(buf, member) {
                Some(e) => {
                    *buf = packed::remove_span(buf, e.start, e.end);
                    true
                }
                None => false,
            },
            Big(list) => list.remove(member).is_some(),
        }
    }

    /// The 0-based rank of `member` in ascending order, with its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        match &self.0 {
            Packed(buf) => packed::iter(buf)
                .enumerate()
                .find(|(_, e)| e.member == member)
                .map(|(i, e)| (i, e.score)),
            Big(list) => list.rank(member),
        }
    }

    /// How many leading members (in ascending order) satisfy `pred`, which must hold for a
    /// prefix of the order (e.g. "score below min"): the rank where a range starts or ends.
    pub fn partition_point(&self, mut pred: impl FnMut(&[u8], f64) -> bool) -> usize {
        match &self.0 {
            Packed(buf) => packed::iter(buf)
                .take_while(|e| pred(e.member, e.score))
                .count(),
            Big(list) => list.partition_point(pred),
        }
    }

    /// The member and score at 0-based ascending `rank`.
    pub fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        match &self.0 {
            Packed(buf) => packed::nth(buf, rank).map(|e| (e.member, e.score)),
            Big(list) => list.get(rank),
        }
    }

    /// Calls `f` on the members of ranks `start..end` (clamped to the set), ascending, or
    /// from `end - 1` down to `start` with `rev`.
    pub fn range(&self, start: usize, end: usize, rev: bool, mut f: impl FnMut(&[u8], f64)) {
        match &self.0 {
            Packed(buf) => {
                let end = end.min(packed::len(buf));
                if start >= end {
                    return;
                }
                if rev {
                    let entries: Vec<_> = packed::iter(buf).skip(start).take(end - start).collect();
                    entries.iter().rev().for_each(|e| f(e.member, e.score));
                } else {
                    packed::iter(buf)
                        .skip(start)
                        .take(end - start)
                        .for_each(|e| f(e.member, e.score));
                }
            }
            Big(list) => list.range(start, end, rev, f),
        }
    }

    /// Calls `f` on every (member, score), lowest first.
    pub fn for_each(&self, f: impl FnMut(&[u8], f64)) {
        self.range(0, usize::MAX, false, f);
    }

    /// Removes the members of ranks `start..end` (clamped); returns how many.
    pub fn remove_ranks(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        match &mut self.0 {
            Packed(buf) => *buf = packed::remove_ranks(buf, start, end),
            Big(list) => {
                let mut doomed = Vec::with_capacity(end - start);
                list.range(start, end, false, |m, _| doomed.push(Box::<[u8]>::from(m)));
                for m in doomed {
                    list.remove(&m);
                }
            }
        }
        end - start
    }

    /// Up to `count` (member, score) pairs removed from the low end, or the high end with
    /// `max`, in the order they were popped (ZPOPMIN, ZPOPMAX, ZMPOP and the blocking pops).
    pub fn pop(&mut self, max: bool, count: usize) -> Vec<(Vec<u8>, f64)> {
        let len = self.len();
        let n = count.min(len);
        let (start, end) = if max { (len - n, len) } else { (0, n) };
        let mut out = Vec::with_capacity(n);
        self.range(start, end, max, |m, s| out.push((m.to_vec(), s)));
        self.remove_ranks(start, end);
        out
    }

    /// A uniformly random member with its score (`None` when empty).
    pub fn random(&self) -> Option<(&[u8], f64)> {
        match self.len() {
            0 => None,
            n => self.get(fastrand::usize(..n)),
        }
    }

    /// One ZSCAN step from `cursor`: calls `f` on about `count` members and returns the next
    /// cursor (0 when done). A listpack set is returned whole at once, as Redis does. A big
    /// set is walked in the order of its members' hashes: the cursor is the next hash to
    /// visit, so a member present for the whole scan is returned exactly once, whatever
    /// changes meanwhile. Each step costs O(n), against Redis's O(count) `dictScan`.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], f64)) -> u64 {
        let Big(list) = &self.0 else {
            self.for_each(f);
            return 0;
        };
        let mut picked: Vec<(u64, &[u8], f64)> = Vec::new();
        list.hashes(|h, m, s| {
            if h >= cursor {
                picked.push((h, m, s));
            }
        });
        let count = count.max(1);
        let next = if picked.len() > count {
            picked.select_nth_unstable_by_key(count - 1, |p| p.0);
            let bound = picked[count - 1].0;
            // Members sharing the bound's hash all go in this step.
            picked.retain(|p| p.0 <= bound);
            bound.wrapping_add(1)
        } else {
            0
        };
        picked.sort_unstable_by_key(|p| p.0);
        picked.into_iter().for_each(|(_, m, s)| f(m, s));
        next
    }

    /// Converts a listpack set to the skiplist encoding.
    fn convert(&mut self) {
        if let Packed(buf) = &mut self.0 {
            let mut list = Skiplist::new();
            packed::iter(buf).for_each(|e| {
                list.insert(e.member, e.score);
            });
            self.0 = Big(Box::new(list));
        }
    }

    /// OBJECT ENCODING, by Redis 7.0's rules.
    pub fn encoding(&self) -> &'static str {
        match &self.0 {
            Packed(_) => "listpack",
            Big(_) => "skiplist",
        }
    }

    /// Approximate heap bytes (MEMORY USAGE).
    pub fn memory_usage(&self) -> usize {
        match &self.0 {
            Packed(buf) => buf.len(),
            Big(list) => std::mem::size_of::<Skiplist>() + list.memory_usage(),
        }
    }
}

#[cfg(test)]
mod tests;
