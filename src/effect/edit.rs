//! Element-level changes to a hash, set or sorted set: what a write to a big collection
//! records instead of the collection's whole new value (HSET on a hash of a million fields
//! logs one field, not a million).
//!
//! Every edit states final element values (a field *now holds* this value, a member *now
//! has* this score, these members *are gone*), never a step (no "add 1"), so applying one
//! twice leaves the same state, as the effect stream requires: a consumer replaying the log
//! from a point before its snapshot converges to the same data. An edit that creates
//! elements creates the key when it is missing and replaces a value of another type (the
//! writer recorded the key's creation as a whole `Put`; a replay that meets another type is
//! replaying over a later state, which the records after it overwrite again). Lists are
//! order-dependent, so their writes stay whole values.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::store::{Collection, Hash, Kind, Set, Shard, WrongType, ZSet};

/// One element-level change to the collection under an effect's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Edit {
    /// These hash fields now hold these values.
    HashSet(Vec<(Bytes, Bytes)>),
    /// These hash fields are gone.
    HashDel(Vec<Bytes>),
    /// These set members are present.
    SetAdd(Vec<Bytes>),
    /// These set members are gone.
    SetRem(Vec<Bytes>),
    /// These sorted-set members now have these scores.
    ZSetPut(Vec<(Bytes, Score)>),
    /// These sorted-set members are gone.
    ZSetRem(Vec<Bytes>),
}

/// A score kept by its bits, so edits compare exactly (and `Effect` stays `Eq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score(u64);

impl Score {
    /// The score `value` (never NaN).
    pub fn new(value: f64) -> Score {
        Score(value.to_bits())
    }

    /// The score.
    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

impl Edit {
    /// The type of collection the edit changes.
    pub fn kind(&self) -> Kind {
        match self {
            Edit::HashSet(_) | Edit::HashDel(_) => Kind::Hash,
            Edit::SetAdd(_) | Edit::SetRem(_) => Kind::Set,
            Edit::ZSetPut(_) | Edit::ZSetRem(_) => Kind::ZSet,
        }
    }

    /// Whether it adds elements (and so may create the key).
    fn adds(&self) -> bool {
        matches!(self, Edit::HashSet(_) | Edit::SetAdd(_) | Edit::ZSetPut(_))
    }

    /// The bytes of elements it carries.
    pub fn data_bytes(&self) -> usize {
        match self {
            Edit::HashSet(pairs) => pairs.iter().map(|(f, v)| f.len() + v.len()).sum(),
            Edit::ZSetPut(pairs) => pairs.iter().map(|(m, _)| m.len() + 8).sum(),
            Edit::HashDel(items)
            | Edit::SetAdd(items)
            | Edit::SetRem(items)
            | Edit::ZSetRem(items) => items.iter().map(Bytes::len).sum(),
        }
    }

    /// Applies the edit to `key` in `shard` (see the module docs for missing keys and other
    /// types).
    pub fn apply(&self, shard: &mut Shard, key: &[u8], now: Instant) {
        let adds = self.adds();
        let run = |shard: &mut Shard| {
            shard.update(key, self.kind(), adds, now, |v| Ok(((), self.apply_to(v)?)))
        };
        if run(shard).is_err() && adds {
            // Another type: replaced (see the module docs).
            shard.delete(key, now);
            let _ = run(shard);
        }
    }

    /// Applies the edit to a collection of its kind; whether anything changed.
    fn apply_to(&self, value: &mut Collection) -> Result<bool, WrongType> {
        Ok(match self {
            Edit::HashSet(pairs) => {
                let h = value.as_hash_mut()?;
                pairs.iter().for_each(|(f, v)| {
                    h.insert(f, v);
                });
                !pairs.is_empty()
            }
            Edit::HashDel(fields) => remove_fields(value.as_hash_mut()?, fields),
            Edit::SetAdd(members) => {
                let s = value.as_set_mut()?;
                members.iter().fold(false, |any, m| s.insert(m) | any)
            }
            Edit::SetRem(members) => remove_members(value.as_set_mut()?, members),
            Edit::ZSetPut(pairs) => {
                let z = value.as_zset_mut()?;
                pairs.iter().for_each(|(m, score)| {
                    z.insert(m, score.get());
                });
                !pairs.is_empty()
            }
            Edit::ZSetRem(members) => remove_scored(value.as_zset_mut()?, members),
        })
    }
}

fn remove_fields(h: &mut Hash, fields: &[Bytes]) -> bool {
    fields.iter().fold(false, |any, f| h.remove(f) | any)
}

fn remove_members(s: &mut Set, members: &[Bytes]) -> bool {
    members.iter().fold(false, |any, m| s.remove(m) | any)
}

fn remove_scored(z: &mut ZSet, members: &[Bytes]) -> bool {
    members.iter().fold(false, |any, m| z.remove(m) | any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Kind, Value};

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn edits_are_idempotent_create_and_replace_other_types() {
        let mut shard = Shard::new(ahash::RandomState::new());
        let now = Instant::now();
        let edits = [
            Edit::HashSet(vec![(b("f"), b("1")), (b("g"), b("2"))]),
            Edit::HashDel(vec![b("g"), b("missing")]),
        ];
        for _ in 0..2 {
            edits.iter().for_each(|e| e.apply(&mut shard, b"h", now));
        }
        let mut want = Hash::new();
        want.insert(b"f", b"1");
        assert_eq!(shard.value(b"h", now), Some(Value::Hash(want)));
        // Removing the last field removes the key; removing from a missing key does nothing.
        Edit::HashDel(vec![b("f")]).apply(&mut shard, b"h", now);
        assert!(!shard.contains(b"h", now));
        Edit::SetRem(vec![b("x")]).apply(&mut shard, b"h", now);
        assert!(!shard.contains(b"h", now));
        // An adding edit over another type replaces it; a removing one leaves it.
        shard.put(b"k", b"text", None, now);
        Edit::SetRem(vec![b("x")]).apply(&mut shard, b"k", now);
        assert_eq!(shard.kind(b"k", now), Some(Kind::String));
        Edit::ZSetPut(vec![(b("m"), Score::new(f64::INFINITY))]).apply(&mut shard, b"k", now);
        let mut z = ZSet::new();
        z.insert(b"m", f64::INFINITY);
        assert_eq!(shard.value(b"k", now), Some(Value::ZSet(z)));
        Edit::SetAdd(vec![b("a"), b("a")]).apply(&mut shard, b"s", now);
        assert_eq!(shard.peek(b"s", now).map(|v| v.kind()), Some(Kind::Set));
        assert_eq!(Edit::SetAdd(vec![b("ab")]).data_bytes(), 2);
    }
}
