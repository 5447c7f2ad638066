//! One shard's Raft group as this node sees it: the local member (its `Raft`, log and state
//! machine), the proposer that turns speculative writes into log entries, and what the
//! request path checks on every command (is this node the leader, is it ready, is its lease
//! valid).
//!
//! A write on the leader runs against the store at once; its effects go to the proposer's
//! queue (under the command's key locks, so the queue's order is the order the writes
//! happened) with a sequence number; the proposer drains the queue into as few log entries as
//! it can (group commit) and proposes them; the connection replies only once the state
//! machine has passed that sequence number, i.e. once a majority has the entry. A leader that
//! steps down with writes still unconfirmed cannot know which of them the group keeps: it
//! rebuilds the shard from what its log and snapshot say was committed (`Group::rebuild`).
//! See `Speculation` in `replication::types` for the counters.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use openraft::{BasicNode, ServerState};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::router::slot_of;
use crate::effect::Effect;
use crate::replication::slots::SlotSet;
use crate::replication::state_machine::Scope;
use crate::replication::types::Speculation;
use crate::replication::{BusNetwork, Groups, LogStore, Raft, StateMachine};
use crate::store::Store;

/// Command batches waiting for the proposer: `(origin, seq, effects)`.
type Pending = (u64, u64, Vec<Effect>);

/// The most effects one log entry carries (a bigger burst is split).
const MAX_ENTRY_EFFECTS: usize = 4096;

/// About the most bytes of keys and values one log entry carries, well under the bus's frame
/// limit (a single bigger write still goes alone).
const MAX_ENTRY_BYTES: usize = 4 << 20;

/// Log entries proposed and not yet committed, at most. While they are on their way, what
/// queues goes into the next entry: one entry, and one fsync per member, carries every write
/// of that window (group commit).
const IN_FLIGHT: usize = 2;

/// Pause before a leadership check that missed its quorum is tried again.
const CONFIRM_RETRY: Duration = Duration::from_millis(10);

/// The local member of one shard's group.
pub struct Group {
    /// The shard (0-based).
    pub shard: usize,
    /// This member's id (its node id).
    pub me: u64,
    raft: Mutex<Raft>,
    config: Arc<openraft::Config>,
    network: BusNetwork,
    log: LogStore,
    sm: StateMachine,
    /// The counters shared with the state machine.
    pub speculation: Arc<Speculation>,
    /// The proposer's queue; the mutex makes "next sequence number + enqueue" one step.
    queue: Mutex<mpsc::UnboundedSender<Pending>>,
    /// The leader's member id as last seen (0: none known).
    leader: AtomicU64,
    /// This member leads and has applied everything earlier terms committed.
    ready: AtomicBool,
    /// Until when a read on this leader is linearizable without asking the group: milliseconds
    /// on [`Group::clock`], renewed by every heartbeat a majority acknowledges.
    lease_until_ms: AtomicU64,
    /// One leadership check at a time (see [`Group::confirm_leadership`]).
    confirming: tokio::sync::Mutex<()>,
    /// When the latest successful leadership check began, microseconds on `epoch`.
    confirmed_from_us: AtomicU64,
    /// The current term.
    term: AtomicU64,
    /// The last log index applied.
    applied: AtomicU64,
    /// The last log index in the local log.
    last_log: AtomicU64,
    /// Members of the group with whether the leader hears from them (leader only).
    replication: Mutex<Vec<(u64, Option<u64>)>>,
    /// Rebuilds done (INFO replication).
    pub rebuilds: AtomicU64,
    /// Set when the node stops: the member's end is expected then.
    stopping: AtomicBool,
    epoch: Instant,
    lease: Duration,
    groups: Groups,
    /// A slot move out of this shard is copying: [`Group::submit`] notes the keys written.
    tracking: AtomicBool,
    /// The slots tracked and the keys written to them since tracking began.
    dirty: Mutex<Option<Noted>>,
    /// Held by a move driven out of this shard here, and by the reconciler while it plans and
    /// appends, so the two never interleave on the leader.
    pub mover: tokio::sync::Mutex<()>,
}

