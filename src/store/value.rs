//! What a key holds: a [`Value`] of one [`Kind`], the Redis type `TYPE` reports.
//!
//! Today every value is a string; lists, hashes, sets and sorted sets join this enum with the
//! data-types issue. Commands never match on a value's representation directly: they ask for
//! the kind they operate on ([`Value::as_string`], [`Value::into_string`]) and turn a
//! [`WrongType`] into Redis's `WRONGTYPE` error, so adding a kind cannot silently make a
//! string command read a list.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A value stored under a key (serde: replication carries it inside effects).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// A binary-safe string (Redis's `string` type: SET, GET, INCR, APPEND...).
    String(Bytes),
}

/// The type of a value, as Redis's `TYPE` and `SCAN ... TYPE` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `string`.
    String,
}

/// A command met a value of another kind than the one it operates on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
pub struct WrongType;

impl Value {
    /// The kind of this value.
    pub fn kind(&self) -> Kind {
        match self {
            Value::String(_) => Kind::String,
        }
    }

    /// The string this value holds.
    ///
    /// # Errors
    /// [`WrongType`] when the value is not a string.
    pub fn as_string(&self) -> Result<&Bytes, WrongType> {
        match self {
            Value::String(s) => Ok(s),
        }
    }

    /// The string this value holds, by value.
    ///
    /// # Errors
    /// [`WrongType`] when the value is not a string.
    pub fn into_string(self) -> Result<Bytes, WrongType> {
        match self {
            Value::String(s) => Ok(s),
        }
    }
}

impl Kind {
    /// Every kind, in the order Redis documents them.
    pub const ALL: [Kind; 1] = [Kind::String];

    /// The name `TYPE` answers and snapshots store.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
        }
    }

    /// The kind with this name (case-insensitive, as `SCAN ... TYPE` takes it), or `None`
    /// for a name no value here can have.
    pub fn from_name(name: &[u8]) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_named_as_redis_names_them() {
        let v = Value::String(Bytes::from_static(b"x"));
        assert_eq!(v.kind().name(), "string");
        assert_eq!(Kind::from_name(b"STRING"), Some(Kind::String));
        assert_eq!(Kind::from_name(b"list"), None);
        assert_eq!(
            WrongType.to_string(),
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        assert_eq!(v.clone().into_string(), Ok(Bytes::from_static(b"x")));
    }
}
