//! One quicklist node: a contiguous buffer of packed entries (Redis's listpack idea), and the
//! entry format every node and every copied range share.
//!
//! An entry is `[header][payload][back-length]`:
//! - the header is a LEB128 varint of `payload_len << 1 | is_int`;
//! - the payload is the element's bytes, or, for an element that is a canonical decimal
//!   64-bit integer (`"123"`, `"-7"`; never `"007"`, `"+1"` or `"-0"`), the integer in as few
//!   little-endian two's-complement bytes as hold it (1 to 8);
//! - the back-length is the length of header plus payload, written so that it reads from its
//!   last byte backwards (each byte carries 7 bits, least significant last; every byte but
//!   the first in memory has its high bit set), so entries can be walked in both directions.
//!
//! A 3-byte string takes 5 bytes, `123456` takes 5, `7` takes 3 (Redis: 5, 5, 2). Because the
//! integer form is canonical, two elements are equal exactly when their header and payload
//! bytes are: LREM, LPOS and LINSERT compare packed bytes without decoding.
//!
//! The node keeps its entries in `buf[start..end]` with free room on both sides, so pushing
//! or popping at either end is O(1) amortised (no memmove of the whole node per operation).
//!
//! Decoding never trusts the bytes: a malformed buffer ends a walk early instead of
//! panicking (the buffers are only ever written here, so that never happens in practice).

use crate::store::value::parse_int;

/// An element, decoded from an entry (borrowing the node's bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// A string element.
    Str(&'a [u8]),
    /// An element that is a canonical decimal integer.
    Int(i64),
}

impl Item<'_> {
    /// Calls `f` with the element's bytes (an integer formatted on the stack).
    #[inline]
    pub fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Item::Str(s) => f(s),
            Item::Int(n) => f(itoa::Buffer::new().format(n).as_bytes()),
        }
    }

    /// The element's bytes, copied.
    pub fn to_vec(self) -> Vec<u8> {
        self.with_bytes(<[u8]>::to_vec)
    }
}

/// An element encoded as an entry, ready to be written (built once per argument; the string
/// payload is borrowed, not copied).
#[derive(Debug, Clone, Copy)]
pub(super) struct Encoded<'a> {
    /// Header, then an integer's payload.
    head: [u8; 18],
    head_len: u8,
    /// A string's payload (empty for an integer).
    body: &'a [u8],
    /// The back-length.
    back: [u8; 10],
    back_len: u8,
    /// The integer, for an element stored as one.
    int: Option<i64>,
}

impl<'a> Encoded<'a> {
    /// Encodes `elem`.
    pub(super) fn new(elem: &'a [u8]) -> Encoded<'a> {
        let mut head = [0u8; 18];
        let int = parse_int(elem);
        let (head_len, body) = match int {
            Some(n) => {
                let bytes = n.to_le_bytes();
                let width = int_width(n);
                let h = put_varint(&mut head, (width as u64) << 1 | 1);
                head[h..h + width].copy_from_slice(&bytes[..width]);
                (h + width, &elem[..0])
            }
            None => (put_varint(&mut head, (elem.len() as u64) << 1), elem),
        };
        let mut back = [0u8; 10];
        let back_len = put_backlen(&mut back, (head_len + body.len()) as u64);
        Encoded {
            head,
            head_len: head_len as u8,
            body,
            back,
            back_len: back_len as u8,
            int,
        }
    }

    /// The entry's total length in bytes.
    #[inline]
    pub(super) fn len(&self) -> usize {
        usize::from(self.head_len) + self.body.len() + usize::from(self.back_len)
    }

    /// Writes the entry into `dst`, which is exactly [`Encoded::len`] bytes long.
    #[inline]
    fn write(&self, dst: &mut [u8]) {
        let h = usize::from(self.head_len);
        let b = self.body.len();
        dst[..h].copy_from_slice(&self.head[..h]);
        dst[h..h + b].copy_from_slice(self.body);
        dst[h + b..].copy_from_slice(&self.back[..usize::from(self.back_len)]);
    }

    /// Whether this element is the string item `s` (an integer element never is: integers
    /// are always stored as such).
    #[inline]
    pub(super) fn matches_str(&self, s: &[u8]) -> bool {
        self.int.is_none() && self.body == s
    }

    /// Whether this element is the integer item `n`.
    #[inline]
    pub(super) fn matches_int(&self, n: i64) -> bool {
        self.int == Some(n)
    }

    /// Whether the entry whose header and payload are `content` holds this element.
    #[inline]
    pub(super) fn matches(&self, content: &[u8]) -> bool {
        let h = usize::from(self.head_len);
        content.len() == h + self.body.len()
            && content[..h] == self.head[..h]
            && content[h..] == *self.body
    }
}

/// One entry found in a buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry<'a> {
    /// Header and payload (what [`Encoded::matches`] compares).
    pub(super) content: &'a [u8],
    /// The element.
    pub(super) item: Item<'a>,
    /// The whole entry's length, back-length included.
    pub(super) len: usize,
}