/// What [`Group::submit`] noted for a move out of the shard.
struct Noted {
    slots: SlotSet,
    keys: HashSet<Bytes>,
    /// The shard was flushed: the copy sent is stale.
    flushed: bool,
}

/// What [`Group::start`] needs.
pub struct Setup {
    /// The group's bus id: the shard (0-based), or the meta group's.
    pub shard: usize,
    /// This member's id (its node id).
    pub me: u64,
    /// `--cluster-node-timeout`.
    pub node_timeout: Duration,
    /// The keys its state machine owns.
    pub scope: Scope,
    /// The store it applies to.
    pub store: Arc<Store>,
    /// Its directory (log and snapshot).
    pub dir: std::path::PathBuf,
    /// Where its log's in-memory bytes are added up, and when it compacts
    /// (`memory::Budget::logs`).
    pub logs: Arc<crate::memory::Logs>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("shard", &self.shard)
            .field("leader", &self.leader.load(Ordering::Relaxed))
            .finish()
    }
}

/// What the request path needs to know about a shard right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This node leads and may run commands of the shard locally.
    Leader,
    /// This node leads but has not caught up with earlier terms yet.
    Starting,
    /// Another member leads.
    Follower(u64),
    /// No leader is known.
    Unknown,
}

impl Group {
    /// Starts the local member of a group: opens its log and state machine under `setup.dir`,
    /// starts its `Raft` and registers it with the bus. Bootstrapping is the caller's
    /// ([`Group::bootstrap`]).
    ///
    /// # Errors
    /// A message naming the directory or openraft's reason.
    pub async fn start(
        setup: Setup,
        network: BusNetwork,
        groups: Groups,
    ) -> Result<Arc<Group>, String> {
        let Setup {
            shard,
            me,
            node_timeout,
            scope,
            store,
            dir: group_dir,
            logs,
        } = setup;
        let timeout = node_timeout.as_millis() as u64;
        let config = openraft::Config {
            cluster_name: format!("minikv-group-{}", shard + 1),
            heartbeat_interval: (timeout / 5).max(10),
            election_timeout_min: timeout.max(20),
            election_timeout_max: (timeout * 2).max(40),
            install_snapshot_timeout: 10_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(50_000),
            max_in_snapshot_log_to_keep: 500,
            ..Default::default()
        }
        .validate()
        .map_err(|e| format!("raft configuration: {e}"))?;
        let config = Arc::new(config);
        let log = LogStore::open(group_dir.join("log"))
            .await
            .map_err(|e| format!("opening {}: {e}", group_dir.join("log").display()))?
            .counted_in(logs.bytes.clone());
        let speculation = Arc::new(Speculation::default());
        let sm = StateMachine::open(
            store,
            scope,
            speculation.clone(),
            group_dir.join("snapshot"),
        )
        .await
        .map_err(|e| format!("opening {}: {e}", group_dir.join("snapshot").display()))?
        .counted_in(logs.bytes.clone());
        let raft = Raft::new(me, config.clone(), network.clone(), log.clone(), sm.clone())
            .await
            .map_err(|e| format!("starting the raft member of shard {}: {e}", shard + 1))?;
        groups.add(shard as u64, raft.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let group = Arc::new(Group {
            shard,
            me,
            raft: Mutex::new(raft.clone()),
            config: config.clone(),
            network,
            log,
            sm,
            speculation,
            queue: Mutex::new(tx),
            leader: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            lease_until_ms: AtomicU64::new(0),
            confirming: tokio::sync::Mutex::new(()),
            confirmed_from_us: AtomicU64::new(0),
            term: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            last_log: AtomicU64::new(0),
            replication: Mutex::new(Vec::new()),
            rebuilds: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            epoch: Instant::now(),
            lease: Duration::from_millis(config.election_timeout_min / 2),
            groups,
            tracking: AtomicBool::new(false),
            dirty: Mutex::new(None),
            mover: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(propose(group.clone(), rx));
        tokio::spawn(watch(group.clone()));
        tokio::spawn(compact(group.clone(), logs));
        Ok(group)
    }

    /// Whether this member has never been part of the group (an empty log and no vote): a
    /// fresh cluster, or a node whose data directory was wiped.
    pub async fn pristine(&self) -> bool {
        self.raft().is_initialized().await.is_ok_and(|init| !init)
    }

    /// Makes this member ignore vote requests until it has caught up (it lost its disk).
    pub fn abstain_until_caught_up(&self) {
        self.groups.abstain(self.shard as u64, true);
    }

    /// Bootstraps the group with `members` (on its home node of a fresh group only: the
    /// caller checks that no peer has the group already).
    pub async fn bootstrap(&self, members: BTreeMap<u64, BasicNode>) {
        // NotAllowed means it is initialized already: nothing to do.
        if let Err(e) = self.raft().initialize(members).await {
            tracing::debug!(shard = self.shard + 1, "initialize: {e}");
        }
    }

    /// Starts noting the keys written to `slots` (a move out of them is copying).
    /// False (and nothing changes) when another move out of the shard is noting already: one
    /// move at a time per shard.
    pub fn track(&self, slots: SlotSet) -> bool {
        let mut dirty = self.dirty.lock().expect("group dirty lock poisoned");
        if dirty.is_some() {
            return false;
        }
        *dirty = Some(Noted {
            slots,
            keys: HashSet::new(),
            flushed: false,
        });
        self.tracking.store(true, Ordering::Release);
        true
    }

    /// Stops noting, and returns the keys written since [`Group::track`]; `None` when the
    /// shard was flushed meanwhile (the move must be called off: its copy is stale).
    pub fn untrack(&self) -> Option<HashSet<Bytes>> {
        self.tracking.store(false, Ordering::Release);
        let noted = self
            .dirty
            .lock()
            .expect("group dirty lock poisoned")
            .take()?;
        (!noted.flushed).then_some(noted.keys)
    }

    /// The local state machine.
    pub fn state_machine(&self) -> &StateMachine {
        &self.sm
    }

    /// Stops the member for good (node shutdown).
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        if let Err(e) = self.raft().shutdown().await {
            tracing::warn!(shard = self.shard + 1, "stopping the shard's member: {e}");
        }
    }

    /// The current `Raft` handle (replaced by a rebuild).
    pub fn raft(&self) -> Raft {
        self.raft.lock().expect("group raft lock poisoned").clone()
    }

    /// This member's role for the request path.
    pub fn role(&self) -> Role {
        let leader = self.leader.load(Ordering::Acquire);
        if leader == self.me {
            if self.ready.load(Ordering::Acquire) {
                Role::Leader
            } else {
                Role::Starting
            }
        } else if leader == 0 {
            Role::Unknown
        } else {
            Role::Follower(leader)
        }
    }

    /// Whether a read served locally now is linearizable: this node leads, is ready, and a
    /// majority acknowledged it recently enough that no other leader can have been elected.
    pub fn lease_valid(&self) -> bool {
        self.role() == Role::Leader && self.now_ms() < self.lease_until_ms.load(Ordering::Acquire)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Makes a read served here linearizable when the lease has lapsed: Raft's ReadIndex
    /// (openraft's `ensure_linearizable`: a heartbeat round a majority acknowledges, then the
    /// state machine applied up to the commit index it saw). Reads that arrive together share
    /// one round: a read waiting for another's round is covered by it when that round began
    /// after the read arrived, so a burst of reads costs one round, not one each. A round that
    /// misses its quorum (followers slow to answer under load) is tried again while this node
    /// leads, up to `limit`.
    ///
    /// # Errors
    /// This node stopped leading, or no round succeeded within `limit`: openraft's reason.
    pub async fn confirm_leadership(&self, limit: Duration) -> Result<(), String> {
        if self.lease_valid() {
            return Ok(());
        }
        let arrived = self.now_us();
        let deadline = Instant::now() + limit;
        let _one_round = self.confirming.lock().await;
        loop {
            if self.confirmed_from_us.load(Ordering::Acquire) > arrived || self.lease_valid() {
                return Ok(());
            }
            // Queued behind rounds that failed for longer than it may wait: answer now rather
            // than run one more round past the deadline.
            if Instant::now() >= deadline {
                return Err("leadership not confirmed in time".to_string());
            }
            let started = self.now_us();
            match self.raft().ensure_linearizable().await {
                Ok(_) => {
                    self.confirmed_from_us.fetch_max(started, Ordering::AcqRel);
                    return Ok(());
                }
                Err(e) if self.role() != Role::Leader || Instant::now() >= deadline => {
                    return Err(e.to_string());
                }
                Err(_) => tokio::time::sleep(CONFIRM_RETRY).await,
            }
        }
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Relaxed)
    }

    /// The last applied and last logged indexes.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.applied.load(Ordering::Relaxed),
            self.last_log.load(Ordering::Relaxed),
        )
    }

