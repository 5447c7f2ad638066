//! Eviction: choosing victims across the shards and removing them the way a DEL would, so the
//! append-only log and the replicas see every eviction as a delete.
//!
//! As Redis's `evictionPoolPopulate`: each round samples `maxmemory-samples` keys (from a
//! random shard of every database that has keys, walking buckets from a random one) with
//! their score from the shard's access sketch (LRU idle time, LFU rarity) or a random one, and
//! keeps the best [`POOL_SIZE`] candidates met so far. The best is then checked again under its
//! shard's lock: a key touched since it was sampled gets its new score and goes back into the
//! pool (Redis evicts it on its old score), a key gone is skipped. `volatile-ttl` does not
//! sample keys: each round takes the nearest deadline of a few random shards from their
//! deadline index and evicts the nearest of those.
//!
//! A victim is removed under its shard's lock and its `Del` effect handed to the sink (or, in a
//! replicated cluster, to its group's proposer) before the lock is released, as `cmd::run`
//! does for a command. In a cluster only keys of groups this node leads are evicted; followers
//! delete them when they apply the leader's log, so replicas never diverge. With an `allkeys-*`
//! policy, a node that finds nothing of its own to evict but follows a group lets the command
//! run (as a Redis replica leaves its master's keys alone): that group's leader evicts when
//! its own budget is over. A `volatile-*` policy refuses instead, since the other leaders may
//! have no key with a TTL either.

use bytes::Bytes;
use tokio::time::Instant;

use super::{Budget, Policy};
use crate::effect::Effect;
use crate::node::Node;
use crate::store::shard::evict::Score;

/// Candidates the pool keeps (Redis's `EVPOOL_SIZE`).
pub const POOL_SIZE: usize = 16;

/// The eviction pool: the best candidates sampled so far, worst first.
#[derive(Debug, Default)]
pub struct Pool {
    entries: Vec<Candidate>,
    /// Databases that had keys when last looked at (refreshed when sampling finds nothing).
    dbs: Vec<usize>,
}

#[derive(Debug)]
struct Candidate {
    score: u64,
    db: usize,
    key: Box<[u8]>,
}

impl Pool {
    /// Forgets every candidate (the policy changed: the scores mean something else).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Inserts a candidate, keeping the [`POOL_SIZE`] highest scores, one entry per key.
    fn offer(&mut self, score: u64, db: usize, key: Box<[u8]>) {
        if let Some(i) = self.entries.iter().position(|c| c.db == db && c.key == key) {
            self.entries.remove(i);
        }
        if self.entries.len() >= POOL_SIZE && self.entries[0].score >= score {
            return;
        }
        let at = self.entries.partition_point(|c| c.score < score);
        self.entries.insert(at, Candidate { score, db, key });
        if self.entries.len() > POOL_SIZE {
            self.entries.remove(0);
        }
    }
}

/// What [`make_room`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// Under the limit (or evicting, and out of time for this command): run it.
    Enough,
    /// Over the limit and nothing (more) can be evicted: refuse it with [`super::OOM`].
    Full,
}

/// Evicts keys until the node's memory is under its limit; called before a command when
/// `maxmemory` is set. `Room::Full` when it is over and the policy finds nothing to evict.
pub fn make_room(node: &Node) -> Room {
    let budget = &node.memory;
    let limit = budget.limit();
    let used = budget.used();
    if limit == 0 || used <= limit {
        return Room::Enough;
    }
    let policy = budget.policy();
    if policy == Policy::NoEviction {
        return Room::Full;
    }
    let to_free = used - limit;
    let started = std::time::Instant::now();
    // One evicting thread at a time; the others wait and then see the lower estimate.
    let mut pool = budget
        .pool
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if budget.used() <= limit {
        return Room::Enough;
    }
    let mut freed = 0u64;
    let mut evicted = 0u32;
    while freed < to_free {
        let Some(bytes) = evict_one(node, budget, &mut pool, policy) else {
            return if !policy.volatile() && others_hold_keys(node) {
                // What is left is other leaders' to evict, as a Redis replica leaves its
                // master's keys to the master: they free it when their own budget is over.
                // (With a volatile policy they may have nothing to evict either: refuse.)
                Room::Enough
            } else if budget.used() > limit {
                Room::Full
            } else {
                Room::Enough
            };
        };
        freed += bytes as u64;
        evicted += 1;
        // As Redis's eviction time limit: a command never waits long; the next one goes on.
        if evicted.is_multiple_of(16) && started.elapsed() > TIME_LIMIT {
            break;
        }
    }
    Room::Enough
}

