//! The state machine of a shard's group: committed batches applied to the group's part of a
//! [`Store`] with [`Effect::apply`], and snapshots made of that part's dump.
//!
//! **Scope.** A node has one store shared by every group it is a member of; key `k` belongs to
//! group `node_for(k, S)` of `S` ([`Scope`]). A group's state machine only ever dumps, clears
//! or loads its own keys: FLUSHDB and FLUSHALL remove the group's keys only, a snapshot holds
//! and replaces the group's keys only, and a per-key effect for another group's key is
//! rejected (counted in [`Applied::rejected`]), as is SWAPDB, which a cluster refuses anyway
//! (it only has database 0). [`StateMachine::new`] owns every key ([`Scope::all`]).
//!
//! **Origin skip.** The group's leader runs write commands against the store before they
//! commit and proposes their effects as a [`Batch`](super::types::Batch) tagged with its
//! [`Speculation`] origin. When such a batch commits, [`Speculation::passed`] records it and
//! the state machine skips its effects: the store has them already. Every other batch (another
//! leader's, or one of this member's previous origins) is applied.
//!
//! **Snapshots never hold a write the group might lose.** `get_snapshot_builder` (on the state
//! machine's task, between two applies) records the meta: the last applied log id and the
//! membership. The copy of the store is taken later, in `build_snapshot`, which openraft runs
//! on a task of its own: it takes [`Speculation::pause`] for writing (no command runs
//! speculatively meanwhile), waits until every batch the leader submitted has been passed by
//! the state machine ([`Speculation::wait_settled`]: the state machine's task is free to apply
//! them, so this cannot deadlock), then dumps the group's keys and lets commands go on. The
//! copy therefore holds exactly the committed prefix up to some index at or after the meta's
//! `last_log_id`. That is correct: a member installing it applies the entries after
//! `last_log_id` again, and per-key effects are idempotent and convergent (a key ends as its
//! last Put or Del plus the Expires after it, whatever state the replay started from; a flush
//! removes what the replay puts back after it; see [`crate::effect`]). SWAPDB, the one effect
//! that is not, never occurs in a cluster. A follower's origin never matches, so it never
//! waits. [`StateMachine::reset`] drops any build still waiting (its `renew` would otherwise
//! release the wait on a store about to be rebuilt).
//!
//! **Bytes and files.** Snapshots travel and rest as zstd-compressed, checksummed frames
//! ([`super::snapshot`]). A state machine opened with a directory
//! ([`StateMachine::open`]) writes each snapshot it builds or installs atomically to
//! `dir/snapshot.bin` with its meta, and loads it back on open. Installing checks and
//! prepares every entry first (a bad image changes nothing), then replaces the group's keys
//! with the store's gate held exclusively, so no reader sees it half done. Decoding, encoding
//! and file I/O run in `spawn_blocking`, off the executor.
//!
//! **Rebuild.** A leader that steps down with speculative writes still uncommitted calls
//! [`StateMachine::reset`]: the group's keys go back to the current snapshot, the applied
//! state to its meta, and the speculation gets a new origin; a new `Raft` over the same log
//! then re-applies the committed entries after the snapshot.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use tokio::time::Instant;

use super::snapshot::{self, FileError, SnapshotError};
pub use super::snapshot::{DbImage, EntryImage, Image};
use super::types::{Applied, NodeId, Speculation, TypeConfig};
use crate::client::router::node_for;
use crate::effect::{ApplyError, Effect};
use crate::store::{clock, dump_entries, Db, Kind, Prepared, Store};

/// The keys a group's state machine owns: those with `node_for(key, groups) == group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    group: usize,
    groups: usize,
}

