//! One independently locked part of a keyspace: a compact hash table of entries, an ordered
//! index of the deadlines of the keys that have one, and the versions of watched keys.
//!
//! Memory layout (the reason for this module's shape): a string entry is a single heap
//! allocation holding `[header][deadline?][key][value]`, where the header is a LEB128 varint
//! of `key_len << 2 | collection << 1 | has_deadline` and the deadline (8 bytes, microseconds
//! on the store clock) is present only for keys with a TTL. So a key like `key:000000001`
//! with a 10-byte value costs one 32-byte allocation plus its 16-byte table slot, against
//! ~270 bytes with a `HashMap<Bytes, Entry>`. A list, hash, set or sorted set is a second kind
//! of slot, a 56-byte box (one 64-byte malloc chunk) of a [`Collection`] (24 bytes) and the
//! same `[header][deadline?][key]` with the `collection` bit set, kept in the box's other 32
//! bytes when it fits (keys up to 30 bytes, 22 with a deadline) and in an allocation of its own
//! otherwise; it is changed in place ([`Shard::update`]). That head is also the start of the
//! entry's dump record, where a type byte then precedes the value's [`dump`] form. Every
//! operation hashes the key once and probes the table once.
//!
//! A shard is plain synchronous data; its owner wraps it in a mutex. It must never be held
//! across an `.await`.

use std::collections::{BTreeMap, HashMap};

use hashbrown::hash_table::{self, HashTable};
use tokio::time::Instant;

use super::clock;
use super::value::{dump, Collection, DumpError, Kind, Value, ValueRef, WrongType};
#[cfg(test)]
use item::Boxed;
use item::{get_varint, Item};
pub use sketch::Mode;
use sketch::Sketch;

pub mod evict;
mod item;
pub mod sketch;

/// A value with its optional expiry deadline, owned (a copy out of the shard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stored value.
    pub value: Value,
    /// When the key stops existing; `None` for keys without a TTL.
    pub deadline: Option<Instant>,
}

/// A map of live entries, the deadline index that lets expiry find due keys in order, and
/// the versions WATCH compares.
#[derive(Debug)]
pub struct Shard {
    table: HashTable<Item>,
    /// The deadlines of the entries that have one, kept in step with `table`.
    deadlines: Deadlines,
    /// Watched keys: (number of watchers, version bumped by every change to the key).
    watches: HashMap<Box<[u8]>, (u32, u64), ahash::RandomState>,
    hasher: ahash::RandomState,
    /// Keys removed because their deadline passed (read or swept) since start or
    /// [`Shard::take_expired`] (INFO `expired_keys`).
    expired: u64,
    /// Access history for LRU and LFU eviction; `None` (no cost) under any other policy.
    sketch: Option<Sketch>,
}

/// An entry built outside any lock, ready for [`Shard::load`] (snapshot restore).
#[derive(Debug)]
pub struct Prepared {
    hash: u64,
    /// Kept beside the item so loading need not read the item's (cold) memory.
    deadline: Option<u64>,
    item: Item,
}

impl Shard {
    /// An empty shard hashing keys with `hasher`.
    pub fn new(hasher: ahash::RandomState) -> Self {
        Shard {
            table: HashTable::new(),
            deadlines: Deadlines::default(),
            watches: HashMap::default(),
            hasher,
            expired: 0,
            sketch: None,
        }
    }

    /// A copy of the live entry for `key`. An entry whose deadline has passed is removed
    /// first (lazy expiry), so no reader ever sees it.
    pub fn get(&mut self, key: &[u8], now: Instant) -> Option<Entry> {
        self.live(key, now).map(Item::entry)
    }

    /// The live value of `key`, copied.
    pub fn value(&mut self, key: &[u8], now: Instant) -> Option<Value> {
        self.live(key, now).map(Item::to_value)
    }

