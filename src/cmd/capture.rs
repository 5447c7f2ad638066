//! Effect capture: how a write command changes the store and tells the effect stream, in one
//! pass.
//!
//! Before a write command's handler runs, `lock_keys` locks the shards of every key the
//! command names (from the table's key positions; MOVE and COPY also name a key in another
//! database), in `(db, shard)` order so that two commands can never wait on each other. The
//! handler then reads and changes its keys only through [`Writer`]s
//! ([`super::Ctx::write`]), which apply each change and record its [`Effect`] at the same
//! time: there is no second pass reading back what the handler wrote. After the handler,
//! `cmd::run` hands the command's effects to the node's sink and only then releases the
//! locks, so the sink receives the effects of one key in the order the writes happened.
//! Holding all of a command's keys at once also makes every multi-key write (MSET, DEL k1 k2,
//! RENAME, MOVE) atomic for other clients, as in Redis.
//!
//! This module must not format replies or know codecs.

use std::sync::MutexGuard;

use bytes::Bytes;
use tokio::time::Instant;

use super::args;
use super::table::CommandSpec;
use crate::effect::{unix_deadline, Edit, Effect};
use crate::node::Node;
use crate::store::{
    Collection, Entry, Hash, Kind, List, Set, Shard, Value, ValueRef, WrongType, ZSet,
};

/// The effects of the running command (or of the transaction EXEC is running), kept in the
/// session so the buffer's allocation is reused from command to command.
#[derive(Debug, Default)]
pub struct Capture {
    /// Effects recorded and not yet handed to the sink.
    pub(super) effects: Vec<Effect>,
    /// Whether anyone listens: without a sink, changes are only counted.
    pub(super) recording: bool,
    /// Keys changed by the running command (the snapshot's change counter).
    pub(super) changes: u64,
}

impl Capture {
    /// Records `effect` if a sink listens, and counts it as a change either way.
    #[inline]
    pub(super) fn record(&mut self, effect: impl FnOnce() -> Effect) {
        self.changes += 1;
        if self.recording {
            self.effects.push(effect());
        }
    }
}

/// The shards a write command holds while it runs.
pub(super) enum Locks<'a> {
    /// None held: a read command, or a write command without keys (FLUSHDB, SWAPDB, which run
    /// alone behind the store's gate).
    None,
    /// One shard: the common single-key case, without an allocation. Also keeps where the
    /// key's bytes are, so that the handler asking for that very key (`&args[1]`) finds its
    /// shard without hashing the key a second time.
    One {
        /// `(db, shard index)`.
        slot: (usize, usize),
        /// Address and length of the key the slot was computed from (compared, never read).
        key: (*const u8, usize),
        /// The lock.
        guard: MutexGuard<'a, Shard>,
    },
    /// Several, sorted by `(db, shard)`.
    Many(Vec<((usize, usize), MutexGuard<'a, Shard>)>),
}

/// Locks the shards of every key `args` names for the write command `spec`, in `(db, shard)`
/// order.
#[inline]
pub(super) fn lock_keys<'a>(
    node: &'a Node,
    db: usize,
    spec: &CommandSpec,
    args: &[Bytes],
) -> Locks<'a> {
    let store = &node.store;
    // The single-key fast path (SET, INCR, EXPIRE...): no list, no sort. MOVE names a second
    // key (in another database) outside its key positions.
    if spec.single_key() && spec.name != "move" {
        let (Some(key), Some(d)) = (args.get(1), store.db(db)) else {
            return Locks::None;
        };
        let index = d.shard_index(key);
        return Locks::One {
            slot: (db, index),
            key: (key.as_ptr(), key.len()),
            guard: d.lock(index),
        };
    }
    let mut slots: Vec<(usize, usize)> = keys(spec, args, db)
        .into_iter()
        .filter_map(|(d, key)| Some((d, store.db(d)?.shard_index(key))))
        .collect();
    if slots.is_empty() {
        return Locks::None;
    }
    slots.sort_unstable();
    slots.dedup();
    Locks::Many(
        slots
            .into_iter()
            .filter_map(|(d, index)| Some(((d, index), store.db(d)?.lock(index))))
            .collect(),
    )
}

