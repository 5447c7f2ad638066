//! [`Collection`]: a [`Value`] that is not a string, as a store entry holds it.
//!
//! A string lives inside its entry's own allocation, so the entry of a list, hash, set or
//! sorted set never needs [`Value`]'s 32-byte `Bytes` variant. Without it the enum takes 24
//! bytes, not 40: the set's representation leaves a niche in its first byte for the tag, and
//! the other three kinds (16 bytes at most) fit beside it. Every key of a collection pays for
//! these bytes (see `store::shard::item`).

use bytes::Bytes;

use super::{Hash, Kind, List, Set, Value, ValueRef, WrongType, ZSet};

/// A list, hash, set or sorted set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collection {
    /// A list.
    List(List),
    /// A hash.
    Hash(Hash),
    /// A set.
    Set(Set),
    /// A sorted set.
    ZSet(ZSet),
}

impl Collection {
    /// An empty collection of `kind`; `None` for [`Kind::String`].
    pub fn empty(kind: Kind) -> Option<Collection> {
        Some(match kind {
            Kind::String => return None,
            Kind::List => Collection::List(List::new()),
            Kind::Hash => Collection::Hash(Hash::new()),
            Kind::Set => Collection::Set(Set::new()),
            Kind::ZSet => Collection::ZSet(ZSet::new()),
        })
    }

    /// The collection `value` holds, or the string it holds.
    ///
    /// # Errors
    /// The string's bytes when `value` is a string.
    pub fn from_value(value: Value) -> Result<Collection, Bytes> {
        Ok(match value {
            Value::String(s) => return Err(s),
            Value::List(l) => Collection::List(l),
            Value::Hash(h) => Collection::Hash(h),
            Value::Set(s) => Collection::Set(s),
            Value::ZSet(z) => Collection::ZSet(z),
        })
    }

    /// The kind of this collection.
    pub fn kind(&self) -> Kind {
        self.as_ref().kind()
    }

    /// Borrows the collection.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Collection::List(l) => ValueRef::List(l),
            Collection::Hash(h) => ValueRef::Hash(h),
            Collection::Set(s) => ValueRef::Set(s),
            Collection::ZSet(z) => ValueRef::ZSet(z),
        }
    }

    /// True without elements (a key never holds one: it is deleted).
    pub fn is_empty(&self) -> bool {
        match self {
            Collection::List(l) => l.is_empty(),
            Collection::Hash(h) => h.is_empty(),
            Collection::Set(s) => s.is_empty(),
            Collection::ZSet(z) => z.is_empty(),
        }
    }

    /// The list, for changing it.
    ///
    /// # Errors
    /// [`WrongType`] for another kind.
    pub fn as_list_mut(&mut self) -> Result<&mut List, WrongType> {
        match self {
            Collection::List(l) => Ok(l),
            _ => Err(WrongType),
        }
    }

    /// The hash, for changing it.
    ///
    /// # Errors
    /// [`WrongType`] for another kind.
    pub fn as_hash_mut(&mut self) -> Result<&mut Hash, WrongType> {
        match self {
            Collection::Hash(h) => Ok(h),
            _ => Err(WrongType),
        }
    }

    /// The set, for changing it.
    ///
    /// # Errors
    /// [`WrongType`] for another kind.
    pub fn as_set_mut(&mut self) -> Result<&mut Set, WrongType> {
        match self {
            Collection::Set(s) => Ok(s),
            _ => Err(WrongType),
        }
    }

    /// The sorted set, for changing it.
    ///
    /// # Errors
    /// [`WrongType`] for another kind.
    pub fn as_zset_mut(&mut self) -> Result<&mut ZSet, WrongType> {
        match self {
            Collection::ZSet(z) => Ok(z),
            _ => Err(WrongType),
        }
    }
}

impl From<Collection> for Value {
    fn from(c: Collection) -> Value {
        match c {
            Collection::List(l) => Value::List(l),
            Collection::Hash(h) => Value::Hash(h),
            Collection::Set(s) => Value::Set(s),
            Collection::ZSet(z) => Value::ZSet(z),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_takes_24_bytes() {
        assert_eq!(std::mem::size_of::<Collection>(), 24);
    }

    #[test]
    fn converts_to_and_from_values() {
        assert!(Collection::empty(Kind::String).is_none());
        for kind in [Kind::List, Kind::Hash, Kind::Set, Kind::ZSet] {
            let c = Collection::empty(kind).expect("a collection kind");
            assert_eq!(c.kind(), kind);
            assert!(c.is_empty());
            let v = Value::from(c.clone());
            assert_eq!(v.kind(), kind);
            assert_eq!(Collection::from_value(v), Ok(c));
        }
        let s = Bytes::from_static(b"s");
        assert_eq!(Collection::from_value(Value::String(s.clone())), Err(s));
        let mut c = Collection::empty(Kind::Set).expect("a set");
        assert!(c.as_set_mut().is_ok());
        assert_eq!(c.as_list_mut().err(), Some(WrongType));
        assert_eq!(c.as_hash_mut().err(), Some(WrongType));
        assert_eq!(c.as_zset_mut().err(), Some(WrongType));
    }
}