    /// The kind of the live value of `key`, read from the entry's tag without copying it.
    pub fn kind(&mut self, key: &[u8], now: Instant) -> Option<Kind> {
        self.live(key, now).map(Item::kind)
    }

    /// Whether `key` is live.
    pub fn contains(&mut self, key: &[u8], now: Instant) -> bool {
        self.live(key, now).is_some()
    }

    /// `None` for a missing key, else the key's deadline (`Some(None)` without TTL).
    pub fn deadline(&mut self, key: &[u8], now: Instant) -> Option<Option<Instant>> {
        self.live(key, now)
            .map(|i| i.deadline().map(clock::from_micros))
    }

    /// Inserts or replaces `key`, returning the previous live entry (a copy).
    pub fn insert(&mut self, key: &[u8], entry: Entry, now: Instant) -> Option<Entry> {
        let old = self.get(key, now);
        self.put_value(key, &entry.value, entry.deadline, now);
        old
    }

    /// Sets `key` to `value` (of any kind) with `deadline`; returns whether a live key was
    /// replaced.
    pub fn put_value(
        &mut self,
        key: &[u8],
        value: &Value,
        deadline: Option<Instant>,
        now: Instant,
    ) -> bool {
        match value {
            Value::String(s) => self.put(key, s, deadline, now),
            other => self.put_item(
                key,
                Item::with_value(key, other.clone(), None),
                deadline,
                now,
            ),
        }
    }

    /// Sets `key` to `value` (of any kind, taken by value: a collection is not copied) with
    /// `deadline`; returns whether a live key was replaced.
    pub fn put_owned(
        &mut self,
        key: &[u8],
        value: Value,
        deadline: Option<Instant>,
        now: Instant,
    ) -> bool {
        match value {
            Value::String(s) => self.put(key, &s, deadline, now),
            other => self.put_item(key, Item::with_value(key, other, None), deadline, now),
        }
    }

