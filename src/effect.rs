//! The effect stream: what every write did to the data, as records any number of consumers
//! can replay.
//!
//! A write command does not leave the node as the command the client sent (which may depend on
//! the clock, on randomness or on the old value) but as its *effects*: the final value of each
//! key it set, each key it deleted, each deadline it moved, each database it flushed or
//! swapped. Effects are deterministic (deadlines are absolute Unix milliseconds, INCRBYFLOAT's
//! result is the stored text), and the per-key ones are idempotent (applying one twice leaves
//! the same state), so a consumer that starts from a snapshot may apply per-key effects the
//! snapshot already contains. FLUSHDB, FLUSHALL and SWAPDB run alone (no snapshot copy runs
//! meanwhile), so a consumer's position in the stream decides exactly whether they are in.
//!
//! The command layer (`cmd::capture`) records effects while the command runs, under the
//! locks of the keys it changes, and hands one command's effects (or one transaction's) to the
//! node's [`EffectSink`] before releasing those locks, so the records of one key reach the
//! sink in the order the writes happened. The append-only log is one sink; replication will
//! be another; [`Recorder`] keeps them in memory for tests.
//!
//! This module knows the store, not commands, codecs or sockets.

mod edit;

use std::sync::Mutex;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::store::{clock, Store, Value};

pub use edit::{Edit, Score};

/// One change to the data. Serde (plain derives) carries it in replication's log entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// `key` in database `db` now holds `value`, with the deadline `expires_at_ms` (Unix
    /// milliseconds) or none.
    Put {
        /// The database.
        db: usize,
        /// The key.
        key: Bytes,
        /// Its whole new value.
        value: Value,
        /// When it expires, if it does.
        expires_at_ms: Option<i64>,
    },
    /// `key` in database `db` was removed.
    Del {
        /// The database.
        db: usize,
        /// The key.
        key: Bytes,
    },
    /// The deadline of the existing `key` changed (EXPIRE and friends; `None` for PERSIST).
    Expire {
        /// The database.
        db: usize,
        /// The key.
        key: Bytes,
        /// The new deadline in Unix milliseconds, or `None` for no TTL.
        expires_at_ms: Option<i64>,
    },
    /// Every key of database `db` was removed (FLUSHDB).
    FlushDb {
        /// The database.
        db: usize,
    },
    /// Every key of every database was removed (FLUSHALL).
    FlushAll,
    /// Databases `a` and `b` exchanged their contents (SWAPDB).
    SwapDb {
        /// One database.
        a: usize,
        /// The other.
        b: usize,
    },
    /// A change to which slots a replicated cluster's group holds (slot moves, issue 11): only
    /// a group's state machine acts on it; every other consumer ignores it.
    Slots(SlotControl),
    /// Elements of the hash, set or sorted set under `key` changed (a write to a collection
    /// that existed before and still does; see [`Edit`]).
    Edit {
        /// The database.
        db: usize,
        /// The key.
        key: Bytes,
        /// What changed.
        edit: Edit,
    },
}

/// One step of a slot move, recorded in the log of the group it concerns (see
/// `replication::slots`). Appended after the data effects so older logs decode unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotControl {
    /// Target: start receiving these slots (their copies arrive as ordinary `Put`s).
    Import(Vec<u16>),
    /// Target: the slots are now its own (the source released them).
    Activate(Vec<u16>),
    /// Target: forget an import that will not complete.
    Abort(Vec<u16>),
    /// Source: no more writes to these slots (reads go on).
    Freeze(Vec<u16>),
    /// Source: writes to these slots again (a move rolled back).
    Unfreeze(Vec<u16>),
    /// Source: the slots belong to shard `to` (0-based) from here on; their keys go.
    Release {
        /// The slots.
        slots: Vec<u16>,
        /// The shard they went to.
        to: usize,
    },
}

