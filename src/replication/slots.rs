//! Which group's data a node's store holds for each slot (issue 11).
//!
//! A node has one [`Store`] shared by every group it is a member of, and a slot moves from
//! one group to another over time; a node is often a member of both (with three replicas on
//! four nodes, most are). Two groups must never write the same keys of one store, so every
//! slot has at most one *authority* on a node: the group whose copy of the slot is the one in
//! the store. Another group holding the slot on the same node (the target of a move whose
//! source has not released it here yet) keeps its copy in a *staging* store of its own; when
//! the authority releases the slot, the next group waiting for it takes over and its staged
//! keys move into the store. Each group's state machine routes its per-key effects with
//! [`SlotsGuard::target`]: into the store, into its staging store, or nowhere (a key of a
//! slot it does not hold).
//!
//! What a group holds is replicated state ([`GroupSlots`], in the group's snapshots): the
//! slots it holds, which of them it is still importing (not served yet), and which are
//! frozen (a move is finishing: not served either). [`SlotControl`] entries in the group's
//! log change it. A group's leader serves a slot only when [`Slots::serves`] says the slot's authority
//! here is that group, the import is over, and the slot is not frozen; it holds
//! [`Slots::switch`] for reading while it checks and runs the command. Freezing a slot on the
//! leader ([`Slots::freeze_now`]) and wiping a group's keys (a flush, a snapshot installed)
//! hold it for writing, so no command runs across them. Moving or dropping a slot's keys
//! needs no such pause: nothing serves that slot meanwhile (it is frozen or importing, and a
//! group waiting for it becomes its authority only once its keys are in).
//!
//! This module knows the store and slots, never the cluster's table or the network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::client::router::{slot_of, SLOTS};
use crate::effect::SlotControl;
use crate::store::{dump_entries, Store};

/// A set of slots (a bitmap of [`SLOTS`] bits).
#[derive(Clone, PartialEq, Eq)]
pub struct SlotSet {
    words: Vec<u64>,
}

impl Default for SlotSet {
    fn default() -> Self {
        SlotSet {
            words: vec![0; usize::from(SLOTS).div_ceil(64)],
        }
    }
}

impl std::fmt::Debug for SlotSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotSet({} slots: {:?})", self.len(), self.ranges())
    }
}

impl SlotSet {
    /// Every slot `s` with `s mod shards == shard`: shard `shard`'s part of a new cluster.
    pub fn genesis(shard: usize, shards: usize) -> SlotSet {
        let mut set = SlotSet::default();
        if shards > 0 {
            for s in (0..SLOTS).filter(|s| usize::from(*s) % shards == shard) {
                set.insert(s);
            }
        }
        set
    }

    /// Whether `slot` is in the set.
    pub fn contains(&self, slot: u16) -> bool {
        let s = usize::from(slot);
        self.words
            .get(s / 64)
            .is_some_and(|w| w & (1 << (s % 64)) != 0)
    }

    /// Adds `slot` (ignored past [`SLOTS`]).
    pub fn insert(&mut self, slot: u16) {
        let s = usize::from(slot);
        if let Some(w) = self.words.get_mut(s / 64) {
            *w |= 1 << (s % 64);
        }
    }

    /// Removes `slot`.
    pub fn remove(&mut self, slot: u16) {
        let s = usize::from(slot);
        if let Some(w) = self.words.get_mut(s / 64) {
            *w &= !(1 << (s % 64));
        }
    }

    /// How many slots the set holds.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// The slots in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..SLOTS).filter(|s| self.contains(*s))
    }

    /// The set as inclusive ranges, ascending.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for s in self.iter() {
            match out.last_mut() {
                Some((_, end)) if *end + 1 == s => *end = s,
                _ => out.push((s, s)),
            }
        }
        out
    }

    /// The set of the slots in `ranges` (inclusive; slots past [`SLOTS`] ignored).
    pub fn from_ranges(ranges: &[(u16, u16)]) -> SlotSet {
        let mut set = SlotSet::default();
        for (a, b) in ranges {
            for s in *a..=(*b).min(SLOTS - 1) {
                set.insert(s);
            }
        }
        set
    }
}

impl FromIterator<u16> for SlotSet {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut set = SlotSet::default();
        for s in iter {
            set.insert(s);
        }
        set
    }
}