/// A member's state machine; clones share it (a restarted member gets the same one back).
#[derive(Debug, Clone)]
pub struct StateMachine {
    store: Arc<Store>,
    scope: Scope,
    speculation: Arc<Speculation>,
    /// Where snapshots are kept, for a state machine made by [`StateMachine::open`].
    dir: Option<Arc<Path>>,
    /// What the store holds: up to which log id, and the membership it last applied.
    state: Arc<Mutex<AppliedState>>,
    /// The last snapshot built or installed, served to followers that need one. Its lock is
    /// also held while the snapshot file is replaced, so file and memory agree.
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    /// Makes snapshot ids unique on this member.
    builds: Arc<AtomicU64>,
    /// Bumped by [`StateMachine::reset`]: a build begun before it is dropped.
    generation: Arc<AtomicU64>,
}

/// Builds one snapshot: the meta is recorded between two applies, the copy taken once every
/// speculative write has committed (see the module docs).
#[derive(Debug)]
pub struct SnapshotBuilder {
    machine: StateMachine,
    meta: SnapshotMeta<NodeId, BasicNode>,
    /// The machine's generation when the meta was recorded.
    generation: u64,
}

#[derive(Debug, Clone, Default)]
struct AppliedState {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

#[derive(Debug, Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    /// The compressed frame.
    data: Vec<u8>,
}

/// An image checked and prepared for [`StateMachine::replace`]: per database, entries by shard.
type Loads<'a> = Vec<(&'a Db, Vec<Vec<Prepared>>)>;

/// Why one effect was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    NoSuchDb(usize),
    OtherGroup,
    SwapInGroup,
}

impl Scope {
    /// Every key: a store that holds a single group.
    pub fn all() -> Scope {
        Scope {
            group: 0,
            groups: 1,
        }
    }

    /// Group `group` (0-based) of `groups`.
    ///
    /// # Panics
    /// If `group >= groups` (which also rules out `groups == 0`): a configuration bug.
    pub fn new(group: usize, groups: usize) -> Scope {
        assert!(group < groups, "group {group} is not one of {groups}");
        Scope { group, groups }
    }

    /// The group's index.
    pub fn group(&self) -> usize {
        self.group
    }

    /// How many groups the keyspace is split into.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Whether the scope is the whole keyspace (one group).
    pub fn is_all(&self) -> bool {
        self.groups == 1
    }

    /// Whether `key` belongs to the group (one MD5 of the key, unless the scope is all).
    pub fn owns(&self, key: &[u8]) -> bool {
        self.is_all() || node_for(key, self.groups) == self.group
    }
}

impl StateMachine {
    /// A state machine owning every key of `store`, which should start empty: the group's log
    /// (or a snapshot) is the only source of its contents. Its [`Speculation`] is its own,
    /// and snapshots live in memory only.
    pub fn new(store: Arc<Store>) -> Self {
        StateMachine::group(store, Scope::all(), Arc::default())
    }

    /// The state machine of group `scope` over `store`, sharing `speculation` with the
    /// member's leader side; snapshots live in memory only.
    pub fn group(store: Arc<Store>, scope: Scope, speculation: Arc<Speculation>) -> Self {
        StateMachine {
            store,
            scope,
            speculation,
            dir: None,
            state: Arc::default(),
            current: Arc::default(),
            builds: Arc::default(),
            generation: Arc::default(),
        }
    }

    /// The state machine of group `scope` over `store`, keeping its snapshots in `dir`
    /// (created if missing). A snapshot file found there is checked and loaded into the store
    /// (the group's keys only), and the applied state and current snapshot start from it.
    ///
    /// # Errors
    /// [`SnapshotError::File`] naming the file when the directory or the file cannot be read,
    /// or the file is damaged or holds an image this member refuses; the file is left as is.
    pub async fn open(
        store: Arc<Store>,
        scope: Scope,
        speculation: Arc<Speculation>,
        dir: impl AsRef<Path>,
    ) -> Result<StateMachine, SnapshotError> {
        let dir: Arc<Path> = Arc::from(dir.as_ref());
        let mut machine = StateMachine::group(store, scope, speculation);
        machine.dir = Some(dir.clone());
        let opened = machine.clone();
        tokio::task::spawn_blocking(move || opened.load_dir(&dir))
            .await
            .map_err(|e| SnapshotError::Interrupted(e.to_string()))??;
        Ok(machine)
    }