    /// Sets `key` to the string `value` with `deadline`; returns whether a live key was
    /// replaced. The fast path for writes that do not need the old value: one hash, one probe.
    pub fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        deadline: Option<Instant>,
        now: Instant,
    ) -> bool {
        self.put_item(key, Item::new(key, value, None), deadline, now)
    }

    /// Replaces the string under `key` with what `f` makes of it (`None`: the key is missing
    /// or expired), keeping its deadline; returns `f`'s value and that deadline. One hash and
    /// one probe, and no allocation when the new value is as long as the old one: INCR's
    /// counters are rewritten in place. `f` sees the value before any change; when it fails,
    /// nothing changes.
    ///
    /// # Errors
    /// `f`'s error, or [`WrongType`] (converted) when `key` holds a collection.
    pub fn modify_string<V: AsRef<[u8]>, E: From<WrongType>>(
        &mut self,
        key: &[u8],
        now: Instant,
        f: impl FnOnce(Option<&[u8]>) -> Result<V, E>,
    ) -> Result<(V, Option<Instant>), E> {
        let hash = self.hasher.hash_one(key);
        let hasher = &self.hasher;
        let result = match self
            .table
            .entry(hash, |i| i.key() == key, |i| hasher.hash_one(i.key()))
        {
            hash_table::Entry::Occupied(mut slot) => {
                let deadline = slot.get().deadline();
                if deadline.is_some_and(|d| d <= clock::to_micros(now)) {
                    // Expired: a missing key to `f`, replaced by a key without a deadline.
                    let new = f(None)?;
                    if let Some(d) = deadline {
                        self.deadlines.remove(d, hash);
                    }
                    self.expired += 1;
                    *slot.get_mut() = Item::new(key, new.as_ref(), None);
                    (new, None, false)
                } else {
                    let item = slot.get_mut();
                    let old = item.string_mut().ok_or(WrongType)?;
                    let new = f(Some(old))?;
                    if new.as_ref().len() == old.len() {
                        old.copy_from_slice(new.as_ref());
                    } else {
                        *item = Item::new(key, new.as_ref(), deadline);
                    }
                    (new, deadline, true)
                }
            }
            hash_table::Entry::Vacant(slot) => {
                let new = f(None)?;
                slot.insert(Item::new(key, new.as_ref(), None));
                (new, None, false)
            }
        };
        let (new, deadline, existed) = result;
        self.touch(key);
        if self.sketch.is_some() {
            self.track_write(hash, existed, now);
        }
        Ok((new, deadline.map(clock::from_micros)))
    }

    /// Stores `item` (built without a deadline) under `key` with `deadline`.
    fn put_item(
        &mut self,
        key: &[u8],
        item: Item,
        deadline: Option<Instant>,
        now: Instant,
    ) -> bool {
        let hash = self.hasher.hash_one(key);
        let deadline = deadline.map(clock::to_micros);
        let item = if deadline.is_some() {
            item.redated(deadline)
        } else {
            item
        };
        let hasher = &self.hasher;
        let existed = match self
            .table
            .entry(hash, |i| i.key() == key, |i| hasher.hash_one(i.key()))
        {
            hash_table::Entry::Occupied(mut slot) => {
                let old = std::mem::replace(slot.get_mut(), item).deadline();
                if let Some(d) = old {
                    self.deadlines.remove(d, hash);
                }
                old.is_none_or(|d| d > clock::to_micros(now))
            }
            hash_table::Entry::Vacant(slot) => {
                slot.insert(item);
                false
            }
        };
        if let Some(d) = deadline {
            self.deadlines.add(d, hash);
        }
        self.touch(key);
        if self.sketch.is_some() {
            self.track_write(hash, existed, now);
        }
        existed
    }

    /// Builds an entry for [`Shard::load`] without touching the shard, from a value in its
    /// dumped form (see [`Dumped`]: for a string, its bytes; for a collection, its
    /// [`dump`] form).
    ///
    /// # Errors
    /// [`DumpError`] when a collection's dump does not decode.
    pub fn prepare(
        hasher: &ahash::RandomState,
        key: &[u8],
        kind: Kind,
        data: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Prepared, DumpError> {
        let deadline = deadline.map(clock::to_micros);
        let item = match kind {
            Kind::String => Item::new(key, data, deadline),
            kind => Item::with_value(key, dump::load(kind, data)?, deadline),
        };
        Ok(Prepared {
            hash: hasher.hash_one(key),
            deadline,
            item,
        })
    }

    /// Like [`Shard::prepare`], from a value already decoded.
    pub fn prepare_value(
        hasher: &ahash::RandomState,
        key: &[u8],
        value: Value,
        deadline: Option<Instant>,
    ) -> Prepared {
        let deadline = deadline.map(clock::to_micros);
        Prepared {
            hash: hasher.hash_one(key),
            deadline,
            item: Item::with_value(key, value, deadline),
        }
    }

    /// Inserts prepared entries in one go: the table is grown once, and inserting a whole
    /// shard's entries together keeps its table in cache. A key given twice keeps the last.
    pub fn load(&mut self, entries: Vec<Prepared>) {
        self.table
            .reserve(entries.len(), |i| self.hasher.hash_one(i.key()));
        let now = Instant::now();
        for Prepared {
            hash,
            deadline,
            item,
        } in entries
        {
            let hasher = &self.hasher;
            // The key is read only on a hash-tag match, which is rare for new keys.
            match self.table.entry(
                hash,
                |i| i.key() == item.key(),
                |i| hasher.hash_one(i.key()),
            ) {
                hash_table::Entry::Occupied(mut slot) => {
                    if let Some(d) = std::mem::replace(slot.get_mut(), item).deadline() {
                        self.deadlines.remove(d, hash);
                    }
                }
                hash_table::Entry::Vacant(slot) => {
                    slot.insert(item);
                }
            }
            if let Some(d) = deadline {
                self.deadlines.add(d, hash);
            }
            if self.sketch.is_some() {
                self.track_write(hash, false, now);
            }
        }
    }

    /// Removes `key`, returning a copy of its entry if it was live.
    pub fn remove(&mut self, key: &[u8], now: Instant) -> Option<Entry> {
        let item = self.take(key)?;
        let live = item.deadline().is_none_or(|d| d > clock::to_micros(now));
        live.then(|| item.into_entry())
    }

    /// Removes `key`; returns whether it was live.
    pub fn delete(&mut self, key: &[u8], now: Instant) -> bool {
        self.remove_if(key, |_| true, now)
    }

    /// Sets or clears the deadline of a live key. Returns false when the key does not exist.
    pub fn set_deadline(&mut self, key: &[u8], deadline: Option<Instant>, now: Instant) -> bool {
        if self.live(key, now).is_none() {
            return false;
        }
        let Some(item) = self.take(key) else {
            return false;
        };
        let hash = self.hasher.hash_one(key);
        let deadline = deadline.map(clock::to_micros);
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, item.redated(deadline), |i| hasher.hash_one(i.key()));
        if let Some(d) = deadline {
            self.deadlines.add(d, hash);
        }
        true
    }

    /// The live value of `key`, borrowed (no copy: what read commands look at).
    pub fn peek(&mut self, key: &[u8], now: Instant) -> Option<ValueRef<'_>> {
        self.live(key, now).map(Item::peek)
    }

    /// Changes the collection under `key` in place. A missing key gets an empty collection of
    /// `kind` first when `create` holds (and `None` is returned otherwise, without calling
    /// `f`). `f` checks the value's kind (a string is refused before it) and returns its
    /// result and whether it changed anything; a change bumps the key's WATCH version, and a
    /// collection left empty is deleted (a key never holds an empty collection). Returns
    /// `Ok(Some((result, Some(change))))` after a change, `Ok(Some((result, None)))` when
    /// nothing changed.
    ///
    /// # Errors
    /// [`WrongType`] when the key holds a string, when it is missing and `kind` is
    /// [`Kind::String`], or when `f` says so.
    pub fn update<R>(
        &mut self,
        key: &[u8],
        kind: Kind,
        create: bool,
        now: Instant,
        f: impl FnOnce(&mut Collection) -> Result<(R, bool), WrongType>,
    ) -> Result<Option<(R, Option<Change>)>, WrongType> {
        let hash = self.hasher.hash_one(key);
        self.live(key, now);
        match self.table.find_entry(hash, |i| i.key() == key) {
            Ok(mut slot) => {
                let Item::Boxed(b) = slot.get_mut() else {
                    return Err(WrongType);
                };
                let (result, changed) = f(&mut b.value)?;
                if !changed {
                    return Ok(Some((result, None)));
                }
                let emptied = b.value.is_empty();
                if emptied {
                    let (item, _) = slot.remove();
                    if let Some(d) = item.deadline() {
                        self.deadlines.remove(d, hash);
                    }
                }
                self.touch(key);
                let change = Change {
                    existed: true,
                    exists: !emptied,
                };
                Ok(Some((result, Some(change))))
            }
            Err(_) if !create => Ok(None),
            Err(_) => {
                let mut value = Collection::empty(kind).ok_or(WrongType)?;
                let (result, changed) = f(&mut value)?;
                if !changed || value.is_empty() {
                    return Ok(Some((result, None)));
                }
                let hasher = &self.hasher;
                self.table
                    .insert_unique(hash, Item::with_collection(key, value, None), |i| {
                        hasher.hash_one(i.key())
                    });
                self.touch(key);
                if self.sketch.is_some() {
                    self.track_write(hash, false, now);
                }
                let change = Change {
                    existed: false,
                    exists: true,
                };
                Ok(Some((result, Some(change))))
            }
        }
    }

    /// Removes every key whose deadline is at or before `now`; returns how many.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let now = clock::to_micros(now);
        let mut purged = 0;
        while let Some((deadline, hash, count)) = self.deadlines.pop_due(now) {
            for _ in 0..count {
                let hasher = &self.hasher;
                let found = self.table.find_entry(hash, |i| {
                    i.deadline() == Some(deadline) && hasher.hash_one(i.key()) == hash
                });
                if let Ok(slot) = found {
                    let (item, _) = slot.remove();
                    self.deadlines.forget(deadline);
                    let key: Box<[u8]> = item.key().into();
                    self.touch(&key);
                    purged += 1;
                }
            }
        }
        self.expired += purged as u64;
        purged
    }

    /// Keys removed because their deadline passed since start or the last reset.
    pub fn expired(&self) -> u64 {
        self.expired
    }

    /// Zeroes [`Shard::expired`] (CONFIG RESETSTAT).
    pub fn reset_expired(&mut self) {
        self.expired = 0;
    }

    /// Number of entries, including any whose deadline passed but that were not purged yet:
    /// call [`Shard::purge_expired`] first for an exact count.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when the shard holds no entries.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Number of entries that have a deadline (same caveat as [`Shard::len`]).
    pub fn len_with_deadline(&self) -> usize {
        self.deadlines.len
    }

    /// The sum of the deadlines of the entries that have one, in microseconds on the store
    /// clock ([`clock::to_micros`]); over [`Shard::len_with_deadline`] it is their average
    /// deadline (same caveat as [`Shard::len`]).
    pub fn deadline_sum(&self) -> u128 {
        self.deadlines.sum
    }

    /// Iterates over all keys with the kind of their value (same caveat as [`Shard::len`]).
    pub fn keys(&self) -> impl Iterator<Item = (&[u8], Kind)> {
        self.table.iter().map(|i| (i.key(), i.kind()))
    }

    /// Iterates over all entries as `(key, value, deadline)`, values copied (same caveat as
    /// [`Shard::len`]).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Value, Option<Instant>)> {
        self.table
            .iter()
            .map(|i| (i.key(), i.to_value(), i.deadline().map(clock::from_micros)))
    }

    /// Appends every entry, as stored, to `out` (one memcpy per entry, no allocation but the
    /// buffer's growth): what a snapshot copies under the shard lock. Read it back with
    /// [`dump_entries`].
    pub fn dump_into(&self, out: &mut Vec<u8>) {
        self.dump_matching_into(out, |_| true);
    }

    /// Like [`Shard::dump_into`], for the entries whose key `keep` accepts only (a Raft group's
    /// share of a store that several groups use).
    pub fn dump_matching_into(&self, out: &mut Vec<u8>, mut keep: impl FnMut(&[u8]) -> bool) {
        for item in self.table.iter().filter(|i| keep(i.key())) {
            item.dump_into(out);
        }
    }

    /// Removes every entry whose key `keep` rejects (expired or not); returns how many. Watched
    /// keys removed count as changed. No allocation: the deadline index is updated by hash.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) -> usize {
        let (hasher, deadlines, watches) = (&self.hasher, &mut self.deadlines, &mut self.watches);
        let before = self.table.len();
        self.table.retain(|item| {
            let key = item.key();
            if keep(key) {
                return true;
            }
            if let Some(d) = item.deadline() {
                deadlines.remove(d, hasher.hash_one(key));
            }
            touch(watches, key);
            false
        });
        before - self.table.len()
    }

    /// Removes everything. Watched keys that existed count as changed (as in Redis, a watched
    /// key that did not exist is not touched by a flush).
    pub fn clear(&mut self) {
        self.touch_existing(None);
        self.table.clear();
        self.deadlines = Deadlines::default();
    }

    /// Exchanges the contents (not the watches) of two shards, for SWAPDB. A watched key in
    /// either counts as changed if it exists on either side. Both shards hash with the same
    /// seed (the store's).
    pub fn swap_contents(&mut self, other: &mut Shard) {
        self.touch_existing(Some(&other.table));
        other.touch_existing(Some(&self.table));
        std::mem::swap(&mut self.table, &mut other.table);
        std::mem::swap(&mut self.deadlines, &mut other.deadlines);
        std::mem::swap(&mut self.sketch, &mut other.sketch);
    }

    /// Bumps every watched key present in this shard's table or in `also`.
    fn touch_existing(&mut self, also: Option<&HashTable<Item>>) {
        if self.watches.is_empty() {
            return;
        }
        let hasher = &self.hasher;
        let table = &self.table;
        for (key, slot) in self.watches.iter_mut() {
            let hash = hasher.hash_one(&key[..]);
            let present = |t: &HashTable<Item>| t.find(hash, |i| i.key() == &key[..]).is_some();
            if present(table) || also.is_some_and(present) {
                slot.1 += 1;
            }
        }
    }

    /// Starts watching `key`; returns its current version.
    pub fn watch(&mut self, key: &[u8]) -> u64 {
        let slot = self.watches.entry(key.into()).or_insert((0, 0));
        slot.0 += 1;
        slot.1
    }

    /// Stops one watcher of `key`.
    pub fn unwatch(&mut self, key: &[u8]) {
        if let Some(slot) = self.watches.get_mut(key) {
            slot.0 -= 1;
            if slot.0 == 0 {
                self.watches.remove(key);
            }
        }
    }

    /// The version of a watched key, after applying lazy expiry (an expired key counts as
    /// changed, as in Redis).
    pub fn version(&mut self, key: &[u8], now: Instant) -> u64 {
        self.live(key, now);
        self.watches.get(key).map_or(0, |slot| slot.1)
    }

    /// The live item of `key`: one hash and one probe; an expired item found on the way is
    /// removed (lazy expiry).
    fn live(&mut self, key: &[u8], now: Instant) -> Option<&Item> {
        let hash = self.hasher.hash_one(key);
        let slot = self.table.find_entry(hash, |i| i.key() == key).ok()?;
        match slot.get().deadline() {
            Some(d) if d <= clock::to_micros(now) => {
                slot.remove();
                self.deadlines.remove(d, hash);
                self.expired += 1;
                touch(&mut self.watches, key);
                None
            }
            _ => {
                // A read (or a write's look) is an access for LRU and LFU.
                if let Some(sketch) = &mut self.sketch {
                    sketch.touch(hash, clock::to_micros(now) / 1000);
                }
                Some(&*slot.into_mut())
            }
        }
    }

    /// Removes `key`'s item whatever its deadline, keeping the index in step.
    fn take(&mut self, key: &[u8]) -> Option<Item> {
        let hash = self.hasher.hash_one(key);
        let (item, _) = self
            .table
            .find_entry(hash, |i| i.key() == key)
            .ok()?
            .remove();
        if let Some(d) = item.deadline() {
            self.deadlines.remove(d, hash);
        }
        self.touch(key);
        Some(item)
    }

    /// Removes `key` if `pred` holds for its item; returns whether a live key was removed.
    fn remove_if(&mut self, key: &[u8], pred: impl FnOnce(&Item) -> bool, now: Instant) -> bool {
        let hash = self.hasher.hash_one(key);
        let Ok(slot) = self.table.find_entry(hash, |i| i.key() == key) else {
            return false;
        };
        if !pred(slot.get()) {
            return false;
        }
        let (item, _) = slot.remove();
        let deadline = item.deadline();
        if let Some(d) = deadline {
            self.deadlines.remove(d, hash);
        }
        self.touch(key);
        deadline.is_none_or(|d| d > clock::to_micros(now))
    }

    fn touch(&mut self, key: &[u8]) {
        touch(&mut self.watches, key);
    }
}

