//! Moving slots between shards online (issue 11), the shape of Valkey 9's atomic slot
//! migration, driven by the source shard's leader for one `CLUSTER MOVESLOTS` batch:
//!
//! 1. **Record** the move in the table (`BeginMove`): from now on neither shard's leader gives
//!    up on the slots by itself.
//! 2. **Import**: the target's log gets `Import(slots)`; its members hold the slots but do
//!    not serve them.
//! 3. **Copy** while the source keeps serving: the source's leader notes every key written to
//!    the slots from here on ([`Group::track`]), dumps the slots' keys (values, types, TTLs as
//!    absolute deadlines) and appends them to the target's log in zstd-compressed chunks.
//! 4. **Freeze**: the source stops starting commands on the slots (reads and writes: a read
//!    on the source after the switch could miss a write the target took), waits until
//!    every write that ran before is committed, and appends `Freeze(slots)` to its own log, so
//!    a new leader keeps them frozen. Its entry's term must be the one the copy started in:
//!    otherwise another leader may have taken writes the notes missed, and the move is
//!    called off.
//! 5. **Delta**: the keys noted since the copy began are sent again as they are now (or as
//!    deleted): the target now has exactly the source's committed slots.
//! 6. **Commit**: one table change (`CommitMove`) gives the slots to the target: this is the
//!    moment the move happens, decided by the meta group alone, so a slot is never owned by
//!    two shards or by none.
//! 7. **Finish**: the target's log gets `Activate(slots)` (it serves them), then the
//!    source's `Release(slots)` (its members drop the keys).
//!
//! Anything failing before the commit calls the move off (`CancelMove`, then `Unfreeze` at
//! the source and `Abort` at the target). A driver that dies leaves the table to say what
//! happened, and [`reconcile`], which every shard leader runs, finishes the job: a slot the
//! table gave away is released, a slot the table gave to this shard is activated, an import
//! no move stands for is aborted, a freeze no move stands for is lifted, and a move whose
//! driver is gone for [`ORPHAN_AFTER`] is cancelled. Cancel and commit are both
//! compare-and-set table changes on the move's record, so exactly one of them wins.

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::group::{Group, Role};
use super::route::COMMIT_WAIT;
use super::table::{Change, Move, Table};
use super::{Answer, Call, Cluster, CALL_TIMEOUT};
use crate::client::router::slot_of;
use crate::effect::{Effect, SlotControl};
use crate::replication::slots::SlotSet;
use crate::replication::Batch;
use crate::store::value::dump;
use crate::store::{clock, dump_entries};

/// What one move copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveStats {
    /// Slots moved.
    pub slots: u64,
    /// Keys copied (the delta's included).
    pub keys: u64,
    /// Bytes of keys and values copied.
    pub bytes: u64,
    /// Bytes sent to the target (compressed).
    pub wire_bytes: u64,
    /// How long the move took.
    pub ms: u64,
}

/// A move out of a shard this node leads, driven elsewhere, is cancelled after this long: its
/// driver was the shard's previous leader, which died or lost its leadership. Cancelling a
/// driver that is in fact still going is safe (commit and cancel are both compare-and-set on
/// the move's record: if the commit wins, the slots are released instead), so the grace is
/// only long enough for a commit under way to land, and the slots are not frozen for long.
pub const ORPHAN_AFTER: Duration = Duration::from_secs(3);

/// About the most bytes of keys and values one import chunk carries.
const CHUNK_BYTES: usize = 1 << 20;

/// The most bytes a received import chunk may decompress to.
const MAX_CHUNK_BYTES: u64 = 64 << 20;

/// Moves `m`'s slots, on the leader of its source shard: the answer to a [`Call::Move`].
pub async fn drive(cluster: &Arc<Cluster>, m: Move) -> Answer {
    let Some(group) = cluster.group(m.from).filter(|g| g.role() == Role::Leader) else {
        return Answer::NotLeader(cluster.leader_of(m.from));
    };
    // One move at a time out of this shard here, and no reconciling meanwhile.
    let _mover = group.mover.lock().await;
    let id = fastrand::u64(1..);
    cluster
        .moves
        .lock()
        .expect("moves lock poisoned")
        .0
        .insert(id);
    let started = Instant::now();
    let result = run(cluster, &group, &m, id).await;
    cluster
        .moves
        .lock()
        .expect("moves lock poisoned")
        .0
        .remove(&id);
    match result {
        Ok(mut stats) => {
            stats.ms = started.elapsed().as_millis() as u64;
            tracing::info!(
                from = m.from + 1,
                to = m.to + 1,
                slots = stats.slots,
                keys = stats.keys,
                "slots moved"
            );
            Answer::Moved(stats)
        }
        Err(e) => Answer::Failed(e),
    }
}

