//! The state machine of a shard's group: committed batches applied to a [`Store`] with
//! [`Effect::apply`], and snapshots made of the store's dump.
//!
//! A snapshot is taken in two steps, as openraft asks: `get_snapshot_builder` runs on the state
//! machine's task between two applies and copies the store (`Db::dump`: one memcpy per entry
//! under each shard's lock), so the copy matches the last applied log id exactly; the builder
//! then serialises that copy on another task. Installing a snapshot checks and prepares every
//! entry first (`Db::prepare`; a bad image changes nothing), then clears the store and loads
//! them (`Db::load`) with the store's gate held exclusively so no reader sees it half done.
//!
//! The serialised form ([`Image`]) is JSON with deadlines as absolute Unix milliseconds, like
//! the effect stream (the dump's own deadlines are on this process's clock, meaningless to a
//! peer). Compression comes with the cluster bus.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::types::{Applied, NodeId, TypeConfig};
use crate::effect::Effect;
use crate::store::{clock, dump_entries, Kind, Prepared, Store};

/// A member's state machine; clones share it (a restarted member gets the same one back).
#[derive(Debug, Clone)]
pub struct StateMachine {
    store: Arc<Store>,
    /// What the store holds: up to which log id, and the membership it last applied.
    state: Arc<Mutex<AppliedState>>,
    /// The last snapshot built or installed, served to followers that need one.
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    /// Makes snapshot ids unique on this member.
    builds: Arc<AtomicU64>,
}

/// The serialised snapshot: every live entry of every non-empty database.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Image {
    /// The databases that hold keys, in index order.
    pub dbs: Vec<DbImage>,
}

/// One database in an [`Image`].
#[derive(Debug, Serialize, Deserialize)]
pub struct DbImage {
    /// The database's index (`SELECT n`).
    pub db: usize,
    /// Its entries.
    pub entries: Vec<EntryImage>,
}

/// One key in an [`Image`].
#[derive(Debug, Serialize, Deserialize)]
pub struct EntryImage {
    /// The key.
    pub key: Bytes,
    /// The value's type, as `TYPE` names it.
    pub kind: String,
    /// The value in its dumped form (for a string, its bytes).
    pub data: Bytes,
    /// The deadline in Unix milliseconds, if the key has a TTL.
    pub expires_at_ms: Option<i64>,
}

/// Builds one snapshot from a copy of the store taken between two applies.
#[derive(Debug)]
pub struct SnapshotBuilder {
    /// Per database index, one dump per shard.
    dumps: Vec<(usize, Vec<Vec<u8>>)>,
    meta: SnapshotMeta<NodeId, BasicNode>,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

#[derive(Debug, Clone, Default)]
struct AppliedState {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

#[derive(Debug, Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

impl StateMachine {
    /// A state machine applying to `store`, which should start empty: the group's log (or a
    /// snapshot) is the only source of its contents.
    pub fn new(store: Arc<Store>) -> Self {
        StateMachine {
            store,
            state: Arc::default(),
            current: Arc::default(),
            builds: Arc::default(),
        }
    }

    /// The store this state machine applies to.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn state(&self) -> MutexGuard<'_, AppliedState> {
        self.state.lock().expect("state machine lock poisoned")
    }

    /// Applies one batch; database-wide effects (FLUSHDB, FLUSHALL, SWAPDB) run with the gate
    /// held exclusively, as they do on the command path, so no reader sees them half done.
    fn apply_batch(&self, batch: &[Effect], now: Instant) -> Applied {
        let alone = batch.iter().any(|e| {
            matches!(
                e,
                Effect::FlushDb { .. } | Effect::FlushAll | Effect::SwapDb { .. }
            )
        });
        let _gate = alone.then(|| self.store.gate().exclusive());
        let rejected = batch
            .iter()
            .filter(|e| e.apply(&self.store, now).is_err())
            .count();
        if rejected > 0 {
            tracing::warn!(
                rejected,
                "effects name a database this member does not have"
            );
        }
        Applied { rejected }
    }

