//! One independently locked part of a keyspace: a hash map of entries plus an ordered index of
//! the deadlines of the keys that have one.
//!
//! A shard is plain synchronous data; its owner wraps it in a mutex. It must never be held
//! across an `.await`.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use tokio::time::Instant;

/// A value with its optional expiry deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stored bytes.
    pub value: Bytes,
    /// When the key stops existing; `None` for keys without a TTL.
    pub deadline: Option<Instant>,
}

/// A map of live entries and the deadlines index that lets expiry find due keys in order.
#[derive(Debug, Default)]
pub struct Shard {
    map: HashMap<Bytes, Entry, ahash::RandomState>,
    /// `(deadline, key)` for every entry with a deadline; kept in step with `map`.
    deadlines: BTreeSet<(Instant, Bytes)>,
}

impl Shard {
    /// The live entry for `key`, removing it first if its deadline has passed (lazy expiry).
    pub fn get(&mut self, key: &[u8], now: Instant) -> Option<&Entry> {
        self.expire_if_due(key, now);
        self.map.get(key)
    }

    /// Like [`Shard::get`] but mutable. Changing `deadline` through it would desynchronise the
    /// index: use [`Shard::set_deadline`] for that.
    pub fn get_mut(&mut self, key: &[u8], now: Instant) -> Option<&mut Entry> {
        self.expire_if_due(key, now);
        self.map.get_mut(key)
    }

    /// Inserts or replaces `key`, returning the previous live entry.
    pub fn insert(&mut self, key: &[u8], entry: Entry, now: Instant) -> Option<Entry> {
        self.expire_if_due(key, now);
        let key = match self.map.get_key_value(key) {
            Some((k, _)) => k.clone(),
            // Copy the key out of the request buffer so the map never pins a whole frame.
            None => Bytes::copy_from_slice(key),
        };
        if let Some(deadline) = entry.deadline {
            self.deadlines.insert((deadline, key.clone()));
        }
        let old = self.map.insert(key.clone(), entry);
        if let Some(Entry {
            deadline: Some(d), ..
        }) = &old
        {
            self.deadlines.remove(&(*d, key));
        }
        old
    }

    /// Removes `key`, returning its entry if it was live.
    pub fn remove(&mut self, key: &[u8], now: Instant) -> Option<Entry> {
        self.expire_if_due(key, now);
        let (key, entry) = self.map.remove_entry(key)?;
        if let Some(d) = entry.deadline {
            self.deadlines.remove(&(d, key));
        }
        Some(entry)
    }

    /// Sets or clears the deadline of a live key. Returns false when the key does not exist.
    pub fn set_deadline(&mut self, key: &[u8], deadline: Option<Instant>, now: Instant) -> bool {
        self.expire_if_due(key, now);
        let Some((k, entry)) = self.map.get_key_value(key) else {
            return false;
        };
        let k = k.clone();
        let old = entry.deadline;
        if let Some(d) = old {
            self.deadlines.remove(&(d, k.clone()));
        }
        if let Some(d) = deadline {
            self.deadlines.insert((d, k.clone()));
        }
        if let Some(entry) = self.map.get_mut(&k) {
            entry.deadline = deadline;
        }
        true
    }

    /// Removes every key whose deadline is at or before `now`; returns how many.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let mut purged = 0;
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline > now {
                break;
            }
            if let Some((_, key)) = self.deadlines.pop_first() {
                self.map.remove(&key);
                purged += 1;
            }
        }
        purged
    }

    /// Number of entries, including any whose deadline passed but that were not purged yet:
    /// call [`Shard::purge_expired`] first for an exact count.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when the shard holds no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of entries that have a deadline (same caveat as [`Shard::len`]).
    pub fn len_with_deadline(&self) -> usize {
        self.deadlines.len()
    }

    /// Iterates over all entries (same caveat as [`Shard::len`]).
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.map.iter()
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.map.clear();
        self.deadlines.clear();
    }

    fn expire_if_due(&mut self, key: &[u8], now: Instant) {
        let due = matches!(self.map.get(key), Some(Entry { deadline: Some(d), .. }) if *d <= now);
        if due {
            if let Some((k, entry)) = self.map.remove_entry(key) {
                if let Some(d) = entry.deadline {
                    self.deadlines.remove(&(d, k));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entry(v: &'static [u8], deadline: Option<Instant>) -> Entry {
        Entry {
            value: Bytes::from_static(v),
            deadline,
        }
    }

    #[test]
    fn expired_entries_are_invisible_and_purged() {
        let now = Instant::now();
        let mut shard = Shard::default();
        shard.insert(b"a", entry(b"1", Some(now + Duration::from_secs(1))), now);
        shard.insert(b"b", entry(b"2", None), now);
        assert!(shard.get(b"a", now).is_some());
        let later = now + Duration::from_secs(2);
        assert!(shard.get(b"a", later).is_none(), "lazy expiry on read");
        assert_eq!(shard.len(), 1);
        assert_eq!(shard.len_with_deadline(), 0);
    }

    #[test]
    fn purge_removes_only_due_keys_and_keeps_index_in_step() {
        let now = Instant::now();
        let mut shard = Shard::default();
        for i in 0..10u64 {
            let key = format!("k{i}");
            let d = now + Duration::from_secs(i);
            shard.insert(key.as_bytes(), entry(b"v", Some(d)), now);
        }
        shard.set_deadline(b"k9", None, now);
        shard.insert(b"k8", entry(b"new", None), now);
        assert_eq!(shard.purge_expired(now + Duration::from_secs(5)), 6);
        assert_eq!(shard.len(), 4);
        assert_eq!(shard.len_with_deadline(), 2);
        assert!(shard.remove(b"k7", now).is_some());
        assert_eq!(shard.len_with_deadline(), 1);
    }
}