async fn run(
    cluster: &Arc<Cluster>,
    group: &Arc<Group>,
    m: &Move,
    id: u64,
) -> Result<MoveStats, String> {
    let mut table = cluster.table();
    if m.slots.iter().any(|s| table.owner(*s) != m.from) {
        // This node may not have seen the last move yet: the meta leader's table decides.
        if let Some(fresh) = cluster.refresh_table().await {
            table = fresh;
        }
    }
    if let Some(s) = m.slots.iter().find(|s| table.owner(**s) != m.from) {
        return Err(format!(
            "ERR slot {s} is not owned by shard {} (it is shard {}'s)",
            m.from + 1,
            table.owner(*s) + 1
        ));
    }
    let held = cluster.slots.held(m.from);
    for s in &m.slots {
        let serving = cluster.slots.serving(*s);
        if !held.held.contains(*s)
            || held.importing.contains(*s)
            || held.frozen.contains(*s)
            || serving.group != Some(m.from)
        {
            return Err(format!(
                "TRYAGAIN slot {s} is not ready to move on shard {}'s leader",
                m.from + 1
            ));
        }
    }
    // Noting starts before anything else, in the term the freeze must be in. A ready leader
    // only: one elected again may not have applied what another leader committed meanwhile.
    let term = group.term();
    if group.role() != Role::Leader {
        return Err("TRYAGAIN the source's leader is not ready".into());
    }
    if !group.track(m.slots.iter().copied().collect()) {
        return Err(format!(
            "TRYAGAIN a move out of shard {} is under way",
            m.from + 1
        ));
    }
    if let Err(e) = cluster.change_table(Change::BeginMove(id, m.clone())).await {
        group.untrack();
        return Err(e);
    }
    let mut stats = MoveStats {
        slots: m.slots.len() as u64,
        ..MoveStats::default()
    };
    match copy_and_switch(cluster, group, m, id, term, &mut stats).await {
        Ok(()) => Ok(stats),
        Err(e) => {
            group.untrack();
            if group.role() == Role::Leader {
                call_off(cluster, m, id).await;
            } else {
                // A deposed driver's late Unfreeze or Abort could land in a later move of the
                // same slots: the shards' leaders reconcile this one instead.
                let _ = cluster.change_table(Change::CancelMove(id)).await;
            }
            Err(e)
        }
    }
}

async fn copy_and_switch(
    cluster: &Arc<Cluster>,
    group: &Arc<Group>,
    m: &Move,
    id: u64,
    term: u64,
    stats: &mut MoveStats,
) -> Result<(), String> {
    let set: SlotSet = m.slots.iter().copied().collect();
    control(cluster, m.to, SlotControl::Import(m.slots.clone())).await?;
    // The copy: what the store holds now, speculative writes included (the delta and the
    // term check below make up for any of them the group loses). A scan of the whole store:
    // off the executor.
    let store = cluster.slots.store().clone();
    let scan = set.clone();
    let effects = tokio::task::spawn_blocking(move || copy_of(&store, &scan))
        .await
        .map_err(|e| format!("TRYAGAIN copying the slots: {e}"))?;
    send(cluster, m, id, effects, stats).await?;
    if group.term() != term {
        return Err("TRYAGAIN the source's leader changed during the copy".into());
    }
    // Freeze: no command starts on the slots here from now on; everything that ran before
    // is committed before the Freeze entry is proposed.
    cluster.slots.freeze_now(m.from, &m.slots);
    let (origin, seq) = group.mark();
    if !group.confirmed(origin, seq, COMMIT_WAIT).await {
        return Err("TRYAGAIN the source's writes did not commit".into());
    }
    let frozen = group
        .raft()
        .client_write(Batch::of(vec![Effect::Slots(SlotControl::Freeze(
            m.slots.clone(),
        ))]))
        .await
        .map_err(|e| format!("TRYAGAIN freezing the slots: {e}"))?;
    if frozen.log_id.leader_id.term != term || group.role() != Role::Leader {
        return Err("TRYAGAIN the source's leader changed during the copy".into());
    }
    // The delta: every key written since the copy began, as it is now.
    let Some(dirty) = group.untrack() else {
        return Err(format!(
            "TRYAGAIN shard {} was flushed during the move",
            m.from + 1
        ));
    };
    let now = Instant::now();
    let mut delta = Vec::with_capacity(dirty.len());
    if let Some(db) = cluster.slots.store().db(0) {
        for key in dirty {
            let mut shard = db.shard(&key);
            let effect = match (shard.value(&key, now), shard.deadline(&key, now)) {
                (Some(value), Some(deadline)) => Effect::Put {
                    db: 0,
                    key,
                    value,
                    expires_at_ms: deadline.map(clock::unix_ms_at),
                },
                _ => Effect::Del { db: 0, key },
            };
            delta.push(effect);
        }
    }
    send(cluster, m, id, delta, stats).await?;
    // The target must still be importing every slot (nothing called its import off).
    match cluster
        .call_leader(m.to, &Call::Importing(m.to, m.slots.clone()), CALL_TIMEOUT)
        .await?
    {
        Answer::Done => {}
        Answer::Failed(e) => return Err(e),
        other => return Err(format!("TRYAGAIN unexpected answer {other:?}")),
    }
    if let Err(e) = cluster.change_table(Change::CommitMove(id)).await {
        // The answer may have been lost after the change: the table says.
        let committed = cluster
            .refresh_table()
            .await
            .is_some_and(|t| m.slots.iter().all(|s| t.owner(*s) == m.to));
        if !committed {
            return Err(e);
        }
    }
    finish(cluster, m).await;
    Ok(())
}