/// A consumer of the effect stream.
pub trait EffectSink: Send + Sync + std::fmt::Debug {
    /// Takes the effects of one command, or of one whole transaction, in the order they
    /// happened. Called while the writer still holds the locks of every key named, so calls
    /// for the same key arrive in write order. Must be quick: it runs on the request path.
    /// Returns the sink's position just past these effects (the append-only log's offset,
    /// which `appendfsync always` waits for before replying).
    fn append(&self, effects: &[Effect]) -> u64;
}

/// An effect that cannot be applied to this store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// It names a database this node does not have (it was written with more `--databases`).
    #[error("database {0} is past the configured count")]
    NoSuchDb(usize),
}

impl Effect {
    /// Applies the effect to `store` as of `now`: a deadline already past removes the key.
    /// Marks the store dirty, so the next periodic snapshot includes it.
    ///
    /// # Errors
    /// [`ApplyError::NoSuchDb`] when the effect names a database past the store's count.
    pub fn apply(&self, store: &Store, now: Instant) -> Result<(), ApplyError> {
        let db = |index: usize| store.db(index).ok_or(ApplyError::NoSuchDb(index));
        // A deadline already past (the key expired meanwhile) deletes, as expiry would have.
        let live = |at: Option<i64>| match at {
            None => Some(None),
            Some(ms) => clock::instant_at_unix_ms(ms).filter(|d| *d > now).map(Some),
        };
        match self {
            Effect::Put {
                db: index,
                key,
                value,
                expires_at_ms,
            } => {
                let mut shard = db(*index)?.shard(key);
                match live(*expires_at_ms) {
                    Some(deadline) => {
                        shard.put_value(key, value, deadline, now);
                    }
                    None => {
                        shard.delete(key, now);
                    }
                }
            }
            Effect::Del { db: index, key } => {
                db(*index)?.shard(key).delete(key, now);
            }
            Effect::Expire {
                db: index,
                key,
                expires_at_ms,
            } => {
                let mut shard = db(*index)?.shard(key);
                match live(*expires_at_ms) {
                    Some(deadline) => {
                        shard.set_deadline(key, deadline, now);
                    }
                    None => {
                        shard.delete(key, now);
                    }
                }
            }
            Effect::FlushDb { db: index } => {
                db(*index)?.clear();
            }
            Effect::FlushAll => store.dbs().iter().for_each(|d| {
                d.clear();
            }),
            Effect::SwapDb { a, b } => {
                db(*a)?;
                db(*b)?;
                store.swap_dbs(*a, *b);
            }
            Effect::Edit {
                db: index,
                key,
                edit,
            } => {
                edit.apply(&mut db(*index)?.shard(key), key, now);
            }
            // Not about one store's data: a group's state machine handles it itself.
            Effect::Slots(_) => return Ok(()),
        }
        store.mark_dirty(1);
        Ok(())
    }

    /// The bytes of keys and values the effect carries (how big a log entry or a copied
    /// chunk grows with it).
    pub fn data_bytes(&self) -> usize {
        match self {
            Effect::Put { key, value, .. } => key.len() + value.memory_usage(),
            Effect::Del { key, .. } | Effect::Expire { key, .. } => key.len(),
            Effect::Edit { key, edit, .. } => key.len() + edit.data_bytes(),
            _ => 0,
        }
    }

    /// The key of an effect about one key (`Put`, `Del`, `Expire`, `Edit`).
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Effect::Put { key, .. }
            | Effect::Del { key, .. }
            | Effect::Expire { key, .. }
            | Effect::Edit { key, .. } => Some(key),
            Effect::FlushDb { .. }
            | Effect::FlushAll
            | Effect::SwapDb { .. }
            | Effect::Slots(_) => None,
        }
    }

    /// The database the effect is in, for effects that touch one.
    pub fn db(&self) -> Option<usize> {
        match self {
            Effect::Put { db, .. }
            | Effect::Del { db, .. }
            | Effect::Expire { db, .. }
            | Effect::Edit { db, .. }
            | Effect::FlushDb { db } => Some(*db),
            Effect::FlushAll | Effect::SwapDb { .. } | Effect::Slots(_) => None,
        }
    }
}