impl Serialize for SlotSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.ranges().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SlotSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let ranges = Vec::<(u16, u16)>::deserialize(deserializer)?;
        Ok(SlotSet::from_ranges(&ranges))
    }
}

/// What one group holds, replicated through its log and kept in its snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSlots {
    /// Every slot the group holds data for (owned, or being imported).
    pub held: SlotSet,
    /// Held slots still being imported: not served until the source releases them.
    pub importing: SlotSet,
    /// Held slots being moved away: not served until the move ends.
    pub frozen: SlotSet,
}

impl GroupSlots {
    /// A group of a new cluster of `shards` shards: slot `s` is shard `s mod shards`'s. A
    /// group added later (`shard >= shards`) holds nothing.
    pub fn genesis(shard: usize, shards: usize) -> GroupSlots {
        GroupSlots {
            held: if shard < shards {
                SlotSet::genesis(shard, shards)
            } else {
                SlotSet::default()
            },
            ..GroupSlots::default()
        }
    }
}

/// Where one of a group's per-key effects goes on this node.
#[derive(Debug, Clone)]
pub enum Target {
    /// Into the node's store: the group is the slot's authority here.
    Main,
    /// Into the group's staging store: another group's copy is still the store's.
    Staging(Arc<Store>),
    /// Nowhere: the group does not hold the slot.
    None,
}

/// How a slot stands on this node for the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serving {
    /// The group whose copy the store holds (0-based), if any.
    pub group: Option<usize>,
    /// That group is still importing it.
    pub importing: bool,
    /// That group is moving it away (reads only).
    pub frozen: bool,
}

/// The node's slots: per slot its authority, and per group what it holds and stages.
#[derive(Debug)]
pub struct Slots {
    main: Arc<Store>,
    /// This value's own handle, for the threads that clear released slots.
    me: std::sync::Weak<Slots>,
    /// Slots whose keys a thread is removing from the store.
    clearing: std::sync::atomic::AtomicUsize,
    /// Per slot: `(group + 1) << 2 | importing << 1 | frozen` for its authority (0: none).
    state: Vec<AtomicU32>,
    inner: Mutex<Inner>,
    /// Held for reading by a command that checked [`Slots::serves`] while it runs; for
    /// writing while a slot freezes or a group's keys are wiped.
    pub switch: RwLock<()>,
}

#[derive(Debug, Default)]
struct Inner {
    groups: HashMap<usize, Held>,
    /// Per slot: groups holding it whose copy waits in staging, in the order they asked.
    waiting: HashMap<u16, Vec<usize>>,
}

#[derive(Debug)]
struct Held {
    slots: GroupSlots,
    staging: Arc<Store>,
}

/// The node's slots locked for a group's state machine (see [`Slots::lock`]).
pub struct SlotsGuard<'a> {
    slots: &'a Slots,
    inner: MutexGuard<'a, Inner>,
}

impl Slots {
    /// The slots of a node whose store is `main`; no group holds anything yet.
    pub fn new(main: Arc<Store>) -> Arc<Slots> {
        Arc::new_cyclic(|me| Slots {
            main,
            me: me.clone(),
            clearing: std::sync::atomic::AtomicUsize::new(0),
            state: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            inner: Mutex::default(),
            switch: RwLock::new(()),
        })
    }

    /// Whether released slots' keys are still being removed from the store (tests wait on
    /// it).
    pub fn clearing(&self) -> bool {
        self.clearing.load(Ordering::Acquire) > 0
    }

    /// Removes the keys of `set`'s slots from the store, then lets the group waiting for each
    /// slot (if any) take it over. The slots' authority is [`CLEARING`] meanwhile: no group
    /// serves them or writes them into the store.
    fn clear(&self, set: SlotSet) {
        for db in self.main.dbs() {
            db.retain(|k| !set.contains(slot_of(k)));
        }
        self.main.mark_dirty(1);
        let mut guard = self.lock();
        let mut next: HashMap<usize, SlotSet> = HashMap::new();
        for s in set.iter() {
            if self.serving_raw(s) != Some(CLEARING) {
                continue;
            }
            guard.set_authority(s, None);
            if let Some(queue) = guard.inner.waiting.get_mut(&s) {
                if !queue.is_empty() {
                    next.entry(queue.remove(0)).or_default().insert(s);
                }
            }
        }
        for (g, slots) in next {
            guard.claim(g, &slots);
        }
        drop(guard);
        self.clearing.fetch_sub(1, Ordering::AcqRel);
    }