/// After the commit: the target serves the slots, then the source drops them. The target
/// goes first: the source serves nothing of them any more (they are frozen there), and
/// dropping them scans its store, which the slots' clients need not wait for. Best effort:
/// the shards' leaders [`reconcile`] anything left.
async fn finish(cluster: &Arc<Cluster>, m: &Move) {
    if let Err(e) = control(cluster, m.to, SlotControl::Activate(m.slots.clone())).await {
        tracing::warn!(shard = m.to + 1, "activating moved slots: {e}");
    }
    let release = SlotControl::Release {
        slots: m.slots.clone(),
        to: m.to,
    };
    if let Err(e) = control(cluster, m.from, release).await {
        tracing::warn!(shard = m.from + 1, "releasing moved slots: {e}");
    }
}

/// Calls a move off after a failure: cancels its record (unless it committed after all, then
/// finishes it), lifts the freeze and aborts the import.
async fn call_off(cluster: &Arc<Cluster>, m: &Move, id: u64) {
    if cluster.change_table(Change::CancelMove(id)).await.is_err() {
        let Some(table) = cluster.refresh_table().await else {
            // No meta leader to say whether it committed: the reconcilers will finish it.
            return;
        };
        if m.slots.iter().all(|s| table.owner(*s) == m.to) {
            finish(cluster, m).await;
            return;
        }
        if table.moves.contains_key(&id) {
            // Neither committed nor cancelled: the reconcilers will.
            return;
        }
    }
    if let Err(e) = control(cluster, m.from, SlotControl::Unfreeze(m.slots.clone())).await {
        tracing::warn!(
            shard = m.from + 1,
            "unfreezing slots after a failed move: {e}"
        );
    }
    if let Err(e) = control(cluster, m.to, SlotControl::Abort(m.slots.clone())).await {
        tracing::warn!(
            shard = m.to + 1,
            "aborting an import after a failed move: {e}"
        );
    }
}

/// Appends a slot change to `shard`'s log through its leader.
async fn control(cluster: &Arc<Cluster>, shard: usize, control: SlotControl) -> Result<(), String> {
    match cluster
        .append_here(shard, vec![Effect::Slots(control.clone())])
        .await
    {
        Ok(()) => return Ok(()),
        Err(Some(e)) => return Err(e),
        Err(None) => {}
    }
    match cluster
        .call_leader(shard, &Call::Control(shard, control), CALL_TIMEOUT)
        .await?
    {
        Answer::Done => Ok(()),
        Answer::Failed(e) => Err(e),
        other => Err(format!("TRYAGAIN unexpected answer {other:?}")),
    }
}

