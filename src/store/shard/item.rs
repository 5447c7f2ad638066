//! One entry of a shard's table in memory: a string in a single allocation, or a boxed
//! collection (layout in the parent module's docs), and the LEB128 varints of its header.

use super::super::clock;
use super::super::value::{dump, Kind, Value, ValueRef};
use super::Entry;

/// One entry: a string in its single allocation, or a boxed collection (see the module docs).
/// 16 bytes: the enum's tag hides in the string box's pointer.
#[derive(Debug)]
pub(super) enum Item {
    Inline(Box<[u8]>),
    Boxed(Box<Boxed>),
}

/// A collection entry.
#[derive(Debug)]
pub(super) struct Boxed {
    pub(super) key: Box<[u8]>,
    pub(super) deadline: Option<u64>,
    pub(super) value: Value,
}

impl Item {
    /// An entry holding the string `value`.
    pub(super) fn new(key: &[u8], value: &[u8], deadline: Option<u64>) -> Item {
        let mut header = [0u8; 10];
        let header_len = put_varint(
            &mut header,
            (key.len() as u64) << 2 | u64::from(deadline.is_some()),
        );
        let mut data = Vec::with_capacity(
            header_len + 8 * usize::from(deadline.is_some()) + key.len() + value.len(),
        );
        data.extend_from_slice(&header[..header_len]);
        if let Some(d) = deadline {
            data.extend_from_slice(&d.to_le_bytes());
        }
        data.extend_from_slice(key);
        data.extend_from_slice(value);
        Item::Inline(data.into_boxed_slice())
    }

    /// An entry holding `value` of any kind.
    pub(super) fn with_value(key: &[u8], value: Value, deadline: Option<u64>) -> Item {
        match value {
            Value::String(s) => Item::new(key, &s, deadline),
            value => Item::Boxed(Box::new(Boxed {
                key: key.into(),
                deadline,
                value,
            })),
        }
    }

    /// (offset of the key, key length, deadline) of an inline entry.
    pub(super) fn layout(data: &[u8]) -> (usize, usize, Option<u64>) {
        let (word, mut offset) = get_varint(data);
        let deadline = if word & 1 == 1 {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&data[offset..offset + 8]);
            offset += 8;
            Some(u64::from_le_bytes(raw))
        } else {
            None
        };
        (offset, (word >> 2) as usize, deadline)
    }

    pub(super) fn kind(&self) -> Kind {
        match self {
            Item::Inline(_) => Kind::String,
            Item::Boxed(b) => b.value.kind(),
        }
    }

    pub(super) fn key(&self) -> &[u8] {
        match self {
            Item::Inline(data) => {
                let (offset, len, _) = Item::layout(data);
                &data[offset..offset + len]
            }
            Item::Boxed(b) => &b.key,
        }
    }

    /// The value, borrowed.
    pub(super) fn peek(&self) -> ValueRef<'_> {
        match self {
            Item::Inline(data) => {
                let (offset, len, _) = Item::layout(data);
                ValueRef::String(&data[offset + len..])
            }
            Item::Boxed(b) => b.value.as_ref(),
        }
    }

    pub(super) fn deadline(&self) -> Option<u64> {
        match self {
            Item::Inline(data) => Item::layout(data).2,
            Item::Boxed(b) => b.deadline,
        }
    }

    /// The value, copied out.
    pub(super) fn to_value(&self) -> Value {
        self.peek().to_value()
    }

    pub(super) fn entry(&self) -> Entry {
        Entry {
            value: self.to_value(),
            deadline: self.deadline().map(clock::from_micros),
        }
    }

    /// The entry, moved out (a collection is not copied).
    pub(super) fn into_entry(self) -> Entry {
        match self {
            Item::Inline(_) => self.entry(),
            Item::Boxed(b) => Entry {
                value: b.value,
                deadline: b.deadline.map(clock::from_micros),
            },
        }
    }

    /// The entry with another deadline.
    pub(super) fn redated(self, deadline: Option<u64>) -> Item {
        match self {
            Item::Inline(_) => {
                let ValueRef::String(value) = self.peek() else {
                    return self;
                };
                Item::new(self.key(), value, deadline)
            }
            Item::Boxed(mut b) => {
                b.deadline = deadline;
                Item::Boxed(b)
            }
        }
    }

    /// Appends the entry's dump record (see [`dump_entries`]).
    pub(super) fn dump_into(&self, out: &mut Vec<u8>) {
        match self {
            Item::Inline(data) => {
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
            }
            Item::Boxed(b) => {
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                let mut header = [0u8; 10];
                let n = put_varint(
                    &mut header,
                    (b.key.len() as u64) << 2 | 2 | u64::from(b.deadline.is_some()),
                );
                out.extend_from_slice(&header[..n]);
                if let Some(d) = b.deadline {
                    out.extend_from_slice(&d.to_le_bytes());
                }
                out.extend_from_slice(&b.key);
                out.push(b.value.kind().code());
                dump::value(b.value.as_ref(), out);
                let len = (out.len() - at - 4) as u32;
                out[at..at + 4].copy_from_slice(&len.to_le_bytes());
            }
        }
    }
}

/// Writes `n` as LEB128 into `buf`; returns the number of bytes used.
pub(super) fn put_varint(buf: &mut [u8; 10], mut n: u64) -> usize {
    let mut i = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf[i] = byte;
            return i + 1;
        }
        buf[i] = byte | 0x80;
        i += 1;
    }
}

/// Reads a LEB128 varint written by [`put_varint`]; returns it and the bytes used.
pub(super) fn get_varint(data: &[u8]) -> (u64, usize) {
    let mut n = 0u64;
    for (i, &byte) in data.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (n, i + 1);
        }
    }
    // Items are only built by `Item::new`, which always terminates the varint.
    (n, data.len().min(10))
}