    /// The store this state machine applies to.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The keys it owns.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// What it shares with the member's leader side.
    pub fn speculation(&self) -> &Arc<Speculation> {
        &self.speculation
    }

    /// Rebuilds the group's keys from committed state, for a leader that stepped down with
    /// speculative writes still uncommitted: removes them, loads the current snapshot (if
    /// any) back, sets the applied state to that snapshot's meta (or nothing), drops any
    /// snapshot build still under way and starts a new speculation origin. The caller then
    /// starts a new `Raft` over the same log and this state machine (its old `Raft` shut
    /// down), and openraft applies the committed entries after the snapshot again.
    ///
    /// # Errors
    /// [`SnapshotError`] when the current snapshot no longer decodes (it was checked when it
    /// was built or installed, so only memory damage gets here); the store is then unchanged.
    pub async fn reset(&self) -> Result<(), SnapshotError> {
        // First, so a build released by `renew` (or finishing meanwhile) is dropped.
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.speculation.renew();
        let machine = self.clone();
        tokio::task::spawn_blocking(move || machine.rebuild())
            .await
            .map_err(|e| SnapshotError::Interrupted(e.to_string()))?
    }

    fn state(&self) -> MutexGuard<'_, AppliedState> {
        self.state.lock().expect("state machine lock poisoned")
    }

    fn current(&self) -> MutexGuard<'_, Option<StoredSnapshot>> {
        self.current.lock().expect("snapshot lock poisoned")
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
        let mut rejected = 0;
        let mut first = None;
        for effect in batch {
            if let Err(why) = self.apply_effect(effect, now) {
                rejected += 1;
                first.get_or_insert(why);
            }
        }
        if let Some(first) = first {
            tracing::warn!(
                rejected,
                ?first,
                group = self.scope.group,
                "effects this member cannot apply: a database past its --databases, a key of \
                 another group, or SWAPDB in a group"
            );
        }
        Applied { rejected }
    }

    fn apply_effect(&self, effect: &Effect, now: Instant) -> Result<(), Rejection> {
        let scope = self.scope;
        let no_such = |ApplyError::NoSuchDb(db)| Rejection::NoSuchDb(db);
        if scope.is_all() {
            return effect.apply(&self.store, now).map_err(no_such);
        }
        let other = |k: &[u8]| !scope.owns(k);
        match effect {
            Effect::Put { key, .. } | Effect::Del { key, .. } | Effect::Expire { key, .. } => {
                if !scope.owns(key) {
                    return Err(Rejection::OtherGroup);
                }
                effect.apply(&self.store, now).map_err(no_such)
            }
            Effect::FlushDb { db } => {
                let db = self.store.db(*db).ok_or(Rejection::NoSuchDb(*db))?;
                db.retain(other);
                self.store.mark_dirty(1);
                Ok(())
            }
            Effect::FlushAll => {
                for db in self.store.dbs() {
                    db.retain(other);
                }
                self.store.mark_dirty(1);
                Ok(())
            }
            Effect::SwapDb { .. } => Err(Rejection::SwapInGroup),
        }
    }

    /// Copies the group's live entries: per database that has any, one dump per shard. Taken
    /// with the gate shared, as the snapshot task does: a transaction is wholly in or out.
    fn dump(&self, now: Instant) -> Vec<(usize, Vec<Vec<u8>>)> {
        let _gate = self.store.gate().shared(u64::MAX);
        let scope = self.scope;
        self.store
            .dbs()
            .iter()
            .enumerate()
            .map(|(i, db)| match scope.is_all() {
                true => (i, db.dump(now)),
                false => (i, db.dump_matching(now, |k| scope.owns(k))),
            })
            .filter(|(_, shards)| shards.iter().any(|d| !d.is_empty()))
            .collect()
    }

    /// Checks every entry of `image` and prepares it for [`StateMachine::replace`]; nothing
    /// in the store changes.
    fn prepare(&self, image: Image, now: Instant) -> Result<Loads<'_>, SnapshotError> {
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
                    .ok_or_else(|| SnapshotError::Refused(format!("unknown type {:?}", e.kind)))?;
                if !self.scope.owns(&e.key) {
                    return Err(SnapshotError::Refused(format!(
                        "key {:?} is not in group {} of {}",
                        String::from_utf8_lossy(&e.key),
                        self.scope.group,
                        self.scope.groups
                    )));
                }
                let deadline = match e.expires_at_ms {
                    None => None,
                    Some(ms) => match clock::instant_at_unix_ms(ms) {
                        Some(d) if d > now => Some(d),
                        Some(_) => continue, // expired in transit
                        None => {
                            return Err(SnapshotError::Refused(format!(
                                "expires_at_ms {ms} is out of range"
                            )))
                        }
                    },
                };
                let (shard, prepared) = db.prepare(&e.key, kind, &e.data, deadline);
                if let Some(slot) = by_shard.get_mut(shard) {
                    slot.push(prepared);
                }
            }
            loads.push((db, by_shard));
        }
        Ok(loads)
    }

    /// Decodes a frame and prepares its image.
    fn prepare_frame(&self, frame: &[u8]) -> Result<Loads<'_>, SnapshotError> {
        self.prepare(snapshot::decode(frame)?, Instant::now())
    }

    /// Replaces the group's keys with `loads` (none: just removes them), with the gate held
    /// exclusively: readers see the old contents or the new, never a mix.
    fn replace(&self, loads: Option<Loads<'_>>) {
        let _gate = self.store.gate().exclusive();
        let scope = self.scope;
        for db in self.store.dbs() {
            match scope.is_all() {
                true => db.clear(),
                false => db.retain(|k| !scope.owns(k)),
            };
        }
        for (db, by_shard) in loads.into_iter().flatten() {
            db.load(by_shard);
        }
        self.store.mark_dirty(1);
    }

    /// Records `frame` as the current snapshot (and in the directory, if any). A build begun
    /// in an older `generation` than the machine's is refused: a reset happened meanwhile.
    fn publish(
        &self,
        meta: SnapshotMeta<NodeId, BasicNode>,
        frame: Vec<u8>,
        generation: Option<u64>,
    ) -> Result<(), SnapshotError> {
        // Held across the file write: `reset` and a concurrent install see file and memory
        // agree. Only ever taken inside `spawn_blocking`, never on the executor for long.
        let mut current = self.current();
        if generation.is_some_and(|g| g != self.generation.load(Ordering::SeqCst)) {
            return Err(SnapshotError::Interrupted(
                "the state machine was reset while the snapshot was built".to_owned(),
            ));
        }
        if let Some(dir) = &self.dir {
            snapshot::write_file(dir, &meta, &frame)?;
        }
        *current = Some(StoredSnapshot { meta, data: frame });
        Ok(())
    }

    /// Loads the snapshot kept in the directory, if any (see [`StateMachine::open`]).
    fn load_dir(&self, dir: &Path) -> Result<(), SnapshotError> {
        let file = snapshot::file_path(dir);
        std::fs::create_dir_all(dir).map_err(|e| file_error(&file, e.into()))?;
        let Some((meta, frame)) = snapshot::read_file(dir)? else {
            return Ok(());
        };
        let loads = self
            .prepare_frame(&frame)
            .map_err(|e| file_error(&file, e.into()))?;
        self.replace(Some(loads));
        *self.state() = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        *self.current() = Some(StoredSnapshot { meta, data: frame });
        Ok(())
    }

    /// The blocking half of [`StateMachine::reset`].
    fn rebuild(&self) -> Result<(), SnapshotError> {
        let current = self.current().clone();
        let loads = match &current {
            Some(s) => Some(self.prepare_frame(&s.data)?),
            None => None,
        };
        self.replace(loads);
        *self.state() = match current {
            Some(s) => AppliedState {
                last_applied: s.meta.last_log_id,
                membership: s.meta.last_membership,
            },
            None => AppliedState::default(),
        };
        Ok(())
    }

    /// The blocking half of `install_snapshot`: check and prepare, keep the file, replace.
    fn install(
        &self,
        meta: SnapshotMeta<NodeId, BasicNode>,
        frame: Vec<u8>,
    ) -> Result<(), SnapshotError> {
        let loads = self.prepare_frame(&frame)?;
        let state = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        // The file first: if it cannot be written, the store is still as it was.
        self.publish(meta, frame, None)?;
        self.replace(Some(loads));
        *self.state() = state;
        Ok(())
    }
}