/// Sends copied keys to `shard`'s leader in compressed chunks.
async fn send(
    cluster: &Arc<Cluster>,
    m: &Move,
    id: u64,
    effects: Vec<Effect>,
    stats: &mut MoveStats,
) -> Result<(), String> {
    let shard = m.to;
    let mut chunk = Vec::new();
    let mut bytes = 0;
    let total = effects.len();
    for (i, effect) in effects.into_iter().enumerate() {
        bytes += effect.data_bytes();
        chunk.push(effect);
        if bytes >= CHUNK_BYTES || i + 1 == total {
            let raw = postcard::to_allocvec(&chunk).map_err(|e| format!("ERR encoding: {e}"))?;
            let packed = zstd::bulk::compress(&raw, 1).map_err(|e| format!("ERR zstd: {e}"))?;
            stats.keys += chunk.len() as u64;
            stats.bytes += bytes as u64;
            stats.wire_bytes += packed.len() as u64;
            match cluster
                .call_leader(shard, &Call::Import(shard, id, packed), CALL_TIMEOUT)
                .await?
            {
                Answer::Done => {}
                Answer::Failed(e) => return Err(e),
                other => return Err(format!("TRYAGAIN unexpected answer {other:?}")),
            }
            chunk.clear();
            bytes = 0;
        }
    }
    Ok(())
}

/// On the target's leader: the effects of an import chunk, appended to its log.
pub async fn import(cluster: &Arc<Cluster>, shard: usize, id: u64, packed: &[u8]) -> Answer {
    let mut raw = Vec::new();
    let decoded = zstd::stream::Decoder::new(packed)
        .map_err(|e| e.to_string())
        .and_then(|d| {
            d.take(MAX_CHUNK_BYTES)
                .read_to_end(&mut raw)
                .map_err(|e| e.to_string())
        })
        .and_then(|_| postcard::from_bytes::<Vec<Effect>>(&raw).map_err(|e| e.to_string()));
    let effects = match decoded {
        Ok(e) => e,
        Err(e) => return Answer::Failed(format!("ERR unreadable import chunk: {e}")),
    };
    // Chunks of a move the table no longer stands for (a driver that lost the race with a
    // cancel, still sending) must not land in a later move of the same slots.
    let mut table = cluster.table();
    if table.moves.get(&id).is_none_or(|m| m.to != shard) {
        match cluster.refresh_table().await {
            Some(fresh) => table = fresh,
            None => return Answer::Failed("TRYAGAIN no meta leader to check the move".into()),
        }
    }
    let Some(m) = table.moves.get(&id).filter(|m| m.to == shard) else {
        return Answer::Failed(format!(
            "TRYAGAIN move {id} into shard {} is over",
            shard + 1
        ));
    };
    let held = cluster.slots.held(shard);
    let foreign = effects.iter().any(|e| match e.key() {
        Some(key) => {
            let slot = slot_of(key);
            !held.importing.contains(slot) || !m.slots.contains(&slot)
        }
        None => true,
    });
    if foreign {
        return Answer::Failed(format!(
            "ERR import chunk names keys of slots shard {} is not importing",
            shard + 1
        ));
    }
    match cluster.append_here(shard, effects).await {
        Ok(()) => Answer::Done,
        Err(None) => Answer::NotLeader(cluster.leader_of(shard)),
        Err(Some(e)) => Answer::Failed(e),
    }
}

/// On the target's leader, before a move commits: whether it still imports every slot.
pub fn importing(cluster: &Arc<Cluster>, shard: usize, slots: &[u16]) -> Answer {
    if cluster
        .group(shard)
        .is_none_or(|g| g.role() != Role::Leader)
    {
        return Answer::NotLeader(cluster.leader_of(shard));
    }
    let held = cluster.slots.held(shard);
    match slots.iter().find(|s| !held.importing.contains(**s)) {
        None => Answer::Done,
        Some(s) => Answer::Failed(format!(
            "TRYAGAIN shard {} no longer imports slot {s}",
            shard + 1
        )),
    }
}

/// On a slot change for a shard this node leads: appends it.
pub async fn control_here(cluster: &Arc<Cluster>, shard: usize, control: SlotControl) -> Answer {
    match cluster
        .append_here(shard, vec![Effect::Slots(control)])
        .await
    {
        Ok(()) => Answer::Done,
        Err(None) => Answer::NotLeader(cluster.leader_of(shard)),
        Err(Some(e)) => Answer::Failed(e),
    }
}