impl<'a> Locks<'a> {
    /// The held shard of `key` in `db`, locking it now if the command did not declare it (a
    /// key outside the table's key positions: should not happen, see `keys`). `None` when
    /// `db` does not exist.
    #[inline]
    pub(super) fn shard(
        &mut self,
        node: &'a Node,
        db: usize,
        key: &[u8],
    ) -> Option<(usize, &mut MutexGuard<'a, Shard>)> {
        // The single-key fast path: the same key bytes as at locking time, same shard.
        if let Locks::One {
            slot, key: held, ..
        } = self
        {
            if slot.0 == db && *held == (key.as_ptr(), key.len()) {
                let Locks::One { guard, .. } = self else {
                    return None;
                };
                return Some((db, guard));
            }
        }
        let slot = (db, node.store.db(db)?.shard_index(key));
        let held = match self {
            Locks::None => false,
            Locks::One { slot: s, .. } => *s == slot,
            Locks::Many(all) => all.iter().any(|(s, _)| *s == slot),
        };
        if !held {
            self.lock_undeclared(node, slot)?;
        }
        match self {
            Locks::None => None,
            Locks::One { guard, .. } => Some((db, guard)),
            Locks::Many(all) => all
                .iter_mut()
                .find(|(s, _)| *s == slot)
                .map(|(_, g)| (db, g)),
        }
    }

    #[cold]
    fn lock_undeclared(&mut self, node: &'a Node, slot: (usize, usize)) -> Option<()> {
        tracing::debug!(?slot, "a write command locked a shard it did not declare");
        let guard = node.store.db(slot.0)?.lock(slot.1);
        let mut all = match std::mem::replace(self, Locks::None) {
            Locks::None => Vec::new(),
            Locks::One { slot, guard, .. } => vec![(slot, guard)],
            Locks::Many(all) => all,
        };
        all.push((slot, guard));
        *self = Locks::Many(all);
        Some(())
    }
}

/// One key's shard, locked for the running write command: reads as the shard does, and every
/// change is applied and recorded as an effect together.
pub struct Writer<'c> {
    pub(super) shard: &'c mut Shard,
    pub(super) capture: &'c mut Capture,
    /// Clients blocked on keys: served when a list or sorted set grows (see [`crate::block`]).
    pub(super) blocking: &'c crate::block::Blocking,
    pub(super) db: usize,
    pub(super) now: Instant,
}