/// The length of the entry starting at `buf[at]`, without decoding it (LRANGE's walk to
/// the end of its range).
#[inline]
pub(super) fn entry_len(buf: &[u8], at: usize) -> Option<usize> {
    let first = *buf.get(at)?;
    let (word, h) = if first & 0x80 == 0 {
        // The common case: a one-byte header (a payload under 64 bytes).
        (u64::from(first), 1)
    } else {
        get_varint(buf.get(at..)?)?
    };
    let content = h + usize::try_from(word >> 1).ok()?;
    let len = content + backlen_width(content as u64);
    (at + len <= buf.len()).then_some(len)
}

/// Decodes the entry starting at `buf[at]`.
#[inline]
pub(super) fn entry_at(buf: &[u8], at: usize) -> Option<Entry<'_>> {
    let rest = buf.get(at..)?;
    let (word, h) = match rest.first() {
        Some(&b) if b & 0x80 == 0 => (u64::from(b), 1),
        _ => get_varint(rest)?,
    };
    let plen = usize::try_from(word >> 1).ok()?;
    let payload = rest.get(h..h.checked_add(plen)?)?;
    let item = if word & 1 == 1 {
        if plen == 0 || plen > 8 {
            return None;
        }
        // Sign-extend the little-endian bytes.
        let fill = if payload[plen - 1] & 0x80 != 0 {
            0xff
        } else {
            0
        };
        let mut raw = [fill; 8];
        raw[..plen].copy_from_slice(payload);
        Item::Int(i64::from_le_bytes(raw))
    } else {
        Item::Str(payload)
    };
    let content = &rest[..h + plen];
    Some(Entry {
        content,
        item,
        len: h + plen + backlen_width((h + plen) as u64),
    })
}

