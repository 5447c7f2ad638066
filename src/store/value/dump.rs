//! The stable binary form of a collection, shared by snapshots, the append-only log, Raft
//! entries and slot moves: `[format 1][count: LEB128]` then the elements, each byte string as
//! `[length: LEB128][bytes]`. A list's items head to tail; a set's members; a hash's fields
//! each followed by its value; a sorted set's members each followed by its score (8 bytes,
//! little-endian IEEE 754), lowest first. A string's form is its bytes.
//!
//! Loading checks everything: a dump that is cut short, too long, of an unknown format or
//! with a NaN score is refused, never half loaded.

use super::{Kind, Value, ValueRef};

/// The format byte every collection dump starts with.
const FORMAT: u8 = 1;

/// A dump that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// It ends inside an element.
    #[error("a {0} dump is cut short")]
    Truncated(&'static str),
    /// Bytes follow the last element.
    #[error("a {0} dump has trailing bytes")]
    Trailing(&'static str),
    /// An unknown format byte.
    #[error("a {kind} dump has the unknown format {format}")]
    Format {
        /// The type.
        kind: &'static str,
        /// The byte found.
        format: u8,
    },
    /// A sorted set's score is NaN.
    #[error("a zset dump has a NaN score")]
    NanScore,
    /// An unknown type code.
    #[error("unknown type code {0}")]
    UnknownKind(u8),
    /// A collection without elements (a key never holds one).
    #[error("an empty {0}")]
    Empty(&'static str),
    /// Elements asked of a string.
    #[error("a string has no elements")]
    NotACollection,
}

/// Appends the dump of `value` to `out`.
pub fn value(value: ValueRef<'_>, out: &mut Vec<u8>) {
    match value {
        ValueRef::String(s) => out.extend_from_slice(s),
        other => collection(other, out),
    }
}

/// Appends the dump of a collection (a string's bytes for a string) to `out`.
pub fn collection(value: ValueRef<'_>, out: &mut Vec<u8>) {
    match value {
        ValueRef::String(s) => out.extend_from_slice(s),
        ValueRef::List(l) => {
            header(out, l.len());
            l.for_each(|item| bytes(out, item));
        }
        ValueRef::Set(s) => {
            header(out, s.len());
            s.for_each(|m| bytes(out, m));
        }
        ValueRef::Hash(h) => {
            header(out, h.len());
            h.for_each(|f, v| {
                bytes(out, f);
                bytes(out, v);
            });
        }
        ValueRef::ZSet(z) => {
            header(out, z.len());
            z.for_each(|m, score| {
                bytes(out, m);
                out.extend_from_slice(&score.to_le_bytes());
            });
        }
    }
}

/// One element of a collection's dump.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Element<'a> {
    /// A list item or a set member.
    Item(&'a [u8]),
    /// A hash field and its value.
    Pair(&'a [u8], &'a [u8]),
    /// A sorted-set member and its score.
    Scored(&'a [u8], f64),
}

/// Calls `f` on every element of a collection dump of `kind`, in dump order, after checking
/// the whole dump decodes (nothing is visited from a damaged dump).
///
/// # Errors
/// [`DumpError`] for a dump that does not decode completely, or a string's `kind`.
pub fn visit<'a>(
    kind: Kind,
    data: &'a [u8],
    mut f: impl FnMut(Element<'a>),
) -> Result<(), DumpError> {
    check(kind, data)?;
    walk(kind, data, &mut f)
}

/// Decodes a dump of a value of `kind`.
///
/// # Errors
/// [`DumpError`] for a dump that does not decode completely.
pub fn load(kind: Kind, data: &[u8]) -> Result<Value, DumpError> {
    let mut value = Value::empty(kind);
    match &mut value {
        Value::String(s) => *s = bytes::Bytes::copy_from_slice(data),
        Value::List(l) => visit(kind, data, |e| {
            if let Element::Item(item) = e {
                l.push_back(item);
            }
        })?,
        Value::Set(s) => visit(kind, data, |e| {
            if let Element::Item(m) = e {
                s.insert(m);
            }
        })?,
        Value::Hash(h) => visit(kind, data, |e| {
            if let Element::Pair(field, v) = e {
                h.insert(field, v);
            }
        })?,
        Value::ZSet(z) => visit(kind, data, |e| {
            if let Element::Scored(m, score) = e {
                z.insert(m, score);
            }
        })?,
    }
    Ok(value)
}

/// Checks that a dump decodes completely, visiting nothing.
fn check(kind: Kind, data: &[u8]) -> Result<(), DumpError> {
    walk(kind, data, &mut |_| {})
}

fn walk<'a>(kind: Kind, data: &'a [u8], f: &mut impl FnMut(Element<'a>)) -> Result<(), DumpError> {
    let name = kind.name();
    if kind == Kind::String {
        return Err(DumpError::NotACollection);
    }
    let mut r = Reader { data, name };
    let format = r.byte()?;
    if format != FORMAT {
        return Err(DumpError::Format { kind: name, format });
    }
    let count = r.varint()?;
    if count == 0 {
        return Err(DumpError::Empty(name));
    }
    for _ in 0..count {
        let first = r.bytes()?;
        f(match kind {
            Kind::Hash => Element::Pair(first, r.bytes()?),
            Kind::ZSet => {
                let score = f64::from_le_bytes(r.array()?);
                if score.is_nan() {
                    return Err(DumpError::NanScore);
                }
                Element::Scored(first, score)
            }
            _ => Element::Item(first),
        });
    }
    if !r.data.is_empty() {
        return Err(DumpError::Trailing(name));
    }
    Ok(())
}

fn header(out: &mut Vec<u8>, count: usize) {
    out.push(FORMAT);
    varint(out, count as u64);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends `n` as LEB128.
pub fn varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

struct Reader<'a> {
    data: &'a [u8],
    name: &'static str,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DumpError> {
        let (&b, rest) = self
            .data
            .split_first()
            .ok_or(DumpError::Truncated(self.name))?;
        self.data = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, DumpError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(DumpError::Truncated(self.name))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DumpError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DumpError::Truncated(self.name))?;
        let (b, rest) = self
            .data
            .split_at_checked(len)
            .ok_or(DumpError::Truncated(self.name))?;
        self.data = rest;
        Ok(b)
    }

    fn array(&mut self) -> Result<[u8; 8], DumpError> {
        let (b, rest) = self
            .data
            .split_first_chunk::<8>()
            .ok_or(DumpError::Truncated(self.name))?;
        self.data = rest;
        Ok(*b)
    }
}