impl Writer<'_> {
    /// A copy of the live entry of `key`.
    #[inline]
    pub fn get(&mut self, key: &[u8]) -> Option<Entry> {
        self.shard.get(key, self.now)
    }

    /// Whether `key` is live.
    #[inline]
    pub fn contains(&mut self, key: &[u8]) -> bool {
        self.shard.contains(key, self.now)
    }

    /// `None` for a missing key, else its deadline (`Some(None)` without TTL).
    #[inline]
    pub fn deadline(&mut self, key: &[u8]) -> Option<Option<Instant>> {
        self.shard.deadline(key, self.now)
    }

    /// The kind of the value of `key`, if it is live.
    #[inline]
    pub fn kind(&mut self, key: &[u8]) -> Option<Kind> {
        self.shard.kind(key, self.now)
    }

    /// The live value of `key`, borrowed (no copy).
    #[inline]
    pub fn peek(&mut self, key: &[u8]) -> Option<ValueRef<'_>> {
        self.shard.peek(key, self.now)
    }

    /// Changes the collection of `kind` under `key` in place: the one way list, hash, set and
    /// sorted-set commands write. A missing key starts as an empty collection when `create`
    /// holds; otherwise `f` is not called and `Ok(None)` returned. `f` returns its result and
    /// whether it changed the value. After a change the key's WATCH version moves, a
    /// collection left empty is deleted, and the effect is recorded (the key's new whole
    /// value, or its deletion).
    ///
    /// # Errors
    /// [`WrongType`] when the key holds another kind.
    pub fn update<R>(
        &mut self,
        key: &Bytes,
        kind: Kind,
        create: bool,
        f: impl FnOnce(&mut Collection) -> (R, bool),
    ) -> Result<Option<R>, WrongType> {
        self.update_with(key, kind, create, |v| {
            if v.kind() == kind {
                let (result, changed) = f(v);
                Ok((result, Delta::from(changed)))
            } else {
                Err(WrongType)
            }
        })
    }

    /// Whether the running command's effects are being recorded (a sink listens): a family
    /// builds an [`Edit`] for [`Delta::Edit`] only then.
    #[inline]
    pub fn recording(&self) -> bool {
        self.capture.recording
    }

    fn update_with<R>(
        &mut self,
        key: &Bytes,
        kind: Kind,
        create: bool,
        f: impl FnOnce(&mut Collection) -> Result<(R, Delta), WrongType>,
    ) -> Result<Option<R>, WrongType> {
        let (db, blocking) = (self.db, self.blocking);
        let f = |v: &mut Collection| {
            let (result, mut delta) = f(v)?;
            // A list or sorted set that changed may have grown: clients blocked on it take
            // their elements now, under this lock, as part of this command's effects (then
            // recorded as the whole value: the edit alone would miss the pops).
            if !matches!(delta, Delta::Unchanged)
                && matches!(v, Collection::List(_) | Collection::ZSet(_))
                && blocking.serve(db, key, v)
            {
                delta = Delta::Changed;
            }
            let changed = !matches!(delta, Delta::Unchanged);
            Ok(((result, delta), changed))
        };
        let Some(((result, delta), change)) = self.shard.update(key, kind, create, self.now, f)?
        else {
            return Ok(None);
        };
        if let Some(change) = change {
            let (shard, now) = (&mut *self.shard, self.now);
            self.capture.record(|| {
                if let Delta::Edit(edit) = delta {
                    if change.existed && change.exists {
                        return Effect::Edit {
                            db,
                            key: key.clone(),
                            edit,
                        };
                    }
                }
                let entry = change.exists.then(|| shard.get(key, now)).flatten();
                match entry {
                    Some(entry) => Effect::Put {
                        db,
                        key: key.clone(),
                        value: entry.value,
                        expires_at_ms: unix_deadline(entry.deadline),
                    },
                    None => Effect::Del {
                        db,
                        key: key.clone(),
                    },
                }
            });
        }
        Ok(Some(result))
    }

    /// [`Writer::update`] for a hash, recording `Delta::Edit`s as element-level effects (see
    /// [`crate::effect::Edit`]; `f` also gets [`Writer::recording`], to build edits only when
    /// they are recorded).
    ///
    /// # Errors
    /// [`WrongType`] when the key holds another kind.
    pub fn update_hash_edit<R>(
        &mut self,
        key: &Bytes,
        create: bool,
        f: impl FnOnce(&mut Hash, bool) -> (R, Delta),
    ) -> Result<Option<R>, WrongType> {
        let recording = self.recording();
        self.update_with(key, Kind::Hash, create, |v| {
            Ok(f(v.as_hash_mut()?, recording))
        })
    }

    /// [`Writer::update_hash_edit`] for a set.
    ///
    /// # Errors
    /// [`WrongType`] when the key holds another kind.
    pub fn update_set_edit<R>(
        &mut self,
        key: &Bytes,
        create: bool,
        f: impl FnOnce(&mut Set, bool) -> (R, Delta),
    ) -> Result<Option<R>, WrongType> {
        let recording = self.recording();
        self.update_with(key, Kind::Set, create, |v| {
            Ok(f(v.as_set_mut()?, recording))
        })
    }

    /// [`Writer::update_hash_edit`] for a sorted set.
    ///
    /// # Errors
    /// [`WrongType`] when the key holds another kind.
    pub fn update_zset_edit<R>(
        &mut self,
        key: &Bytes,
        create: bool,
        f: impl FnOnce(&mut ZSet, bool) -> (R, Delta),
    ) -> Result<Option<R>, WrongType> {
        let recording = self.recording();
        self.update_with(key, Kind::ZSet, create, |v| {
            Ok(f(v.as_zset_mut()?, recording))
        })
    }

    /// [`Writer::update`] for a list.
    ///
    /// # Errors
    /// [`WrongType`] when the key holds another kind.
    pub fn update_list<R>(
        &mut self,
        key: &Bytes,
        create: bool,
        f: impl FnOnce(&mut List) -> (R, bool),
    ) -> Result<Option<R>, WrongType> {
        self.update_with(key, Kind::List, create, |v| {
            let (result, changed) = f(v.as_list_mut()?);
            Ok((result, Delta::from(changed)))
        })
    }

    /// [`Writer::update`] for a hash.
    ///
    /// # Errors
    /// [`WrongType`] when the key holds another kind.
    pub fn update_hash<R>(
        &mut self,
        key: &Bytes,
        create: bool,
        f: impl FnOnce(&mut Hash) -> (R, bool),
    ) -> Result<Option<R>, WrongType> {
        self.update_with(key, Kind::Hash, create, |v| {
            let (result, changed) = f(v.as_hash_mut()?);
            Ok((result, Delta::from(changed)))
        })
    }

    /// [`Writer::update`] for a set.
    ///
    /// # Errors
    /// [`WrongType`] when the key holds another kind.
    pub fn update_set<R>(
        &mut self,
        key: &Bytes,
        create: bool,
        f: impl FnOnce(&mut Set) -> (R, bool),
    ) -> Result<Option<R>, WrongType> {
        self.update_with(key, Kind::Set, create, |v| {
            let (result, changed) = f(v.as_set_mut()?);
            Ok((result, Delta::from(changed)))
        })
    }

    /// [`Writer::update`] for a sorted set.
    ///
    /// # Errors
    /// [`WrongType`] when the key holds another kind.
    pub fn update_zset<R>(
        &mut self,
        key: &Bytes,
        create: bool,
        f: impl FnOnce(&mut ZSet) -> (R, bool),
    ) -> Result<Option<R>, WrongType> {
        self.update_with(key, Kind::ZSet, create, |v| {
            let (result, changed) = f(v.as_zset_mut()?);
            Ok((result, Delta::from(changed)))
        })
    }

    /// Sets `key` to the string `value` with `deadline`.
    #[inline]
    pub fn put(&mut self, key: &Bytes, value: &Bytes, deadline: Option<Instant>) {
        self.shard.put(key, value, deadline, self.now);
        let db = self.db;
        self.capture.record(|| Effect::Put {
            db,
            key: key.clone(),
            value: Value::String(value.clone()),
            expires_at_ms: unix_deadline(deadline),
        });
    }

    /// Replaces the string under `key` with what `f` makes of it, keeping its deadline (see
    /// [`Shard::modify_string`]); records the new value.
    ///
    /// # Errors
    /// `f`'s error, or WRONGTYPE when `key` holds a collection.
    #[inline]
    pub fn modify_string<V: AsRef<[u8]>, E: From<WrongType>>(
        &mut self,
        key: &Bytes,
        f: impl FnOnce(Option<&[u8]>) -> Result<V, E>,
    ) -> Result<V, E> {
        let (new, deadline) = self.shard.modify_string(key, self.now, f)?;
        let db = self.db;
        self.capture.record(|| Effect::Put {
            db,
            key: key.clone(),
            value: Value::String(Bytes::copy_from_slice(new.as_ref())),
            expires_at_ms: unix_deadline(deadline),
        });
        Ok(new)
    }

    /// Sets `key` to `entry`; returns the previous live entry.
    #[inline]
    pub fn insert(&mut self, key: &Bytes, entry: Entry) -> Option<Entry> {
        if matches!(entry.value, Value::List(_) | Value::ZSet(_)) {
            // Clients blocked on the key run their commands again once the locks are gone.
            self.blocking.wake(self.db, key);
        }
        let old = self.shard.get(key, self.now);
        self.shard
            .put_value(key, &entry.value, entry.deadline, self.now);
        let db = self.db;
        self.capture.record(|| Effect::Put {
            db,
            key: key.clone(),
            value: entry.value,
            expires_at_ms: unix_deadline(entry.deadline),
        });
        old
    }

    /// Removes `key`; returns its entry if it was live.
    #[inline]
    pub fn remove(&mut self, key: &Bytes) -> Option<Entry> {
        let old = self.shard.remove(key, self.now)?;
        let db = self.db;
        self.capture.record(|| Effect::Del {
            db,
            key: key.clone(),
        });
        Some(old)
    }

    /// Sets or clears the deadline of a live key; false when the key does not exist. A
    /// deadline at or before now removes the key, as Redis's EXPIRE with a past time does.
    #[inline]
    pub fn set_deadline(&mut self, key: &Bytes, deadline: Option<Instant>) -> bool {
        if deadline.is_some_and(|d| d <= self.now) {
            return self.remove(key).is_some();
        }
        if !self.shard.set_deadline(key, deadline, self.now) {
            return false;
        }
        let db = self.db;
        self.capture.record(|| Effect::Expire {
            db,
            key: key.clone(),
            expires_at_ms: unix_deadline(deadline),
        });
        true
    }
}