    /// For the leader: each member and the log index it has acknowledged (`None`: not heard
    /// from since this term began).
    pub fn replication(&self) -> Vec<(u64, Option<u64>)> {
        self.replication
            .lock()
            .expect("group replication lock poisoned")
            .clone()
    }

    /// Hands one command's (or transaction's) effects to the proposer. Called under the
    /// command's key locks. Returns `(origin, seq)`, what the connection waits for before
    /// replying.
    pub fn submit(&self, effects: &[Effect]) -> (u64, u64) {
        if self.tracking.load(Ordering::Acquire) {
            self.note(effects);
        }
        let queue = self.queue.lock().expect("group queue lock poisoned");
        let origin = self.speculation.origin.load(Ordering::Acquire);
        let seq = self.speculation.submitted.fetch_add(1, Ordering::AcqRel) + 1;
        // The proposer only stops with the runtime; nothing to tell anyone then.
        let _ = queue.send((origin, seq, effects.to_vec()));
        (origin, seq)
    }

    fn note(&self, effects: &[Effect]) {
        let mut dirty = self.dirty.lock().expect("group dirty lock poisoned");
        let Some(noted) = dirty.as_mut() else {
            return;
        };
        for e in effects {
            match (e.key(), e) {
                (Some(key), _) if noted.slots.contains(slot_of(key)) => {
                    noted.keys.insert(Bytes::copy_from_slice(key));
                }
                (_, Effect::FlushDb { .. } | Effect::FlushAll) => noted.flushed = true,
                _ => {}
            }
        }
    }

