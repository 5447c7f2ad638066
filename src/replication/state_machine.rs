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

use super::slots::{GroupSlots, Slots, Target};
use super::snapshot::{self, FileError, SnapshotError};
pub use super::snapshot::{DbImage, EntryImage, Image};
use super::types::{Applied, NodeId, Speculation, TypeConfig};
use crate::client::router::slot_of;
use crate::effect::{ApplyError, Effect};
use crate::memory::Held;
use crate::store::value::dump;
use crate::store::{clock, Kind, Store};

/// The keys a group's state machine owns: every key, or the slots a group holds on this node
/// (see [`super::slots`]).
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every key: a store that holds a single group.
    All,
    /// Group `group` of a replicated cluster.
    Group {
        /// The group (shard, 0-based).
        group: usize,
        /// The node's slots, over the same store as the state machine's.
        slots: Arc<Slots>,
        /// What the group holds before its log says anything (a new cluster's share).
        genesis: GroupSlots,
    },
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
    /// Where a snapshot build adds the copy it holds while it runs (the node's memory left
    /// out of the eviction check, `memory::Logs`), as Redis leaves a fork's copy out.
    apart: Arc<AtomicU64>,
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

/// An image checked for [`StateMachine::replace`]: what the group holds (for a group scope)
/// and per database its live entries.
#[derive(Default)]
struct Loads {
    slots: Option<GroupSlots>,
    dbs: Vec<(usize, Vec<Checked>)>,
}

/// A group's copy: what it holds, and per database one dump per store shard.
type Dumps = (Option<GroupSlots>, Vec<(usize, Vec<Vec<u8>>)>);