    /// Replaces the store's contents with `image`. Every entry is checked and prepared before
    /// anything is cleared, so an image that fails leaves the store as it was.
    fn install_image(&self, image: Image, now: Instant) -> Result<(), String> {
        let mut loads = Vec::with_capacity(image.dbs.len());
        for DbImage { db: index, entries } in image.dbs {
            let Some(db) = self.store.db(index) else {
                tracing::warn!(
                    db = index,
                    "snapshot names a database this member does not have"
                );
                continue;
            };
            let mut by_shard: Vec<Vec<Prepared>> =
                (0..db.shard_count()).map(|_| Vec::new()).collect();
            for e in entries {
                let kind = Kind::from_name(e.kind.as_bytes())
                    .ok_or_else(|| format!("unknown type {:?} in a snapshot", e.kind))?;
                let deadline = match e.expires_at_ms {
                    None => None,
                    Some(ms) => match clock::instant_at_unix_ms(ms) {
                        Some(d) if d > now => Some(d),
                        Some(_) => continue, // expired in transit
                        None => return Err(format!("expires_at_ms {ms} is out of range")),
                    },
                };
                let (shard, prepared) = db.prepare(&e.key, kind, &e.data, deadline);
                if let Some(slot) = by_shard.get_mut(shard) {
                    slot.push(prepared);
                }
            }
            loads.push((db, by_shard));
        }
        // Exclusive: readers see the old contents or the new, never a mix.
        let _gate = self.store.gate().exclusive();
        for db in self.store.dbs() {
            db.clear();
        }
        for (db, by_shard) in loads {
            db.load(by_shard);
        }
        self.store.mark_dirty(1);
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let image = Image {
            dbs: std::mem::take(&mut self.dumps)
                .into_iter()
                .map(|(db, shards)| DbImage {
                    db,
                    entries: shards
                        .iter()
                        .flat_map(|d| dump_entries(d))
                        .map(|e| EntryImage {
                            key: Bytes::copy_from_slice(e.key),
                            kind: e.kind.name().to_owned(),
                            data: Bytes::copy_from_slice(e.data),
                            expires_at_ms: e.deadline.map(clock::unix_ms_at),
                        })
                        .collect(),
                })
                .collect(),
        };
        let data =
            serde_json::to_vec(&image).map_err(|e| StorageIOError::read_state_machine(&e))?;
        let stored = StoredSnapshot {
            meta: self.meta.clone(),
            data: data.clone(),
        };
        *self.current.lock().expect("snapshot lock poisoned") = Some(stored);
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let state = self.state();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
    {
        let now = Instant::now();
        let mut replies = Vec::new();
        for entry in entries {
            let reply = match entry.payload {
                EntryPayload::Blank => Applied::default(),
                EntryPayload::Normal(ref batch) => self.apply_batch(&batch.effects, now),
                EntryPayload::Membership(ref m) => {
                    self.state().membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    Applied::default()
                }
            };
            self.state().last_applied = Some(entry.log_id);
            replies.push(reply);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Runs between two applies: the copy below is exactly the state at `last_applied`.
        let state = self.state().clone();
        let now = Instant::now();
        let dumps = {
            // Shared, as the snapshot task does: a transaction is wholly in or out.
            let _gate = self.store.gate().shared(u64::MAX);
            self.store
                .dbs()
                .iter()
                .enumerate()
                .map(|(i, db)| (i, db.dump(now)))
                .filter(|(_, shards)| shards.iter().any(|d| !d.is_empty()))
                .collect()
        };
        let build = self.builds.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match state.last_applied {
            Some(last) => format!("{}-{}-{build}", last.leader_id, last.index),
            None => format!("--{build}"),
        };
        SnapshotBuilder {
            dumps,
            meta: SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.membership,
                snapshot_id,
            },
            current: self.current.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        // The bytes came from a peer: a bad image is a storage error, never a panic.
        let image: Image = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.install_image(image, Instant::now()).map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), &std::io::Error::other(e))
        })?;
        *self.state() = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        *self.current.lock().expect("snapshot lock poisoned") = Some(StoredSnapshot {
            meta: meta.clone(),
            data,
        });
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let current = self.current.lock().expect("snapshot lock poisoned").clone();
        Ok(current.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn contents(store: &Store) -> Vec<(usize, Bytes, crate::store::Value, Option<i64>)> {
        let now = Instant::now();
        let mut all: Vec<_> = (0..store.dbs().len())
            .flat_map(|i| {
                let db = store.db(i).expect("db");
                db.export(now)
                    .into_iter()
                    .map(move |(k, e)| (i, k, e.value, e.deadline.map(clock::unix_ms_at)))
            })
            .collect();
        all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        all
    }

    #[tokio::test]
    async fn a_snapshot_installs_the_same_contents_over_old_ones() {
        let now = Instant::now();
        let source = Arc::new(Store::new(2, 4));
        for i in 0..50 {
            let key = format!("k{i}");
            let deadline = (i % 3 == 0).then(|| now + Duration::from_secs(60));
            let db = source.db(i % 2).expect("db");
            db.shard(key.as_bytes())
                .put(key.as_bytes(), b"value \xff", deadline, now);
        }
        let mut from = StateMachine::new(source.clone());
        let snapshot = from
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("builds");

        let target = Arc::new(Store::new(2, 4));
        let db = target.db(1).expect("db 1");
        db.shard(b"stale").put(b"stale", b"x", None, now);
        let mut to = StateMachine::new(target.clone());
        to.install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .expect("installs");
        assert_eq!(contents(&target), contents(&source));
        assert_eq!(contents(&target).len(), 50);
        let current = to.get_current_snapshot().await.expect("reads");
        assert_eq!(current.map(|s| s.meta), Some(snapshot.meta));
    }

    #[tokio::test]
    async fn a_snapshot_that_does_not_parse_is_an_error_not_a_panic() {
        let store = Arc::new(Store::new(1, 1));
        let now = Instant::now();
        store
            .db(0)
            .expect("db")
            .shard(b"k")
            .put(b"k", b"v", None, now);
        let mut sm = StateMachine::new(store.clone());
        for bad in [
            &b"not json"[..],
            br#"{"dbs":[{"db":0,"entries":[{"key":[1],"kind":"list","data":[],"expires_at_ms":null}]}]}"#,
        ] {
            let data = Box::new(Cursor::new(bad.to_vec()));
            let meta = SnapshotMeta::default();
            assert!(sm.install_snapshot(&meta, data).await.is_err());
        }
        assert_eq!(
            contents(&store).len(),
            1,
            "a snapshot that fails to parse changes nothing"
        );
    }
}