    /// The point a read that ran now must wait for: everything submitted before it.
    pub fn mark(&self) -> (u64, u64) {
        // Under the queue lock, so no submit is half done.
        let _queue = self.queue.lock().expect("group queue lock poisoned");
        (
            self.speculation.origin.load(Ordering::Acquire),
            self.speculation.submitted.load(Ordering::Acquire),
        )
    }

    /// Waits until batch `seq` of `origin` is committed and applied; false when the origin
    /// ended first (this node stepped down: the write's fate is unknown here) or `limit`
    /// passed.
    pub async fn confirmed(&self, origin: u64, seq: u64, limit: Duration) -> bool {
        let spec = &self.speculation;
        // The common case for reads and for a leader keeping up: no timer, no waiter.
        if spec.origin.load(Ordering::Acquire) == origin
            && spec.applied.load(Ordering::Acquire) >= seq
        {
            return true;
        }
        let wait = async {
            loop {
                let moved = spec.moved.notified();
                tokio::pin!(moved);
                moved.as_mut().enable();
                if spec.origin.load(Ordering::Acquire) != origin {
                    return false;
                }
                if spec.applied.load(Ordering::Acquire) >= seq {
                    return true;
                }
                moved.await;
            }
        };
        tokio::time::timeout(limit, wait).await.unwrap_or(false)
    }