/// How a write changed a collection, for the effect stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// Nothing changed (no effect, WATCH untouched).
    Unchanged,
    /// Changed: recorded as the key's whole new value (or its deletion).
    Changed,
    /// Changed by exactly this edit: recorded as the edit when the key existed before and
    /// still does, as the whole value otherwise.
    Edit(Edit),
}

impl Delta {
    /// `Unchanged` when nothing changed; otherwise `edit()` when effects are recorded
    /// (`recording`, see [`Writer::recording`]), `Changed` (the whole value) when not.
    pub fn of(changed: bool, recording: bool, edit: impl FnOnce() -> Edit) -> Delta {
        match (changed, recording) {
            (false, _) => Delta::Unchanged,
            (true, true) => Delta::Edit(edit()),
            (true, false) => Delta::Changed,
        }
    }
}

impl From<bool> for Delta {
    fn from(changed: bool) -> Self {
        if changed {
            Delta::Changed
        } else {
            Delta::Unchanged
        }
    }
}

/// The `(db, key)` pairs a write command names, from its key positions; MOVE and COPY also
/// name their destination database (parsed as their handlers parse it).
pub fn keys<'a>(spec: &CommandSpec, args: &'a [Bytes], db: usize) -> Vec<(usize, &'a Bytes)> {
    let argc = args.len() as i32;
    let last = if spec.last_key < 0 {
        argc + spec.last_key
    } else {
        spec.last_key
    };
    let mut keys = Vec::new();
    if let Some(positions) = spec.keys_fn {
        keys.extend(
            positions(args)
                .into_iter()
                .filter_map(|i| Some((db, args.get(i)?))),
        );
    } else if spec.first_key > 0 && spec.step > 0 {
        let mut i = spec.first_key;
        while i <= last && i < argc {
            keys.push((db, &args[i as usize]));
            i += spec.step;
        }
    }
    let other_db = |arg: Option<&Bytes>| {
        arg.and_then(|a| args::int(a).ok())
            .and_then(|n| usize::try_from(n).ok())
    };
    match spec.name {
        "move" => {
            if let (Some(target), Some(key)) = (other_db(args.get(2)), args.get(1)) {
                keys.push((target, key));
            }
        }
        "copy" => {
            let target = args
                .iter()
                .skip(3)
                .position(|a| a.eq_ignore_ascii_case(b"DB"))
                .and_then(|i| other_db(args.get(i + 4)));
            if let (Some(target), Some(dst)) = (target, args.get(2)) {
                keys.push((target, dst));
            }
        }
        _ => {}
    }
    keys
}