/// The deadline of an effect: `deadline` as Unix milliseconds.
pub fn unix_deadline(deadline: Option<Instant>) -> Option<i64> {
    deadline.map(clock::unix_ms_at)
}

/// A sink that keeps every effect in memory, in order: what tests replay and compare.
#[derive(Debug, Default)]
pub struct Recorder {
    /// The effects so far, and how many batches brought them.
    log: Mutex<(Vec<Effect>, u64)>,
}

impl Recorder {
    /// Takes every effect recorded so far, leaving the recorder empty.
    pub fn take(&self) -> Vec<Effect> {
        std::mem::take(&mut self.log.lock().expect("recorder lock poisoned").0)
    }

    /// How many batches (commands or transactions) were appended so far.
    pub fn batches(&self) -> u64 {
        self.log.lock().expect("recorder lock poisoned").1
    }
}

impl EffectSink for Recorder {
    fn append(&self, effects: &[Effect]) -> u64 {
        let mut log = self.log.lock().expect("recorder lock poisoned");
        log.0.extend_from_slice(effects);
        log.1 += 1;
        log.0.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn put(key: &'static str, value: &'static str, at: Option<i64>) -> Effect {
        Effect::Put {
            db: 0,
            key: Bytes::from_static(key.as_bytes()),
            value: Value::String(Bytes::from_static(value.as_bytes())),
            expires_at_ms: at,
        }
    }

    fn dump(store: &Store, now: Instant) -> Vec<(usize, Bytes, crate::store::Entry)> {
        let mut all: Vec<_> = (0..store.dbs().len())
            .flat_map(|i| {
                let db = store.db(i).expect("db");
                db.export(now).into_iter().map(move |(k, e)| (i, k, e))
            })
            .collect();
        all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        all
    }

    #[test]
    fn per_key_effects_applied_twice_leave_the_same_state() {
        let now = Instant::now();
        let later = clock::unix_ms_at(now + Duration::from_secs(60));
        let effects = vec![
            put("a", "1", None),
            put("b", "2", Some(later)),
            Effect::Expire {
                db: 0,
                key: Bytes::from_static(b"a"),
                expires_at_ms: Some(later),
            },
            put("gone", "x", Some(clock::unix_ms_at(now) - 1)),
            Effect::Del {
                db: 0,
                key: Bytes::from_static(b"b"),
            },
            Effect::Expire {
                db: 0,
                key: Bytes::from_static(b"missing"),
                expires_at_ms: None,
            },
        ];
        let (once, twice) = (Store::new(2, 4), Store::new(2, 4));
        for e in &effects {
            e.apply(&once, now).expect("applies");
        }
        for e in effects.iter().chain(&effects) {
            e.apply(&twice, now).expect("applies");
        }
        assert_eq!(dump(&once, now), dump(&twice, now));
        let db0 = once.db(0).expect("db 0");
        assert!(db0.shard(b"a").deadline(b"a", now).flatten().is_some());
        assert!(
            db0.shard(b"gone").get(b"gone", now).is_none(),
            "past deadline"
        );
        assert!(db0.shard(b"b").get(b"b", now).is_none());
    }

    #[test]
    fn database_effects_swap_and_flush() {
        let now = Instant::now();
        let store = Store::new(2, 4);
        put("a", "1", None).apply(&store, now).expect("put");
        Effect::SwapDb { a: 0, b: 1 }
            .apply(&store, now)
            .expect("swap");
        assert_eq!(store.db(1).expect("db 1").counts(now).0, 1);
        Effect::FlushDb { db: 1 }.apply(&store, now).expect("flush");
        assert_eq!(store.db(1).expect("db 1").counts(now).0, 0);
        assert_eq!(
            Effect::FlushDb { db: 7 }.apply(&store, now),
            Err(ApplyError::NoSuchDb(7))
        );
    }
}