impl SnapshotBuilder {
    /// The blocking half of `build_snapshot`: the image, its frame, and publishing it.
    fn finish(
        machine: &StateMachine,
        meta: SnapshotMeta<NodeId, BasicNode>,
        generation: u64,
        dumps: Vec<(usize, Vec<Vec<u8>>)>,
    ) -> Result<Snapshot<TypeConfig>, SnapshotError> {
        let image = Image {
            dbs: dumps
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
        let frame = snapshot::encode(&image)?;
        machine.publish(meta.clone(), frame.clone(), Some(generation))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(frame)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let machine = self.machine.clone();
        let signature = Some(self.meta.signature());
        let dumps = {
            // No command runs speculatively while the copy is taken, and every one that ran
            // has committed and been passed by the state machine (see the module docs).
            let _pause = machine.speculation.pause.write().await;
            machine.speculation.wait_settled().await;
            if machine.generation.load(Ordering::SeqCst) != self.generation {
                // `reset` released the wait: the store is being rebuilt, copy nothing.
                let e = AnyError::error("the state machine was reset during a snapshot build");
                return Err(StorageIOError::read_state_machine(e).into());
            }
            machine.dump(Instant::now())
        };
        let (meta, generation) = (self.meta.clone(), self.generation);
        tokio::task::spawn_blocking(move || Self::finish(&machine, meta, generation, dumps))
            .await
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), AnyError::error(e)))?
            .map_err(|e| StorageIOError::write_snapshot(signature, &e).into())
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
                // This member's leader ran these commands already: the store has the effects.
                EntryPayload::Normal(ref batch)
                    if self.speculation.passed(batch.origin, batch.seq) =>
                {
                    Applied::default()
                }
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
        // Between two applies: the meta is exactly the state at `last_applied`; the copy is
        // taken by the builder (see the module docs).
        let state = self.state().clone();
        let build = self.builds.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match state.last_applied {
            Some(last) => format!("{}-{}-{build}", last.leader_id, last.index),
            None => format!("--{build}"),
        };
        SnapshotBuilder {
            machine: self.clone(),
            meta: SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.membership,
                snapshot_id,
            },
            generation: self.generation.load(Ordering::SeqCst),
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
        let frame = snapshot.into_inner();
        let signature = Some(meta.signature());
        let (machine, meta) = (self.clone(), meta.clone());
        // The bytes came from a peer: a bad frame or image is a storage error, never a panic.
        tokio::task::spawn_blocking(move || machine.install(meta, frame))
            .await
            .map_err(|e| StorageIOError::read_snapshot(signature.clone(), AnyError::error(e)))?
            .map_err(|e| StorageIOError::read_snapshot(signature, &e).into())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let current = self.current().clone();
        Ok(current.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

fn file_error(path: &Path, source: FileError) -> SnapshotError {
    SnapshotError::File {
        path: PathBuf::from(path),
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests;