/// One entry of an image, checked.
struct Checked {
    key: Bytes,
    kind: Kind,
    data: Bytes,
    deadline: Option<Instant>,
}

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
        Scope::All
    }

    /// Group `group` (0-based) among the `shards` shards a new cluster started with, over the
    /// node's `slots`.
    pub fn group(group: usize, shards: usize, slots: Arc<Slots>) -> Scope {
        Scope::Group {
            group,
            slots,
            genesis: GroupSlots::genesis(group, shards),
        }
    }

    /// Group `group` of a new cluster of `shards` shards, alone on `store` (tests: one
    /// state machine per store).
    pub fn standalone(store: &Arc<Store>, group: usize, shards: usize) -> Scope {
        Scope::group(group, shards, Slots::new(store.clone()))
    }

    /// The group's index (0 for [`Scope::All`]).
    pub fn index(&self) -> usize {
        match self {
            Scope::All => 0,
            Scope::Group { group, .. } => *group,
        }
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
        if let Scope::Group {
            group,
            slots,
            genesis,
        } = &scope
        {
            // A group new to the node holds its genesis share until its log or a snapshot
            // says otherwise; claiming it moves no key.
            let _switch = slots.switch.write().expect("slots switch poisoned");
            let mut guard = slots.lock();
            if !guard.knows(*group) {
                guard.replace(*group, genesis.clone(), |_, _| {});
            }
        }
        StateMachine {
            store,
            scope,
            speculation,
            dir: None,
            state: Arc::default(),
            current: Arc::default(),
            builds: Arc::default(),
            apart: Arc::default(),
            generation: Arc::default(),
        }
    }

    /// Adds each snapshot build's copy of the group's data to `gauge` while the build holds
    /// it (the node's memory left out of the eviction check, `memory::Logs`).
    pub fn counted_in(mut self, gauge: Arc<AtomicU64>) -> Self {
        self.apart = gauge;
        self
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
    pub fn scope(&self) -> &Scope {
        &self.scope
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
    /// held exclusively, as they do on the command path, so no reader sees them half done. In
    /// a group, flushes also hold the slots' switch (keys go).
    fn apply_batch(&self, batch: &[Effect], now: Instant) -> Applied {
        let alone = batch.iter().any(|e| {
            matches!(
                e,
                Effect::FlushDb { .. } | Effect::FlushAll | Effect::SwapDb { .. }
            )
        });
        let mut rejected = 0;
        let mut first = None;
        match &self.scope {
            Scope::All => {
                let _gate = alone.then(|| self.store.gate().exclusive());
                for effect in batch {
                    if let Err(why) = effect.apply(&self.store, now) {
                        rejected += 1;
                        first.get_or_insert(Rejection::NoSuchDb(why_db(why)));
                    }
                }
            }
            Scope::Group { group, slots, .. } => {
                // The switch before the gate: the request path takes them in that order. Slot
                // changes need neither: the slots whose keys they move or drop are served by
                // no command meanwhile (frozen or importing, and a group waiting for a slot is
                // its authority only once its keys are in), so the node's other slots go on.
                let _switch = alone.then(|| slots.switch.write().expect("slots switch poisoned"));
                let _gate = alone.then(|| self.store.gate().exclusive());
                let mut guard = slots.lock();
                for effect in batch {
                    let result = match (effect.key(), effect) {
                        (Some(key), _) => match guard.target(*group, slot_of(key)) {
                            Target::Main => effect.apply(&self.store, now).map_err(no_such),
                            Target::Staging(staging) => {
                                effect.apply(&staging, now).map_err(no_such)
                            }
                            Target::None => Err(Rejection::OtherGroup),
                        },
                        (None, Effect::FlushDb { .. } | Effect::FlushAll) => {
                            // The group's keys only: every slot it holds starts empty again.
                            let held = guard.group_slots(*group);
                            guard.replace(*group, held, |_, _| {});
                            Ok(())
                        }
                        (None, Effect::SwapDb { .. }) => Err(Rejection::SwapInGroup),
                        (None, Effect::Slots(control)) => {
                            guard.control(*group, control);
                            Ok(())
                        }
                        // Every keyed effect has a key.
                        (None, _) => Ok(()),
                    };
                    if let Err(why) = result {
                        rejected += 1;
                        first.get_or_insert(why);
                    }
                }
            }
        }
        if let Some(first) = first {
            tracing::warn!(
                rejected,
                ?first,
                group = self.scope.index(),
                "effects this member cannot apply: a database past its --databases, a key of \
                 a slot the group does not hold, or SWAPDB in a group"
            );
        }
        Applied { rejected }
    }

    /// Copies the group's live entries: per database that has any, one dump per shard, and
    /// what the group holds. Taken with the gate shared, as the snapshot task does: a
    /// transaction is wholly in or out.
    fn dump(&self, now: Instant) -> Dumps {
        let _gate = self.store.gate().shared(u64::MAX);
        let keep = |(_, shards): &(usize, Vec<Vec<u8>>)| shards.iter().any(|d| !d.is_empty());
        match &self.scope {
            Scope::All => (
                None,
                self.store
                    .dbs()
                    .iter()
                    .enumerate()
                    .map(|(i, db)| (i, db.dump(now)))
                    .filter(keep)
                    .collect(),
            ),
            Scope::Group { group, slots, .. } => {
                // Held throughout: no slot change or effect of any group lands meanwhile.
                let guard = slots.lock();
                let held = guard.group_slots(*group);
                let staging = guard.staging(*group);
                let mut dumps: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
                for (i, db) in self.store.dbs().iter().enumerate() {
                    let mut shards =
                        db.dump_matching(now, |k| slots.serving(slot_of(k)).group == Some(*group));
                    if let Some(st) = staging.as_ref().and_then(|st| st.db(i)) {
                        shards.extend(st.dump(now));
                    }
                    dumps.push((i, shards));
                }
                (Some(held), dumps.into_iter().filter(keep).collect())
            }
        }
    }

    /// Checks every entry of `image` for [`StateMachine::replace`]; nothing in the store
    /// changes.
    fn prepare(&self, image: Image, now: Instant) -> Result<Loads, SnapshotError> {
        let slots = match &self.scope {
            Scope::All => None,
            Scope::Group { genesis, .. } => Some(image.slots.unwrap_or_else(|| genesis.clone())),
        };
        let mut loads = Loads {
            dbs: Vec::with_capacity(image.dbs.len()),
            slots: None,
        };
        for DbImage { db: index, entries } in image.dbs {
            if self.store.db(index).is_none() {
                tracing::warn!(
                    db = index,
                    "snapshot names a database this member does not have"
                );
                continue;
            }
            let mut checked = Vec::with_capacity(entries.len());
            for e in entries {
                let kind = Kind::from_name(e.kind.as_bytes())
                    .ok_or_else(|| SnapshotError::Refused(format!("unknown type {:?}", e.kind)))?;
                if kind != Kind::String {
                    // Checked here, so a damaged image is refused before anything is replaced.
                    dump::load(kind, &e.data).map_err(|err| {
                        SnapshotError::Refused(format!(
                            "key {:?}: {err}",
                            String::from_utf8_lossy(&e.key)
                        ))
                    })?;
                }
                if let Some(held) = &slots {
                    if !held.held.contains(slot_of(&e.key)) {
                        return Err(SnapshotError::Refused(format!(
                            "key {:?} is in slot {}, which group {} does not hold",
                            String::from_utf8_lossy(&e.key),
                            slot_of(&e.key),
                            self.scope.index() + 1,
                        )));
                    }
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
                checked.push(Checked {
                    key: e.key,
                    kind,
                    data: e.data,
                    deadline,
                });
            }
            loads.dbs.push((index, checked));
        }
        loads.slots = slots;
        Ok(loads)
    }

    /// Decodes a frame and prepares its image.
    fn prepare_frame(&self, frame: &[u8]) -> Result<Loads, SnapshotError> {
        self.prepare(snapshot::decode(frame)?, Instant::now())
    }

    /// Replaces the group's keys with `loads` (none: back to the state before any entry),
    /// with the gate held exclusively: readers see the old contents or the new, never a mix.
    fn replace(&self, loads: Option<Loads>) {
        let load_into = |loads: &Loads, store: &Store, keep: &dyn Fn(&[u8]) -> bool| {
            for (index, entries) in &loads.dbs {
                let Some(db) = store.db(*index) else {
                    continue;
                };
                let mut by_shard: Vec<Vec<_>> = (0..db.shard_count()).map(|_| Vec::new()).collect();
                for e in entries.iter().filter(|e| keep(&e.key)) {
                    // Every value was decoded once already when the image was checked.
                    match db.prepare(&e.key, e.kind, &e.data, e.deadline) {
                        Ok((shard, prepared)) => {
                            if let Some(list) = by_shard.get_mut(shard) {
                                list.push(prepared);
                            }
                        }
                        Err(err) => tracing::error!(%err, "a checked value does not decode"),
                    }
                }
                db.load(by_shard);
            }
        };
        match &self.scope {
            Scope::All => {
                let _gate = self.store.gate().exclusive();
                for db in self.store.dbs() {
                    db.clear();
                }
                if let Some(loads) = &loads {
                    load_into(loads, &self.store, &|_| true);
                }
            }
            Scope::Group {
                group,
                slots,
                genesis,
            } => {
                let _switch = slots.switch.write().expect("slots switch poisoned");
                let _gate = self.store.gate().exclusive();
                let loads = loads.unwrap_or_default();
                let held = loads.slots.clone().unwrap_or_else(|| genesis.clone());
                slots.lock().replace(*group, held, |store, keep| {
                    load_into(&loads, store, &|k| keep(slot_of(k)))
                });
            }
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
            // A group with no snapshot starts from its genesis share of the slots.
            if matches!(self.scope, Scope::Group { .. }) {
                self.replace(None);
            }
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
        (slots, dumps): Dumps,
    ) -> Result<Snapshot<TypeConfig>, SnapshotError> {
        // Borrowed from the dumps: the build holds one copy of the group's data, not two.
        let image = snapshot::borrow(slots.as_ref(), &dumps);
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
            // A scan of the group's keys: off the executor (the pause is still held).
            let copier = machine.clone();
            tokio::task::spawn_blocking(move || copier.dump(Instant::now()))
                .await
                .map_err(|e| StorageIOError::read_state_machine(AnyError::error(e)))?
        };
        let (meta, generation) = (self.meta.clone(), self.generation);
        let held: usize = dumps.1.iter().flat_map(|(_, d)| d).map(Vec::len).sum();
        let apart = Held::add(machine.apart.clone(), held as u64);
        tokio::task::spawn_blocking(move || {
            let built = Self::finish(&machine, meta, generation, dumps);
            drop(apart);
            built
        })
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
                // A slot change scans the store (its keys move or go): off the executor, so
                // the node's heartbeats and requests go on meanwhile.
                EntryPayload::Normal(ref batch)
                    if batch.effects.iter().any(|e| matches!(e, Effect::Slots(_))) =>
                {
                    let machine = self.clone();
                    let effects = batch.effects.clone();
                    tokio::task::spawn_blocking(move || machine.apply_batch(&effects, now))
                        .await
                        .map_err(|e| StorageIOError::apply(entry.log_id, AnyError::error(e)))?
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

fn no_such(e: ApplyError) -> Rejection {
    Rejection::NoSuchDb(why_db(e))
}

fn why_db(e: ApplyError) -> usize {
    match e {
        ApplyError::NoSuchDb(db) => db,
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