/// The start of the entry that ends at `buf[..end]`.
#[inline]
pub(super) fn entry_before(buf: &[u8], end: usize) -> Option<usize> {
    let mut value = 0u64;
    let mut shift = 0;
    let mut at = end;
    loop {
        at = at.checked_sub(1)?;
        let byte = *buf.get(at)?;
        if shift > 63 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    at.checked_sub(usize::try_from(value).ok()?)
}

/// A node: entries in `buf[start..end]`, `count` of them.
#[derive(Clone, Default)]
pub(super) struct Node {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    count: usize,
}

impl Node {
    /// A node holding only `e`, with room for `room` more bytes on the side that grows.
    pub(super) fn with_entry(e: &Encoded<'_>, room: usize, at_front: bool) -> Node {
        let len = e.len();
        let mut node = Node {
            buf: vec![0; len + room].into_boxed_slice(),
            start: if at_front { room } else { 0 },
            end: 0,
            count: 1,
        };
        node.end = node.start + len;
        e.write(&mut node.buf[node.start..node.end]);
        node
    }

    /// A node holding a copy of `bytes` (whole entries, `count` of them), without spare room.
    fn from_bytes(bytes: &[u8], count: usize) -> Node {
        Node {
            buf: bytes.into(),
            start: 0,
            end: bytes.len(),
            count,
        }
    }

    /// Number of entries.
    #[inline]
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// Bytes the entries take.
    #[inline]
    pub(super) fn used(&self) -> usize {
        self.end - self.start
    }

    /// Bytes allocated.
    pub(super) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The entries' bytes.
    #[inline]
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Offset of the first entry (`None` when empty). Offsets are into the node's buffer and
    /// stay valid until the node changes.
    #[inline]
    pub(super) fn first(&self) -> Option<usize> {
        (self.count > 0).then_some(self.start)
    }

    /// Offset of the last entry.
    #[inline]
    pub(super) fn last(&self) -> Option<usize> {
        if self.count == 0 {
            return None;
        }
        entry_before(&self.buf[..self.end], self.end).filter(|&at| at >= self.start)
    }

    /// The entry at offset `at`.
    #[inline]
    pub(super) fn entry(&self, at: usize) -> Option<Entry<'_>> {
        if at >= self.end {
            return None;
        }
        entry_at(&self.buf[..self.end], at)
    }

    /// The offset of the entry after the one at `at` (`None` past the last).
    #[inline]
    pub(super) fn next(&self, at: usize) -> Option<usize> {
        let next = at + self.entry(at)?.len;
        (next < self.end).then_some(next)
    }

    /// The offset of the entry before the one at `at`.
    #[inline]
    pub(super) fn prev(&self, at: usize) -> Option<usize> {
        if at <= self.start {
            return None;
        }
        entry_before(&self.buf[..at], at).filter(|&p| p >= self.start)
    }

    /// The offset of the `i`th entry (walking from the nearer end).
    pub(super) fn offset_of(&self, i: usize) -> Option<usize> {
        if i >= self.count {
            return None;
        }
        if i <= self.count / 2 {
            let mut at = self.first()?;
            for _ in 0..i {
                at = self.next(at)?;
            }
            Some(at)
        } else {
            let mut at = self.last()?;
            for _ in i + 1..self.count {
                at = self.prev(at)?;
            }
            Some(at)
        }
    }

    /// Appends `e`; `cap_hint` is how large the buffer may grow to by doubling.
    #[inline]
    pub(super) fn push_back(&mut self, e: &Encoded<'_>, cap_hint: usize, balanced: bool) {
        let len = e.len();
        if self.buf.len() - self.end < len {
            self.make_room(len, false, cap_hint, balanced);
        }
        e.write(&mut self.buf[self.end..self.end + len]);
        self.end += len;
        self.count += 1;
    }

    /// Prepends `e`.
    #[inline]
    pub(super) fn push_front(&mut self, e: &Encoded<'_>, cap_hint: usize, balanced: bool) {
        let len = e.len();
        if self.start < len {
            self.make_room(len, true, cap_hint, balanced);
        }
        self.start -= len;
        e.write(&mut self.buf[self.start..self.start + len]);
        self.count += 1;
    }

    /// Inserts `e` at offset `at` (the offset of an entry, or `end` to append).
    pub(super) fn insert(&mut self, at: usize, e: &Encoded<'_>, cap_hint: usize) {
        let rel = at.saturating_sub(self.start).min(self.used());
        let len = e.len();
        if self.buf.len() - self.end < len {
            self.make_room(len, false, cap_hint, false);
        }
        let at = self.start + rel;
        self.buf.copy_within(at..self.end, at + len);
        e.write(&mut self.buf[at..at + len]);
        self.end += len;
        self.count += 1;
    }

    /// Removes `n` entries starting at offset `at`, which span `bytes` bytes.
    pub(super) fn remove(&mut self, at: usize, bytes: usize, n: usize) {
        let to = (at + bytes).min(self.end);
        if at <= self.start {
            self.start = to;
        } else if to >= self.end {
            self.end = at;
        } else {
            self.buf.copy_within(to..self.end, at);
            self.end -= to - at;
        }
        self.count = self.count.saturating_sub(n);
        if self.count == 0 {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Replaces the entry at `at` (`old_len` bytes) by `e`.
    pub(super) fn replace(&mut self, at: usize, old_len: usize, e: &Encoded<'_>, cap_hint: usize) {
        if e.len() == old_len {
            e.write(&mut self.buf[at..at + old_len]);
            return;
        }
        self.remove(at, old_len, 1);
        // After removing the only entry, `at` may no longer be inside the buffer: append.
        let at = if self.count == 0 { self.end } else { at };
        self.insert(at, e, cap_hint);
    }

    /// Removes the first `n` entries (or all); returns how many went.
    pub(super) fn pop_front_n(&mut self, n: usize) -> usize {
        if n >= self.count {
            let all = self.count;
            self.remove(self.start, self.used(), all);
            return all;
        }
        let mut at = self.start;
        for _ in 0..n {
            match entry_len(&self.buf[..self.end], at) {
                Some(len) => at += len,
                None => break,
            }
        }
        self.remove(self.start, at - self.start, n);
        n
    }

    /// Removes the last `n` entries (or all); returns how many went.
    pub(super) fn pop_back_n(&mut self, n: usize) -> usize {
        if n >= self.count {
            let all = self.count;
            self.remove(self.start, self.used(), all);
            return all;
        }
        let mut at = self.end;
        for _ in 0..n {
            match entry_before(&self.buf[..at], at).filter(|&p| p >= self.start) {
                Some(p) => at = p,
                None => break,
            }
        }
        self.remove(at, self.end - at, n);
        n
    }

    /// Splits the node before the entry at `at`, which holds the `i`th entry: the node keeps
    /// the entries before, the returned node gets the rest.
    pub(super) fn split_off(&mut self, at: usize, i: usize) -> Node {
        let tail = Node::from_bytes(&self.buf[at..self.end], self.count - i);
        self.end = at;
        self.count = i;
        self.shrink();
        tail
    }

    /// Keeps only the entries whose index `keep` accepts, in order; returns how many went.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) -> usize {
        let mut out = Vec::with_capacity(self.used());
        let mut kept = 0;
        let mut at = self.start;
        for i in 0..self.count {
            let Some(e) = self.entry(at) else { break };
            if keep(i) {
                out.extend_from_slice(&self.buf[at..at + e.len]);
                kept += 1;
            }
            at += e.len;
        }
        let gone = self.count - kept;
        *self = Node::from_bytes(&out, kept);
        gone
    }

    /// Appends the entries of `other` (merging two neighbours).
    pub(super) fn append(&mut self, other: &Node) {
        let len = other.used();
        if self.buf.len() - self.end < len {
            self.make_room(len, false, 0, false);
        }
        self.buf[self.end..self.end + len].copy_from_slice(other.bytes());
        self.end += len;
        self.count += other.count;
    }

    /// Drops spare room when it is more than an eighth of the buffer (a node the list's end
    /// moved past keeps no slack).
    pub(super) fn shrink(&mut self) {
        let used = self.used();
        if self.buf.len() - used > self.buf.len() / 8 {
            let bytes: Box<[u8]> = self.bytes().into();
            self.buf = bytes;
            self.start = 0;
            self.end = used;
        }
    }

    /// Makes room for `len` more bytes at the front or the back: moves the entries inside the
    /// buffer when it has the room (centred when `balanced`: a node that grows at both ends),
    /// else reallocates, doubling up to `cap_hint`.
    #[cold]
    fn make_room(&mut self, len: usize, at_front: bool, cap_hint: usize, balanced: bool) {
        let used = self.used();
        let need = used + len;
        let cap = if self.buf.len() >= need && self.buf.len() >= cap_hint.min(need * 2) {
            self.buf.len()
        } else {
            need.max((self.buf.len() * 2).max(64).min(cap_hint))
        };
        let free = cap - used;
        let spare = free - len;
        // Where the entries go: all free room on the growing side, or half of the spare
        // room on each side for a node both ends of the list use.
        let start = match (balanced, at_front) {
            (true, true) => len + spare / 2,
            (true, false) => spare / 2,
            (false, true) => free,
            (false, false) => 0,
        };
        if cap == self.buf.len() {
            self.buf.copy_within(self.start..self.end, start);
        } else {
            let mut buf = vec![0u8; cap].into_boxed_slice();
            buf[start..start + used].copy_from_slice(self.bytes());
            self.buf = buf;
        }
        self.start = start;
        self.end = start + used;
    }
}

/// How many little-endian bytes hold `n` in two's complement.
fn int_width(n: i64) -> usize {
    (1..8)
        .find(|&w| {
            let bits = 8 * w as u32;
            let min = -(1i64 << (bits - 1));
            let max = (1i64 << (bits - 1)) - 1;
            (min..=max).contains(&n)
        })
        .unwrap_or(8)
}

/// Writes `v` as a LEB128 varint; returns its length.
fn put_varint(out: &mut [u8], mut v: u64) -> usize {
    let mut i = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out[i] = byte;
            return i + 1;
        }
        out[i] = byte | 0x80;
        i += 1;
    }
}

/// Reads a LEB128 varint: (value, length).
#[inline]
fn get_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Bytes a back-length of `v` takes.
#[inline]
fn backlen_width(v: u64) -> usize {
    let bits = 64 - v.max(1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Writes `v` as a back-length (see the module docs); returns its length.
fn put_backlen(out: &mut [u8], v: u64) -> usize {
    let k = backlen_width(v);
    for i in 0..k {
        let group = ((v >> (7 * i)) & 0x7f) as u8;
        let flag = if i + 1 < k { 0x80 } else { 0 };
        out[k - 1 - i] = group | flag;
    }
    k
}
