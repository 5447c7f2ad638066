//! What a key holds: a [`Value`] of one [`Kind`], the Redis type `TYPE` reports.
//!
//! Strings live inside the store's entries; lists, hashes, sets and sorted sets are Rust
//! types of their own (`list`, `hash`, `set`, `zset`), each with a compact encoding for small
//! values and a table or tree above Redis's thresholds (`limits`). Commands never match on a
//! value's representation directly: they ask for the kind they operate on
//! ([`Value::as_string`], [`ValueRef::as_hash`], ...) and turn a [`WrongType`] into Redis's
//! `WRONGTYPE` error, so a string command can never silently read a list.
//!
//! `dump` is the one stable binary form of every collection: snapshots, the append-only log,
//! Raft entries and slot moves all carry it.

pub mod collection;
pub mod dump;
pub mod hash;
pub mod limits;
pub mod list;
pub mod set;
pub mod zset;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use collection::Collection;
pub use dump::DumpError;
pub use hash::Hash;
pub use list::List;
pub use set::Set;
pub use zset::ZSet;

/// A value stored under a key (serde: replication carries it inside effects; collections
/// travel in their [`dump`] form). Variants are only ever appended, so older encoded
/// effects decode unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// A binary-safe string (Redis's `string` type: SET, GET, INCR, APPEND...).
    String(Bytes),
    /// A list (LPUSH, LRANGE...).
    List(List),
    /// A hash (HSET, HGETALL...).
    Hash(Hash),
    /// A set (SADD, SMEMBERS...).
    Set(Set),
    /// A sorted set (ZADD, ZRANGE...).
    ZSet(ZSet),
}

/// The type of a value, as Redis's `TYPE` and `SCAN ... TYPE` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `string`.
    String,
    /// `list`.
    List,
    /// `set`.
    Set,
    /// `zset`.
    ZSet,
    /// `hash`.
    Hash,
}

/// A command met a value of another kind than the one it operates on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
pub struct WrongType;

/// A value as it sits in the store, borrowed: what read commands look at without copying.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    /// A string's bytes.
    String(&'a [u8]),
    /// A list.
    List(&'a List),
    /// A hash.
    Hash(&'a Hash),
    /// A set.
    Set(&'a Set),
    /// A sorted set.
    ZSet(&'a ZSet),
}

impl Value {
    /// An empty collection of `kind` (an empty string for [`Kind::String`]).
    pub fn empty(kind: Kind) -> Value {
        match kind {
            Kind::String => Value::String(Bytes::new()),
            Kind::List => Value::List(List::new()),
            Kind::Hash => Value::Hash(Hash::new()),
            Kind::Set => Value::Set(Set::new()),
            Kind::ZSet => Value::ZSet(ZSet::new()),
        }
    }

    /// The kind of this value.
    pub fn kind(&self) -> Kind {
        self.as_ref().kind()
    }

    /// Borrows the value.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::String(s) => ValueRef::String(s),
            Value::List(l) => ValueRef::List(l),
            Value::Hash(h) => ValueRef::Hash(h),
            Value::Set(s) => ValueRef::Set(s),
            Value::ZSet(z) => ValueRef::ZSet(z),
        }
    }

    /// True for a collection without elements (a key never holds one: it is deleted).
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::String(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }

    /// The string this value holds.
    ///
    /// # Errors
    /// [`WrongType`] when the value is not a string.
    pub fn as_string(&self) -> Result<&Bytes, WrongType> {
        match self {
            Value::String(s) => Ok(s),
            _ => Err(WrongType),
        }
    }

    /// The string this value holds, by value.
    ///
    /// # Errors
    /// [`WrongType`] when the value is not a string.
    pub fn into_string(self) -> Result<Bytes, WrongType> {
        match self {
            Value::String(s) => Ok(s),
            _ => Err(WrongType),
        }
    }

    /// The list, for changing it.
    ///
    /// # Errors
    /// [`WrongType`] for another kind.
    pub fn as_list_mut(&mut self) -> Result<&mut List, WrongType> {
        match self {
            Value::List(l) => Ok(l),
            _ => Err(WrongType),
        }
    }

    /// The hash, for changing it.
    ///
    /// # Errors
    /// [`WrongType`] for another kind.
    pub fn as_hash_mut(&mut self) -> Result<&mut Hash, WrongType> {
        match self {
            Value::Hash(h) => Ok(h),
            _ => Err(WrongType),
        }
    }

    /// The set, for changing it.
    ///
    /// # Errors
    /// [`WrongType`] for another kind.
    pub fn as_set_mut(&mut self) -> Result<&mut Set, WrongType> {
        match self {
            Value::Set(s) => Ok(s),
            _ => Err(WrongType),
        }
    }

    /// The sorted set, for changing it.
    ///
    /// # Errors
    /// [`WrongType`] for another kind.
    pub fn as_zset_mut(&mut self) -> Result<&mut ZSet, WrongType> {
        match self {
            Value::ZSet(z) => Ok(z),
            _ => Err(WrongType),
        }
    }

    /// OBJECT ENCODING's answer, by Redis 7.0's rules.
    pub fn encoding(&self) -> &'static str {
        self.as_ref().encoding()
    }

    /// The bytes the value's payload takes (MEMORY USAGE, DEBUG OBJECT).
    pub fn memory_usage(&self) -> usize {
        self.as_ref().memory_usage()
    }
}

impl<'a> ValueRef<'a> {
    /// The kind of this value.
    pub fn kind(self) -> Kind {
        match self {
            ValueRef::String(_) => Kind::String,
            ValueRef::List(_) => Kind::List,
            ValueRef::Hash(_) => Kind::Hash,
            ValueRef::Set(_) => Kind::Set,
            ValueRef::ZSet(_) => Kind::ZSet,
        }
    }

    /// A copy of the value.
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::String(s) => Value::String(Bytes::copy_from_slice(s)),
            ValueRef::List(l) => Value::List(l.clone()),
            ValueRef::Hash(h) => Value::Hash(h.clone()),
            ValueRef::Set(s) => Value::Set(s.clone()),
            ValueRef::ZSet(z) => Value::ZSet(z.clone()),
        }
    }

    /// The string's bytes.
    ///
    /// # Errors
    /// [`WrongType`] for another kind.
    pub fn as_string(self) -> Result<&'a [u8], WrongType> {
        match self {
            ValueRef::String(s) => Ok(s),
            _ => Err(WrongType),
        }
    }

    /// The list.
    ///
    /// # Errors
    /// [`WrongType`] for another kind.
    pub fn as_list(self) -> Result<&'a List, WrongType> {
        match self {
            ValueRef::List(l) => Ok(l),
            _ => Err(WrongType),
        }
    }

    /// The hash.
    ///
    /// # Errors
    /// [`WrongType`] for another kind.
    pub fn as_hash(self) -> Result<&'a Hash, WrongType> {
        match self {
            ValueRef::Hash(h) => Ok(h),
            _ => Err(WrongType),
        }
    }

    /// The set.
    ///
    /// # Errors
    /// [`WrongType`] for another kind.
    pub fn as_set(self) -> Result<&'a Set, WrongType> {
        match self {
            ValueRef::Set(s) => Ok(s),
            _ => Err(WrongType),
        }
    }

    /// The sorted set.
    ///
    /// # Errors
    /// [`WrongType`] for another kind.
    pub fn as_zset(self) -> Result<&'a ZSet, WrongType> {
        match self {
            ValueRef::ZSet(z) => Ok(z),
            _ => Err(WrongType),
        }
    }

    /// OBJECT ENCODING's answer, by Redis 7.0's rules.
    pub fn encoding(self) -> &'static str {
        match self {
            ValueRef::String(s) if s.len() <= 20 && parse_int(s).is_some() => "int",
            ValueRef::String(s) if s.len() <= 44 => "embstr",
            ValueRef::String(_) => "raw",
            ValueRef::List(l) => l.encoding(),
            ValueRef::Hash(h) => h.encoding(),
            ValueRef::Set(s) => s.encoding(),
            ValueRef::ZSet(z) => z.encoding(),
        }
    }

    /// The bytes the value's payload takes (MEMORY USAGE, DEBUG OBJECT).
    pub fn memory_usage(self) -> usize {
        match self {
            ValueRef::String(s) => s.len(),
            ValueRef::List(l) => l.memory_usage(),
            ValueRef::Hash(h) => h.memory_usage(),
            ValueRef::Set(s) => s.memory_usage(),
            ValueRef::ZSet(z) => z.memory_usage(),
        }
    }
}