/// What [`Shard::update`] did to a key it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The key existed before (false: the update created it).
    pub existed: bool,
    /// The key exists after (false: the update emptied, so deleted, it).
    pub exists: bool,
}

/// The deadline index of a shard: `(deadline, key hash) -> how many keys` for every entry with a
/// deadline, with their number and the sum of their deadlines (INFO's `avg_ttl` is that sum
/// over the number, minus now: exact, and no per-entry field or scan). Hashes instead of keys:
/// no second copy of each key, no allocation to look one up (a full 64-bit hash collision at
/// the same microsecond is counted, not lost). Deadlines are microseconds on the store clock.
#[derive(Debug, Default)]
struct Deadlines {
    index: BTreeMap<(u64, u64), u32>,
    /// Entries with a deadline.
    len: usize,
    /// The sum of their deadlines. A u128: a u64 of microseconds holds one far deadline, not
    /// the sum of many.
    sum: u128,
}

impl Deadlines {
    /// Counts an entry with `deadline` whose key hashes to `hash`.
    fn add(&mut self, deadline: u64, hash: u64) {
        *self.index.entry((deadline, hash)).or_insert(0) += 1;
        self.len += 1;
        self.sum += u128::from(deadline);
    }

    /// Forgets one entry with `deadline` and `hash` (none if there is no such entry).
    fn remove(&mut self, deadline: u64, hash: u64) {
        if let std::collections::btree_map::Entry::Occupied(mut slot) =
            self.index.entry((deadline, hash))
        {
            *slot.get_mut() -= 1;
            if *slot.get() == 0 {
                slot.remove();
            }
            self.forget(deadline);
        }
    }