/// Evicts one key; returns the bytes it freed (estimated), `None` when nothing can go.
fn evict_one(node: &Node, budget: &Budget, pool: &mut Pool, policy: Policy) -> Option<usize> {
    for attempt in 0..2 {
        if pool.dbs.is_empty() || attempt == 1 {
            pool.dbs = dbs_with_keys(node);
            if pool.dbs.is_empty() {
                return None;
            }
        }
        if policy == Policy::VolatileTtl {
            if let Some(bytes) = evict_nearest(node, budget, pool) {
                return Some(bytes);
            }
            continue;
        }
        populate(node, budget, pool, policy);
        while let Some(best) = pool.entries.pop() {
            if let Some(bytes) = evict_candidate(node, pool, best, policy) {
                budget
                    .evicted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Some(bytes);
            }
        }
    }
    None
}

/// One sampling round: `maxmemory-samples` keys of a random non-empty shard of each database.
fn populate(node: &Node, budget: &Budget, pool: &mut Pool, policy: Policy) {
    let samples = budget.samples() as usize;
    let score = if policy.tracking().is_some() {
        Score::Sketch
    } else {
        Score::Random
    };
    let now = Instant::now();
    let mut found = Vec::with_capacity(samples);
    let dbs = pool.dbs.clone();
    for db_index in dbs {
        let Some(db) = node.store.db(db_index) else {
            continue;
        };
        // A few tries: a sparse database has empty shards, and in a replicated cluster most
        // sampled keys may belong to groups another node leads.
        let tries = if node.cluster().is_some() {
            CLUSTER_SHARD_TRIES
        } else {
            SHARD_TRIES
        };
        for _ in 0..tries {
            let shard = db.lock(fastrand::usize(..db.shard_count()));
            shard.sample(samples, policy.volatile(), score, now, &mut found);
            drop(shard);
            let mut offered = false;
            for (score, key) in found.drain(..) {
                if may_evict(node, &key) {
                    pool.offer(score, db_index, key);
                    offered = true;
                }
            }
            if offered {
                break;
            }
        }
    }
}

/// Removes `best` if it is still there and still as good a victim as when sampled.
fn evict_candidate(node: &Node, pool: &mut Pool, best: Candidate, policy: Policy) -> Option<usize> {
    let db = node.store.db(best.db)?;
    let mut shard = db.shard(&best.key);
    let now = Instant::now();
    let score = shard.rescore(&best.key, policy.volatile(), now)?;
    if policy.tracking().is_some() && score < best.score {
        // Used since it was sampled: back in the pool with what it is worth now.
        drop(shard);
        pool.offer(score, best.db, best.key);
        return None;
    }
    let bytes = shard.evict(&best.key)?;
    publish(node, best.db, &best.key);
    drop(shard);
    Some(bytes)
}