    /// The slot's authority as stored, [`CLEARING`] included.
    fn serving_raw(&self, slot: u16) -> Option<usize> {
        let v = self
            .state
            .get(usize::from(slot))
            .map_or(0, |a| a.load(Ordering::Acquire));
        (v >> 2).checked_sub(1).map(|g| g as usize)
    }

    /// The node's store.
    pub fn store(&self) -> &Arc<Store> {
        &self.main
    }

    /// How `slot` stands here (lock-free: one atomic load).
    pub fn serving(&self, slot: u16) -> Serving {
        let v = self
            .state
            .get(usize::from(slot))
            .map_or(0, |a| a.load(Ordering::Acquire));
        Serving {
            group: (v >> 2).checked_sub(1).map(|g| g as usize),
            importing: v & 2 != 0,
            frozen: v & 1 != 0,
        }
    }

    /// Whether `group` may run a command on a key of `slot` here now: the slot's authority is the
    /// group, its import is over, and no move has it frozen. (Reads wait while it is frozen
    /// too: once the move commits, the target may take writes a read here would miss.)
    pub fn serves(&self, group: usize, slot: u16) -> bool {
        let s = self.serving(slot);
        s.group == Some(group) && !s.importing && !s.frozen
    }

    /// Locks the node's slots for a group's state machine. Never held across an await.
    pub fn lock(&self) -> SlotsGuard<'_> {
        SlotsGuard {
            slots: self,
            inner: self.inner.lock().expect("slots lock poisoned"),
        }
    }

    /// What `group` holds here (a copy).
    pub fn held(&self, group: usize) -> GroupSlots {
        self.lock().group_slots(group)
    }

    /// The leader of `group` freezes `slots` at once, before its `Freeze` entry commits: no
    /// write to them starts here from now on.
    pub fn freeze_now(&self, group: usize, slots: &[u16]) {
        let _switch = self.switch.write().expect("slots switch poisoned");
        let mut guard = self.lock();
        guard.control(group, &SlotControl::Freeze(slots.to_vec()));
    }
}