    /// Takes the earliest `(deadline, hash, how many)` out of the index if it is due at `now`.
    /// The entries stay counted until each is [`Deadlines::forget`]-ed as it is removed.
    fn pop_due(&mut self, now: u64) -> Option<(u64, u64, u32)> {
        let (&(deadline, hash), _) = self.index.first_key_value()?;
        if deadline > now {
            return None;
        }
        let count = self.index.pop_first().map_or(0, |(_, n)| n);
        Some((deadline, hash, count))
    }

    /// Uncounts one entry with `deadline` (already out of the index).
    fn forget(&mut self, deadline: u64) {
        self.len -= 1;
        self.sum -= u128::from(deadline);
    }
}

/// Bumps the version of `key` if someone watches it. One emptiness check otherwise.
fn touch(watches: &mut HashMap<Box<[u8]>, (u32, u64), ahash::RandomState>, key: &[u8]) {
    if !watches.is_empty() {
        if let Some(slot) = watches.get_mut(key) {
            slot.1 += 1;
        }
    }
}

/// One entry read back from a dump (see [`dump_entries`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dumped<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value's type.
    pub kind: Kind,
    /// The value's bytes: the string itself for [`Kind::String`], the [`dump`] form of a
    /// collection.
    pub data: &'a [u8],
    /// The deadline, if the key has a TTL.
    pub deadline: Option<Instant>,
}

/// Iterates over the entries that [`Shard::dump_into`] wrote.
pub fn dump_entries(dump: &[u8]) -> impl Iterator<Item = Dumped<'_>> {
    let mut rest = dump;
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let (raw, tail) = tail.split_at_checked(len)?;
        rest = tail;
        let (word, mut offset) = get_varint(raw);
        let deadline = if word & 1 == 1 {
            let d = raw.get(offset..offset + 8)?;
            offset += 8;
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(d);
            Some(clock::from_micros(u64::from_le_bytes(bytes)))
        } else {
            None
        };
        let key_len = (word >> 2) as usize;
        let key = raw.get(offset..offset + key_len)?;
        let mut data = raw.get(offset + key_len..)?;
        let mut kind = Kind::String;
        if word & 2 == 2 {
            let (&code, rest) = data.split_first()?;
            kind = Kind::from_code(code)?;
            data = rest;
        }
        Some(Dumped {
            key,
            kind,
            data,
            deadline,
        })
    })
}

#[cfg(test)]
mod tests;
