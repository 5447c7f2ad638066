//! One entry of a shard's table in memory: a string in a single allocation, or a boxed
//! collection (layout in the parent module's docs), and the LEB128 varints of its header.

use super::super::clock;
use super::super::value::{dump, Collection, Kind, Value, ValueRef};
use super::Entry;

/// One entry: a string in its single allocation, or a boxed collection (see the module docs).
/// 16 bytes: the enum's tag hides in the string box's pointer.
#[derive(Debug)]
pub(super) enum Item {
    Inline(Box<[u8]>),
    Boxed(Box<Boxed>),
}

/// A collection entry: 56 bytes, the most a 64-byte malloc chunk holds, so a collection key
/// with a short name costs that one allocation besides its collection's own buffers.
#[derive(Debug)]
pub(super) struct Boxed {
    pub(super) value: Collection,
    head: Head,
}

/// The bytes of a [`Head`] kept inside the box.
const HEAD_INLINE: usize = 31;

/// A collection entry's key and deadline as `[header][deadline?][key]`, the start of a string
/// entry's layout with the header's collection bit set (so it is also the start of the entry's
/// dump record): inside the box when it fits (a key of up to 30 bytes, or 22 with a deadline;
/// the bytes past it unused), else in an allocation of its own.
#[derive(Debug)]
enum Head {
    Inline([u8; HEAD_INLINE]),
    Heap(Box<[u8]>),
}

impl Head {
    fn new(key: &[u8], deadline: Option<u64>) -> Head {
        let (header, n) = header(key.len(), true, deadline);
        let len = n + key.len();
        if len <= HEAD_INLINE {
            let mut bytes = [0; HEAD_INLINE];
            bytes[..n].copy_from_slice(&header[..n]);
            bytes[n..len].copy_from_slice(key);
            Head::Inline(bytes)
        } else {
            let mut bytes = Vec::with_capacity(len);
            bytes.extend_from_slice(&header[..n]);
            bytes.extend_from_slice(key);
            Head::Heap(bytes.into_boxed_slice())
        }
    }

    /// The bytes, with an inline head's unused tail.
    #[inline(always)]
    fn raw(&self) -> &[u8] {
        match self {
            Head::Inline(bytes) => bytes,
            Head::Heap(bytes) => bytes,
        }
    }

    /// The bytes in use.
    #[inline]
    fn bytes(&self) -> &[u8] {
        let raw = self.raw();
        let (offset, len, _) = Item::layout(raw);
        &raw[..offset + len]
    }

    #[inline(always)]
    fn key(&self) -> &[u8] {
        let raw = self.raw();
        let (offset, len, _) = Item::layout(raw);
        &raw[offset..offset + len]
    }

    #[inline(always)]
    fn deadline(&self) -> Option<u64> {
        Item::layout(self.raw()).2
    }
}

/// The number an entry's header varint holds: `key_len << 2 | collection << 1 | has_deadline`.
fn header_word(key_len: usize, collection: bool, deadline: Option<u64>) -> u64 {
    (key_len as u64) << 2 | u64::from(collection) << 1 | u64::from(deadline.is_some())
}

/// An entry's header: the varint of [`header_word`], then the deadline's 8 bytes if any;
/// returns the buffer and the bytes used.
fn header(key_len: usize, collection: bool, deadline: Option<u64>) -> ([u8; 18], usize) {
    let mut out = [0u8; 18];
    let mut varint = [0u8; 10];
    let n = put_varint(&mut varint, header_word(key_len, collection, deadline));
    out[..n].copy_from_slice(&varint[..n]);
    match deadline {
        Some(d) => {
            out[n..n + 8].copy_from_slice(&d.to_le_bytes());
            (out, n + 8)
        }
        None => (out, n),
    }
}

impl Item {
    /// An entry holding the string `value`.
    pub(super) fn new(key: &[u8], value: &[u8], deadline: Option<u64>) -> Item {
        let mut varint = [0u8; 10];
        let n = put_varint(&mut varint, header_word(key.len(), false, deadline));
        let mut data =
            Vec::with_capacity(n + 8 * usize::from(deadline.is_some()) + key.len() + value.len());
        data.extend_from_slice(&varint[..n]);
        if let Some(d) = deadline {
            data.extend_from_slice(&d.to_le_bytes());
        }
        data.extend_from_slice(key);
        data.extend_from_slice(value);
        Item::Inline(data.into_boxed_slice())
    }

    /// An entry holding `value` of any kind.
    pub(super) fn with_value(key: &[u8], value: Value, deadline: Option<u64>) -> Item {
        match Collection::from_value(value) {
            Ok(value) => Item::with_collection(key, value, deadline),
            Err(s) => Item::new(key, &s, deadline),
        }
    }

    /// An entry holding the collection `value`.
    pub(super) fn with_collection(key: &[u8], value: Collection, deadline: Option<u64>) -> Item {
        Item::Boxed(Box::new(Boxed {
            value,
            head: Head::new(key, deadline),
        }))
    }

    /// (offset of the key, key length, deadline) of an inline entry or a collection's head.
    #[inline(always)]
    pub(super) fn layout(data: &[u8]) -> (usize, usize, Option<u64>) {
        // Keys under 32 bytes: a one-byte header, read without the varint loop.
        let (word, mut offset) = match data.first() {
            Some(&byte) if byte < 0x80 => (u64::from(byte), 1),
            _ => long_header(data),
        };
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

    #[inline]
    pub(super) fn kind(&self) -> Kind {
        match self {
            Item::Inline(_) => Kind::String,
            Item::Boxed(b) => b.value.kind(),
        }
    }

    #[inline(always)]
    pub(super) fn key(&self) -> &[u8] {
        match self {
            Item::Inline(data) => {
                let (offset, len, _) = Item::layout(data);
                &data[offset..offset + len]
            }
            Item::Boxed(b) => b.head.key(),
        }
    }

    /// The value, borrowed.
    #[inline]
    pub(super) fn peek(&self) -> ValueRef<'_> {
        match self {
            Item::Inline(data) => {
                let (offset, len, _) = Item::layout(data);
                ValueRef::String(&data[offset + len..])
            }
            Item::Boxed(b) => b.value.as_ref(),
        }
    }

    /// A string entry's value bytes, writable in place (same length); `None` for a collection.
    #[inline]
    pub(super) fn string_mut(&mut self) -> Option<&mut [u8]> {
        match self {
            Item::Inline(data) => {
                let (offset, len, _) = Item::layout(data);
                Some(&mut data[offset + len..])
            }
            Item::Boxed(_) => None,
        }
    }

    #[inline(always)]
    pub(super) fn deadline(&self) -> Option<u64> {
        match self {
            Item::Inline(data) => Item::layout(data).2,
            Item::Boxed(b) => b.head.deadline(),
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
                deadline: b.head.deadline().map(clock::from_micros),
                value: b.value.into(),
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
                b.head = Head::new(b.head.key(), deadline);
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
                out.extend_from_slice(b.head.bytes());
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

/// [`get_varint`] for a header of more than one byte (keys of 32 bytes or more), kept out of
/// line so that the common one-byte case inlines into every probe.
#[cold]
#[inline(never)]
fn long_header(data: &[u8]) -> (u64, usize) {
    get_varint(data)
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