    /// Waits up to `limit` while this node is becoming the shard's leader (elected, not yet
    /// caught up); returns the role then.
    pub async fn await_ready(&self, limit: Duration) -> Role {
        let deadline = Instant::now() + limit;
        loop {
            let role = self.role();
            if role != Role::Starting || Instant::now() >= deadline {
                return role;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits up to `limit` for this shard to have a leader; returns the role then.
    pub async fn await_leader(&self, limit: Duration) -> Role {
        let deadline = Instant::now() + limit;
        loop {
            let role = self.role();
            if matches!(role, Role::Leader | Role::Follower(_)) || Instant::now() >= deadline {
                return role;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// After stepping down with unconfirmed speculative writes: stops the member, puts the
    /// shard's keys back to the last snapshot, and starts the member again over the same log,
    /// so openraft re-applies what was committed and the new leader sends the rest.
    async fn rebuild(&self) {
        // No command runs here meanwhile: they check the role, which is no longer leader.
        // (Not the speculation pause: a snapshot build may hold it, waiting for writes this
        // reset is about to abandon.)
        self.ready.store(false, Ordering::Release);
        let old = self.raft();
        if let Err(e) = old.shutdown().await {
            tracing::warn!(
                shard = self.shard + 1,
                "stopping the member to rebuild: {e}"
            );
        }
        if let Err(e) = self.sm.reset().await {
            tracing::error!(shard = self.shard + 1, "rebuilding the shard failed: {e}");
            return;
        }
        match Raft::new(
            self.me,
            self.config.clone(),
            self.network.clone(),
            self.log.clone(),
            self.sm.clone(),
        )
        .await
        {
            Ok(raft) => {
                self.groups.add(self.shard as u64, raft.clone());
                *self.raft.lock().expect("group raft lock poisoned") = raft.clone();
                self.rebuilds.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    shard = self.shard + 1,
                    "stepped down with unconfirmed writes: shard rebuilt from its committed log"
                );
            }
            Err(e) => {
                tracing::error!(shard = self.shard + 1, "restarting the member failed: {e}")
            }
        }
    }
}

/// Drains the queue into log entries, in order. Entries of an origin that has ended are
/// dropped: their node stepped down and rebuilds the shard anyway.
async fn propose(group: Arc<Group>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut next: Option<Pending> = None;
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    loop {
        // Wait for a free slot first: writes queue meanwhile and go out together.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match next.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let (origin, mut seq, mut effects) = first;
        let mut bytes: usize = effects.iter().map(Effect::data_bytes).sum();
        while effects.len() < MAX_ENTRY_EFFECTS && bytes < MAX_ENTRY_BYTES {
            match rx.try_recv() {
                Ok((o, s, e)) if o == origin => {
                    seq = s;
                    bytes += e.iter().map(Effect::data_bytes).sum::<usize>();
                    effects.extend(e);
                }
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        if origin != group.speculation.origin.load(Ordering::Acquire) || origin == 0 {
            continue;
        }
        let batch = crate::replication::Batch {
            origin,
            seq,
            effects,
        };
        match group.raft().client_write_ff(batch).await {
            Ok(rx) => {
                let group = group.clone();
                tokio::spawn(async move {
                    // The slot is free again once the entry is committed (or failed).
                    let _slot = slot;
                    match rx.await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::debug!(shard = group.shard + 1, "write not committed: {e}")
                        }
                        Err(_) => tracing::debug!(shard = group.shard + 1, "write dropped"),
                    }
                });
            }
            Err(e) => tracing::debug!(shard = group.shard + 1, "proposing: {e}"),
        }
    }
}

/// How often [`compact`] weighs its group's log.
const COMPACT_CHECK: Duration = Duration::from_millis(100);

/// Keeps the group's log under [`Logs::compact_above`](crate::memory::Logs::compact_above)
/// when the node has a memory limit: past it, asks for a snapshot (after which openraft purges
/// the log but its last `max_in_snapshot_log_to_keep` entries), then waits for the log to
/// shrink (or a second) before asking again.
async fn compact(group: Arc<Group>, logs: Arc<crate::memory::Logs>) {
    let mut asked: Option<Instant> = None;
    loop {
        tokio::time::sleep(COMPACT_CHECK).await;
        if group.stopping.load(Ordering::Acquire) {
            return;
        }
        let Some(above) = logs.compact_above() else {
            continue;
        };
        let weight = group.log.bytes();
        if weight <= above {
            asked = None;
            continue;
        }
        if asked.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            continue;
        }
        asked = Some(Instant::now());
        if let Err(e) = group.raft().trigger().snapshot().await {
            tracing::warn!(shard = group.shard + 1, "compacting the log: {e}");
        }
    }
}

/// Follows the member's metrics (and, after a rebuild, the new member's) until the node
/// stops. A member that stops on its own (openraft's core failed: a storage error, or a bug)
/// is restarted from its disk, as a rebuild does, after a pause.
async fn watch(group: Arc<Group>) {
    loop {
        let raft = group.raft();
        if !follow(&group, raft).await {
            if group.stopping.load(Ordering::Acquire) {
                return;
            }
            tracing::error!(
                shard = group.shard + 1,
                "the shard's raft member stopped unexpectedly; restarting it in 1 s"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            if group.stopping.load(Ordering::Acquire) {
                return;
            }
        }
        if group.stopping.load(Ordering::Acquire) {
            return;
        }
        group.rebuild().await;
    }
}

/// Follows one `Raft`'s metrics: leader, term, readiness, lease. Starts a new origin when
/// this member becomes leader. Returns true when it stopped leading with writes unconfirmed
/// (the shard must be rebuilt), false when the member stopped.
async fn follow(group: &Arc<Group>, raft: Raft) -> bool {
    let mut metrics = raft.metrics();
    let mut leading = false;
    // Whether `m` was just published (a re-read on the tick is as old as its publication).
    let mut fresh = true;
    loop {
        let m = metrics.borrow_and_update().clone();
        let is_leader = m.state == ServerState::Leader;
        group.term.store(m.current_term, Ordering::Relaxed);
        group
            .applied
            .store(m.last_applied.map_or(0, |l| l.index), Ordering::Relaxed);
        group
            .last_log
            .store(m.last_log_index.unwrap_or(0), Ordering::Relaxed);
        match m.millis_since_quorum_ack {
            Some(ack) if fresh => {
                let until = (group.now_ms() + group.lease.as_millis() as u64).saturating_sub(ack);
                group.lease_until_ms.store(until, Ordering::Release);
            }
            Some(_) => {}
            None => group.lease_until_ms.store(0, Ordering::Release),
        }
        if let Some(r) = &m.replication {
            let mut list: Vec<(u64, Option<u64>)> =
                r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect();
            list.sort_unstable();
            *group
                .replication
                .lock()
                .expect("group replication lock poisoned") = list;
        }
        if is_leader && !leading {
            // A new term of leadership: a fresh origin before anything runs speculatively.
            group.speculation.renew();
            leading = true;
        }
        if !is_leader && leading {
            leading = false;
            group.ready.store(false, Ordering::Release);
            group.lease_until_ms.store(0, Ordering::Release);
            group
                .leader
                .store(m.current_leader.unwrap_or(0), Ordering::Release);
            if !group.speculation.settled() {
                return true;
            }
            group.speculation.renew();
        }
        // Ready once this term's first entry is applied: everything earlier terms committed
        // is in the store.
        let caught_up = m
            .last_applied
            .is_some_and(|l| l.leader_id.term == m.current_term);
        // A member that lost its disk votes again once it holds what the group committed up
        // to the current leader's term.
        if caught_up && m.current_leader.is_some() && group.groups.abstains(group.shard as u64) {
            group.groups.abstain(group.shard as u64, false);
            tracing::info!(
                shard = group.shard + 1,
                "caught up after losing its data: votes again"
            );
        }
        group.ready.store(is_leader && caught_up, Ordering::Release);
        group
            .leader
            .store(m.current_leader.unwrap_or(0), Ordering::Release);
        // Metrics arrive when something changes; the tick re-reads them anyway, so a state
        // that depends on time or on flags set from outside (abstaining) is seen.
        tokio::select! {
            changed = metrics.changed() => {
                if changed.is_err() {
                    return false;
                }
                fresh = true;
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => fresh = false,
        }
    }
}