/// `volatile-ttl`: the nearest deadline of [`TTL_SHARDS`] random shards of each database.
fn evict_nearest(node: &Node, budget: &Budget, pool: &Pool) -> Option<usize> {
    let mut best: Option<(u64, usize, Box<[u8]>)> = None;
    for &db_index in &pool.dbs {
        let Some(db) = node.store.db(db_index) else {
            continue;
        };
        for _ in 0..TTL_SHARDS.max(budget.samples() as usize) {
            let found = db
                .lock(fastrand::usize(..db.shard_count()))
                .nearest_deadline();
            if let Some((deadline, key)) = found {
                if best.as_ref().is_none_or(|b| deadline < b.0) && may_evict(node, &key) {
                    best = Some((deadline, db_index, key));
                }
            }
        }
    }
    let (_, db_index, key) = best?;
    let db = node.store.db(db_index)?;
    let mut shard = db.shard(&key);
    let bytes = shard.evict(&key)?;
    publish(node, db_index, &key);
    drop(shard);
    budget
        .evicted
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Some(bytes)
}

/// Hands the eviction's `Del` to the effect stream; called under the victim's shard lock.
fn publish(node: &Node, db: usize, key: &[u8]) {
    node.store.mark_dirty(1);
    let effects = [Effect::Del {
        db,
        key: Bytes::copy_from_slice(key),
    }];
    if let Some(cluster) = node.cluster() {
        let slot = crate::client::router::slot_of(key);
        if let Some(group) = cluster
            .slots
            .serving(slot)
            .group
            .and_then(|g| cluster.group(g))
        {
            group.submit(&effects);
        }
    } else if let Some(sink) = node.sink() {
        sink.append(&effects);
    }
}

/// Whether this node, in a replicated cluster, follows a group while it holds keys: what it
/// could not evict may then be the other leaders' to evict.
fn others_hold_keys(node: &Node) -> bool {
    node.cluster().is_some_and(|cluster| {
        cluster
            .groups()
            .iter()
            .any(|g| !matches!(g.role(), crate::cluster::group::Role::Leader))
    }) && !dbs_with_keys(node).is_empty()
}

/// Whether this node may evict `key`: always on a standalone node; in a replicated cluster
/// only when it leads the key's group and the slot is not moving.
fn may_evict(node: &Node, key: &[u8]) -> bool {
    let Some(cluster) = node.cluster() else {
        return true;
    };
    let serving = cluster.slots.serving(crate::client::router::slot_of(key));
    if serving.importing || serving.frozen {
        return false;
    }
    serving
        .group
        .and_then(|g| cluster.group(g))
        .is_some_and(|g| matches!(g.role(), crate::cluster::group::Role::Leader))
}

/// The databases with at least one key (one pass over every shard, each locked briefly).
fn dbs_with_keys(node: &Node) -> Vec<usize> {
    node.store
        .dbs()
        .iter()
        .enumerate()
        .filter(|(_, db)| (0..db.shard_count()).any(|i| !db.lock(i).is_empty()))
        .map(|(i, _)| i)
        .collect()
}

/// Random shards tried per database and round before giving up on it.
const SHARD_TRIES: usize = 8;
/// The same in a replicated cluster, where a shard's sample may hold no key this node leads.
const CLUSTER_SHARD_TRIES: usize = 32;
/// Shards whose nearest deadline `volatile-ttl` compares per eviction (at least).
const TTL_SHARDS: usize = 16;
/// How long one command may spend evicting before it runs anyway.
const TIME_LIMIT: std::time::Duration = std::time::Duration::from_millis(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_keeps_the_best_candidates_once_each() {
        let mut pool = Pool::default();
        for i in 0..40u64 {
            pool.offer(i, 0, format!("k{i}").into_bytes().into());
        }
        assert_eq!(pool.entries.len(), POOL_SIZE);
        assert_eq!(pool.entries.first().map(|c| c.score), Some(24));
        assert_eq!(pool.entries.last().map(|c| c.score), Some(39));
        pool.offer(100, 0, b"k30".to_vec().into());
        assert_eq!(pool.entries.len(), POOL_SIZE);
        assert_eq!(
            pool.entries.last().map(|c| &c.key[..]),
            Some(&b"k30"[..]),
            "a key offered again moves, it is not duplicated"
        );
        pool.offer(1, 0, b"cold".to_vec().into());
        assert!(pool.entries.iter().all(|c| &c.key[..] != b"cold"));
    }
}
