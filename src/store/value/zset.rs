//! Redis's sorted set type.
//!
//! The interface the rest of the node relies on: `new`, `len`, `is_empty`, `insert`
//! (member, score; true when new), `for_each` (member, score, in ascending (score, member)
//! order), `encoding`, `memory_usage`, `Clone`, `PartialEq` (same members and scores).
//! Scores are never NaN. Everything else is the sorted-set commands' business.

use std::collections::{BTreeSet, HashMap};

use super::limits;

/// Members with scores, ordered by (score, member).
#[derive(Debug, Clone, Default)]
pub struct ZSet {
    scores: HashMap<Box<[u8]>, f64, ahash::RandomState>,
    order: BTreeSet<(Score, Box<[u8]>)>,
}

/// A score ordered by `f64::total_cmp` (scores are never NaN).
#[derive(Debug, Clone, Copy)]
struct Score(f64);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.order == other.order
    }
}
impl Eq for ZSet {}

impl ZSet {
    /// An empty sorted set.
    pub fn new() -> Self {
        ZSet::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// True without members.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Sets `member`'s score; true when the member is new.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        let old = self.scores.insert(member.into(), score);
        if let Some(old) = old {
            self.order.remove(&(Score(old), Box::from(member)));
        }
        self.order.insert((Score(score), member.into()));
        old.is_none()
    }

    /// Calls `f` on every (member, score), lowest first.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], f64)) {
        self.order.iter().for_each(|(s, m)| f(m, s.0));
    }

    /// OBJECT ENCODING, by Redis 7.0's rules.
    pub fn encoding(&self) -> &'static str {
        let max = limits::ZSET_MAX_LISTPACK_VALUE.count();
        if self.len() <= limits::ZSET_MAX_LISTPACK_ENTRIES.count()
            && self.scores.keys().all(|m| m.len() <= max)
        {
            "listpack"
        } else {
            "skiplist"
        }
    }

    /// Approximate heap bytes (MEMORY USAGE).
    pub fn memory_usage(&self) -> usize {
        self.scores.capacity() * 25
            + self.order.len() * 40
            + self.scores.keys().map(|m| 2 * m.len()).sum::<usize>()
    }
}