/// `member` as a 64-bit integer when it is one in canonical form, as Redis's `string2ll`
/// takes it (what the intset and list nodes store as integers, and OBJECT ENCODING's `int`): optional `-`, no leading zeros (except `0` itself), no `+`, no `-0`, no spaces.
pub fn parse_int(member: &[u8]) -> Option<i64> {
    let (negative, digits) = match member {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, member),
    };
    match digits {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ if digits.len() > 19 => return None,
        _ => {}
    }
    // Accumulate negatively so that i64::MIN parses.
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(n)
    } else {
        n.checked_neg()
    }
}

impl Kind {
    /// Every kind, in the order Redis documents them.
    pub const ALL: [Kind; 5] = [Kind::String, Kind::List, Kind::Set, Kind::ZSet, Kind::Hash];

    /// The name `TYPE` answers and snapshots store.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::Hash => "hash",
        }
    }

    /// The kind with this name (case-insensitive, as `SCAN ... TYPE` takes it), or `None`
    /// for a name no value here can have.
    pub fn from_name(name: &[u8]) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// The one-byte code dumps store (stable: never renumbered).
    pub fn code(self) -> u8 {
        match self {
            Kind::String => 0,
            Kind::List => 1,
            Kind::Set => 2,
            Kind::ZSet => 3,
            Kind::Hash => 4,
        }
    }

    /// The kind with this dump code.
    pub fn from_code(code: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// Serde for the collections: their [`dump`] bytes.
macro_rules! serde_by_dump {
    ($ty:ty, $variant:ident) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut out = Vec::new();
                dump::collection(ValueRef::$variant(self), &mut out);
                s.serialize_bytes(&out)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let data = Bytes::deserialize(d)?;
                match dump::load(Kind::$variant, &data) {
                    Ok(Value::$variant(v)) => Ok(v),
                    Ok(_) => Err(serde::de::Error::custom("a dump of another type")),
                    Err(e) => Err(serde::de::Error::custom(e)),
                }
            }
        }
    };
}

serde_by_dump!(List, List);
serde_by_dump!(Hash, Hash);
serde_by_dump!(Set, Set);
serde_by_dump!(ZSet, ZSet);

#[cfg(test)]
mod tests;