/// On the leader of `group`'s shard: brings what the group holds in line with the table (see
/// the module docs).
pub async fn reconcile(cluster: &Arc<Cluster>, group: &Arc<Group>, table: &Table) {
    // A move driven here owns the shard's slot changes until it ends.
    let Ok(_mover) = group.mover.try_lock() else {
        return;
    };
    let shard = group.shard;
    let held = cluster.slots.held(shard);
    let mut planned = steps_for(shard, &held, table);
    let nothing = |p: &Steps| p.0.is_empty() && p.1.is_empty() && p.2.is_empty() && p.3.is_empty();
    if !nothing(&planned) {
        // Acting on a table this node has not caught up with could undo a move (a slot
        // that moved away and back): decide on the meta group leader's table only.
        planned = match cluster.refresh_table().await {
            Some(fresh) => steps_for(shard, &held, &fresh),
            None => return,
        };
    }
    let (release, activate, abort, unfreeze) = planned;
    let mut steps: Vec<SlotControl> = Vec::new();
    if !activate.is_empty() {
        steps.push(SlotControl::Activate(activate));
    }
    if !abort.is_empty() {
        steps.push(SlotControl::Abort(abort));
    }
    if !unfreeze.is_empty() {
        steps.push(SlotControl::Unfreeze(unfreeze));
    }
    steps.extend(
        release
            .into_iter()
            .map(|(to, slots)| SlotControl::Release { slots, to }),
    );
    for step in steps {
        tracing::info!(
            shard = shard + 1,
            ?step,
            "finishing a slot move the table decided"
        );
        if let Err(e) = cluster.append_here(shard, vec![Effect::Slots(step)]).await {
            tracing::debug!(shard = shard + 1, "reconciling slots: {e:?}");
        }
    }
    // Moves out of this shard whose driver is not here: cancelled once they look orphaned.
    let now = Instant::now();
    let orphans: Vec<u64> = {
        let mut moves = cluster.moves.lock().expect("moves lock poisoned");
        let (driving, seen) = &mut *moves;
        seen.retain(|id, _| table.moves.contains_key(id));
        table
            .moves
            .iter()
            .filter(|(id, m)| m.from == shard && !driving.contains(id))
            .filter_map(|(id, _)| {
                let first = *seen.entry(*id).or_insert(now);
                (now - first >= ORPHAN_AFTER).then_some(*id)
            })
            .collect()
    };
    for id in orphans {
        tracing::warn!(
            shard = shard + 1,
            id,
            "cancelling a slot move whose driver is gone"
        );
        if let Err(e) = cluster.change_table(Change::CancelMove(id)).await {
            tracing::debug!("cancelling move {id}: {e}");
        }
    }
}

/// Releases by target shard, then the slots to activate, abort and unfreeze.
type Steps = (
    std::collections::BTreeMap<usize, Vec<u16>>,
    Vec<u16>,
    Vec<u16>,
    Vec<u16>,
);

/// What `shard`'s leader should append so what it holds matches `table`: releases by
/// target, activations, aborts, unfreezes.
fn steps_for(shard: usize, held: &crate::replication::slots::GroupSlots, table: &Table) -> Steps {
    let mut release: std::collections::BTreeMap<usize, Vec<u16>> = Default::default();
    let (mut activate, mut abort, mut unfreeze) = (Vec::new(), Vec::new(), Vec::new());
    for s in held.held.iter() {
        let owner = table.owner(s);
        let moving = table.moving(s);
        if held.importing.contains(s) {
            if owner == shard {
                activate.push(s);
            } else if moving.is_none_or(|(_, m)| m.to != shard) {
                abort.push(s);
            }
        } else if owner != shard {
            release.entry(owner).or_default().push(s);
        } else if held.frozen.contains(s) && moving.is_none() {
            unfreeze.push(s);
        }
    }
    (release, activate, abort, unfreeze)
}

/// `Put`s of every live key of `set`'s slots in `store` (database 0, the cluster's only one).
fn copy_of(store: &crate::store::Store, set: &SlotSet) -> Vec<Effect> {
    let now = Instant::now();
    let mut effects = Vec::new();
    if let Some(db) = store.db(0) {
        for dump in db.dump_matching(now, |k| set.contains(slot_of(k))) {
            for e in dump_entries(&dump) {
                // The dump was written by this very store a moment ago.
                match dump::load(e.kind, e.data) {
                    Ok(value) => effects.push(Effect::Put {
                        db: 0,
                        key: Bytes::copy_from_slice(e.key),
                        value,
                        expires_at_ms: e.deadline.map(clock::unix_ms_at),
                    }),
                    Err(err) => tracing::error!(%err, "a value to copy does not decode"),
                }
            }
        }
    }
    effects
}