impl SlotsGuard<'_> {
    /// Where `group`'s effect on a key of `slot` goes.
    pub fn target(&mut self, group: usize, slot: u16) -> Target {
        let s = self.slots.serving(slot);
        if s.group == Some(group) {
            return Target::Main;
        }
        match self.inner.groups.get(&group) {
            Some(held) if held.slots.held.contains(slot) => Target::Staging(held.staging.clone()),
            _ => Target::None,
        }
    }

    /// Whether `group` was ever registered here.
    pub fn knows(&self, group: usize) -> bool {
        self.inner.groups.contains_key(&group)
    }

    /// `group`'s staging store, if it has one.
    pub fn staging(&self, group: usize) -> Option<Arc<Store>> {
        self.inner.groups.get(&group).map(|h| h.staging.clone())
    }

    /// What `group` holds (a copy; the genesis-less default for a group never seen).
    pub fn group_slots(&self, group: usize) -> GroupSlots {
        self.inner
            .groups
            .get(&group)
            .map(|h| h.slots.clone())
            .unwrap_or_default()
    }

    /// Applies one slot change of `group`'s log. The caller holds [`Slots::switch`] for
    /// writing (keys may move).
    pub fn control(&mut self, group: usize, control: &SlotControl) {
        match control {
            SlotControl::Import(slots) => {
                let set: SlotSet = slots.iter().copied().collect();
                self.drop_data(group, &set);
                let held = self.held_mut(group);
                for s in set.iter() {
                    held.slots.held.insert(s);
                    held.slots.importing.insert(s);
                    held.slots.frozen.remove(s);
                }
                self.claim(group, &set);
            }
            SlotControl::Activate(slots) => {
                for &s in slots {
                    let held = self.held_mut(group);
                    if held.slots.held.contains(s) {
                        held.slots.importing.remove(s);
                    }
                    self.publish(s);
                }
            }
            SlotControl::Abort(slots) => {
                let held = self.held_mut(group);
                let set: SlotSet = slots
                    .iter()
                    .copied()
                    .filter(|s| held.slots.importing.contains(*s))
                    .collect();
                self.forget(group, &set);
            }
            SlotControl::Freeze(slots) => {
                for &s in slots {
                    let held = self.held_mut(group);
                    if held.slots.held.contains(s) && !held.slots.importing.contains(s) {
                        held.slots.frozen.insert(s);
                    }
                    self.publish(s);
                }
            }
            SlotControl::Unfreeze(slots) => {
                for &s in slots {
                    self.held_mut(group).slots.frozen.remove(s);
                    self.publish(s);
                }
            }
            SlotControl::Release { slots, .. } => {
                let held = self.held_mut(group);
                let set: SlotSet = slots
                    .iter()
                    .copied()
                    .filter(|s| held.slots.held.contains(*s))
                    .collect();
                self.forget(group, &set);
            }
        }
    }

    /// Replaces everything `group` holds with `slots` and the keys `load` puts back (a
    /// snapshot installed, a rebuild, a start). `load` is called once per store the keys go
    /// to, with a filter saying which slots go there. The caller holds [`Slots::switch`].
    pub fn replace(
        &mut self,
        group: usize,
        slots: GroupSlots,
        mut load: impl FnMut(&Store, &dyn Fn(u16) -> bool),
    ) {
        let old = self.group_slots(group);
        let gone: SlotSet = old
            .held
            .iter()
            .filter(|s| !slots.held.contains(*s))
            .collect();
        let kept: SlotSet = old
            .held
            .iter()
            .filter(|s| slots.held.contains(*s))
            .collect();
        self.forget(group, &gone);
        self.drop_data(group, &kept);
        self.held_mut(group).slots = slots.clone();
        self.claim(group, &slots.held);
        for s in slots.held.iter() {
            self.publish(s);
        }
        let staging = self.held_mut(group).staging.clone();
        let is_main = |s: u16| self.slots.serving(s).group == Some(group);
        load(&self.slots.main, &|s| slots.held.contains(s) && is_main(s));
        load(&staging, &|s| slots.held.contains(s) && !is_main(s));
    }

    /// Forgets `group` on this node (its member stopped for good): every slot it held here is
    /// released.
    pub fn remove_group(&mut self, group: usize) {
        let held = self.group_slots(group).held;
        self.forget(group, &held);
        self.inner.groups.remove(&group);
    }

    fn held_mut(&mut self, group: usize) -> &mut Held {
        let main = &self.slots.main;
        self.inner.groups.entry(group).or_insert_with(|| Held {
            slots: GroupSlots::default(),
            staging: Arc::new(Store::new(main.dbs().len(), 4)),
        })
    }

    /// Makes `group` the authority of each slot of `set` that has none (its staged keys move
    /// in), and queues it for the others.
    fn claim(&mut self, group: usize, set: &SlotSet) {
        let mut free = SlotSet::default();
        for s in set.iter() {
            match self.slots.serving(s).group {
                Some(g) if g == group => {}
                None => free.insert(s),
                Some(_) => {
                    let queue = self.inner.waiting.entry(s).or_default();
                    if !queue.contains(&group) {
                        queue.push(group);
                    }
                }
            }
        }
        if free.is_empty() {
            return;
        }
        let staging = self.held_mut(group).staging.clone();
        move_slots(&staging, &self.slots.main, &free, Instant::now());
        for s in free.iter() {
            self.set_authority(s, Some(group));
        }
    }

    /// `group` no longer holds the slots of `set`: their keys go, and for each slot the next
    /// group waiting takes over. Where the group was the authority, its keys leave the store
    /// on a thread of their own (a scan of the whole store), so the caller (a state machine
    /// applying a `Release`) goes on at once; the waiting group takes over after that.
    fn forget(&mut self, group: usize, set: &SlotSet) {
        if set.is_empty() {
            return;
        }
        let mut cleared = SlotSet::default();
        let mut staged = SlotSet::default();
        for s in set.iter() {
            if self.slots.serving(s).group == Some(group) {
                cleared.insert(s);
            } else {
                staged.insert(s);
            }
        }
        if let Some(held) = self.inner.groups.get(&group) {
            for db in held.staging.dbs() {
                db.retain(|k| !staged.contains(slot_of(k)));
            }
        }
        let held = self.held_mut(group);
        for s in set.iter() {
            held.slots.held.remove(s);
            held.slots.importing.remove(s);
            held.slots.frozen.remove(s);
        }
        for s in set.iter() {
            if let Some(queue) = self.inner.waiting.get_mut(&s) {
                queue.retain(|g| *g != group);
            }
        }
        if cleared.is_empty() {
            return;
        }
        for s in cleared.iter() {
            self.set_authority(s, Some(CLEARING));
        }
        self.slots.clearing.fetch_add(1, Ordering::AcqRel);
        match self.slots.me.upgrade() {
            Some(slots) => {
                std::thread::spawn(move || slots.clear(cleared));
            }
            None => {
                self.slots.clearing.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Removes `group`'s keys of the slots of `set`, wherever they are.
    fn drop_data(&mut self, group: usize, set: &SlotSet) {
        if set.is_empty() {
            return;
        }
        let mine = |s: u16| set.contains(s) && self.slots.serving(s).group == Some(group);
        if set.iter().any(mine) {
            for db in self.slots.main.dbs() {
                db.retain(|k| !mine(slot_of(k)));
            }
            self.slots.main.mark_dirty(1);
        }
        if let Some(held) = self.inner.groups.get(&group) {
            for db in held.staging.dbs() {
                db.retain(|k| !set.contains(slot_of(k)));
            }
        }
    }

    fn set_authority(&mut self, slot: u16, group: Option<usize>) {
        if let Some(a) = self.slots.state.get(usize::from(slot)) {
            a.store(group.map_or(0, |g| (g as u32 + 1) << 2), Ordering::Release);
        }
        self.publish(slot);
    }

    /// Refreshes the slot's flags from its authority's state.
    fn publish(&mut self, slot: u16) {
        let Some(a) = self.slots.state.get(usize::from(slot)) else {
            return;
        };
        let v = a.load(Ordering::Acquire);
        let Some(group) = (v >> 2).checked_sub(1) else {
            return;
        };
        let (importing, frozen) = match self.inner.groups.get(&(group as usize)) {
            Some(h) => (
                h.slots.importing.contains(slot),
                h.slots.frozen.contains(slot),
            ),
            None => (false, false),
        };
        a.store(
            v >> 2 << 2 | u32::from(importing) << 1 | u32::from(frozen),
            Ordering::Release,
        );
    }
}

/// The authority of a slot whose keys are being removed from the store (see [`Slots::clear`]).
const CLEARING: usize = (1 << 29) - 1;

/// Moves every key of the slots of `set` from `from` to `to` (same database indexes).
fn move_slots(from: &Store, to: &Store, set: &SlotSet, now: Instant) {
    for (index, db) in from.dbs().iter().enumerate() {
        let Some(target) = to.db(index) else {
            continue;
        };
        let dumps = db.dump_matching(now, |k| set.contains(slot_of(k)));
        if dumps.iter().all(Vec::is_empty) {
            continue;
        }
        let mut by_shard: Vec<Vec<_>> = (0..target.shard_count()).map(|_| Vec::new()).collect();
        for dump in &dumps {
            for e in dump_entries(dump) {
                // The dump was written by this very store a moment ago.
                match target.prepare(e.key, e.kind, e.data, e.deadline) {
                    Ok((shard, prepared)) => {
                        if let Some(list) = by_shard.get_mut(shard) {
                            list.push(prepared);
                        }
                    }
                    Err(err) => tracing::error!(%err, "a staged value does not decode"),
                }
            }
        }
        target.load(by_shard);
        db.retain(|k| !set.contains(slot_of(k)));
    }
    to.mark_dirty(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effect::Effect;
    use crate::store::Value;
    use bytes::Bytes;

    fn key_in(slot: u16) -> Bytes {
        (0..)
            .map(|i| Bytes::from(format!("k{i}")))
            .find(|k| slot_of(k) == slot)
            .expect("some key hashes to every slot")
    }

    fn put(store: &Store, key: &Bytes, value: &str) {
        Effect::Put {
            db: 0,
            key: key.clone(),
            value: Value::String(Bytes::from(value.to_string())),
            expires_at_ms: None,
        }
        .apply(store, Instant::now())
        .expect("db 0 exists");
    }

    fn get(store: &Store, key: &Bytes) -> Option<String> {
        let db = store.db(0)?;
        let mut shard = db.shard(key);
        shard
            .value(key, Instant::now())
            .and_then(|v| v.into_string().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    fn wait_cleared(slots: &Slots) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while slots.clearing() {
            assert!(std::time::Instant::now() < deadline, "clearing never ended");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn ranges_round_trip_and_genesis_is_the_modulo() {
        let set = SlotSet::genesis(1, 3);
        assert_eq!(set.len(), 4096);
        assert!(set.contains(1) && set.contains(4) && !set.contains(2));
        assert_eq!(SlotSet::from_ranges(&set.ranges()), set);
        let json = serde_json::to_string(&SlotSet::from_ranges(&[(5, 9)])).expect("json");
        assert_eq!(json, "[[5,9]]");
    }

    #[test]
    fn a_move_between_groups_on_one_node_keeps_the_newest_copy() {
        let store = Arc::new(Store::new(1, 4));
        let slots = Slots::new(store.clone());
        let slot = 7;
        let key = key_in(slot);
        {
            let _w = slots.switch.write().expect("switch");
            let mut g = slots.lock();
            g.replace(0, GroupSlots::genesis(0, 1), |_, _| {});
            g.replace(1, GroupSlots::default(), |_, _| {});
        }
        put(&store, &key, "old");
        assert!(slots.serves(0, slot));
        let _w = slots.switch.write().expect("switch");
        let mut g = slots.lock();
        // Group 1 imports: its copy goes to staging while group 0's is the store's.
        g.control(1, &SlotControl::Import(vec![slot]));
        let Target::Staging(staging) = g.target(1, slot) else {
            panic!("import on a shared node must stage");
        };
        put(&staging, &key, "copied");
        g.control(0, &SlotControl::Freeze(vec![slot]));
        assert!(slots.serving(slot).frozen);
        g.control(1, &SlotControl::Activate(vec![slot]));
        // Not served by 1 until 0 releases it here.
        assert_eq!(slots.serving(slot).group, Some(0));
        g.control(
            0,
            &SlotControl::Release {
                slots: vec![slot],
                to: 1,
            },
        );
        // Group 0's keys leave the store on a thread; then group 1 takes over.
        drop(g);
        wait_cleared(&slots);
        let mut g = slots.lock();
        let s = slots.serving(slot);
        assert_eq!(
            s,
            Serving {
                group: Some(1),
                importing: false,
                frozen: false
            }
        );
        assert_eq!(get(&store, &key).as_deref(), Some("copied"));
        assert!(matches!(g.target(0, slot), Target::None));
    }

    #[test]
    fn release_first_then_activate_works_too_and_abort_forgets() {
        let store = Arc::new(Store::new(1, 4));
        let slots = Slots::new(store.clone());
        let (slot, other) = (3, 5);
        let key = key_in(slot);
        let mut g = slots.lock();
        g.replace(0, GroupSlots::genesis(0, 1), |_, _| {});
        put(&store, &key, "v");
        g.control(
            0,
            &SlotControl::Release {
                slots: vec![slot],
                to: 1,
            },
        );
        assert_eq!(slots.serving(slot).group, Some(CLEARING));
        drop(g);
        wait_cleared(&slots);
        let mut g = slots.lock();
        assert_eq!(get(&store, &key), None);
        assert_eq!(slots.serving(slot).group, None);
        // A node that is only in the target: the import goes straight into the store.
        g.control(1, &SlotControl::Import(vec![slot, other]));
        assert!(matches!(g.target(1, slot), Target::Main));
        put(&store, &key, "v");
        assert!(slots.serving(slot).importing);
        g.control(1, &SlotControl::Activate(vec![slot]));
        assert!(slots.serves(1, slot));
        g.control(1, &SlotControl::Abort(vec![other]));
        assert_eq!(slots.serving(other).group, Some(0));
        assert!(!g.group_slots(1).held.contains(other));
    }
}
