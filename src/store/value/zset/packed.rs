//! The small encoding (Redis's listpack): one buffer of `[count: LEB128]` then each member
//! with its score, in ascending (score, member) order: `[length: LEB128][member][score]`.
//!
//! A score is stored as a LEB128 of `zigzag(n) << 1` when it is an integer `n` with
//! `|n| <= 2^53` (exact as a double), else as the byte `1` followed by the 8 bytes of the
//! double. The first byte's low bit tells the two apart, so `0`..`63` take one byte, as
//! Redis's listpack stores small integers. Like Redis's listpack (which stores `-0` as the
//! integer 0), a listpack set turns a score of `-0` into `0`; a skiplist keeps `-0`.
//!
//! Every change builds a new exact-size buffer (as Redis reallocates its listpack): these
//! buffers hold at most `zset-max-listpack-entries` members, so one copy per write is cheap,
//! and no capacity is wasted per key. The buffer is only ever built here, so decoding trusts
//! it, but still stops (never panics) at anything malformed.

use super::before;

/// The largest integer magnitude stored as an integer.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// One decoded entry: its byte span in the buffer, member and score.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry<'a> {
    pub start: usize,
    pub end: usize,
    pub member: &'a [u8],
    pub score: f64,
}

/// The buffer of an empty set.
pub(super) fn empty() -> Box<[u8]> {
    Box::new([0])
}

/// Number of entries.
pub(super) fn len(buf: &[u8]) -> usize {
    read_varint(buf, 0).map_or(0, |(n, _)| n as usize)
}

/// The entries, lowest first.
pub(super) fn iter(buf: &[u8]) -> Iter<'_> {
    let at = read_varint(buf, 0).map_or(buf.len(), |(_, at)| at);
    Iter { buf, at }
}

/// The entry of `member`, if present.
pub(super) fn find<'a>(buf: &'a [u8], member: &[u8]) -> Option<Entry<'a>> {
    iter(buf).find(|e| e.member == member)
}

/// The entry at `rank` (0-based), if any.
pub(super) fn nth(buf: &[u8], rank: usize) -> Option<Entry<'_>> {
    iter(buf).nth(rank)
}

/// A buffer with `member` (absent from `buf`) added at its place.
pub(super) fn insert(buf: &[u8], member: &[u8], score: f64) -> Box<[u8]> {
    let at = iter(buf)
        .find(|e| before(score, member, e.score, e.member))
        .map_or(buf.len(), |e| e.start);
    let mut entry = Vec::with_capacity(member.len() + 12);
    write_varint(&mut entry, member.len() as u64);
    entry.extend_from_slice(member);
    write_score(&mut entry, score);
    rebuild(buf, len(buf) + 1, &[(at, at, &entry)])
}

/// A buffer without the entries of ranks `start..end`.
pub(super) fn remove_ranks(buf: &[u8], start: usize, end: usize) -> Box<[u8]> {
    if start >= end {
        return buf.into();
    }
    let mut from = None;
    let mut to = None;
    for (rank, e) in iter(buf).enumerate() {
        if rank == start {
            from = Some(e.start);
        }
        if rank + 1 == end {
            to = Some(e.end);
            break;
        }
    }
    match (from, to) {
        (Some(from), Some(to)) => rebuild(buf, len(buf) - (end - start), &[(from, to, &[])]),
        _ => buf.into(),
    }
}

/// A buffer without the entry spanning `start..end`.
pub(super) fn remove_span(buf: &[u8], start: usize, end: usize) -> Box<[u8]> {
    rebuild(buf, len(buf).saturating_sub(1), &[(start, end, &[])])
}

/// Copies `buf` with a new count header and the byte spans `(from, to)` replaced by the
/// given bytes (spans in ascending order, after the header).
fn rebuild(buf: &[u8], count: usize, edits: &[(usize, usize, &[u8])]) -> Box<[u8]> {
    let body = read_varint(buf, 0).map_or(buf.len(), |(_, at)| at);
    let mut header = Vec::with_capacity(10);
    write_varint(&mut header, count as u64);
    let size = edits
        .iter()
        .fold(buf.len() - body + header.len(), |n, (from, to, with)| {
            n - (to - from) + with.len()
        });
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&header);
    let mut at = body;
    for (from, to, with) in edits {
        out.extend_from_slice(buf.get(at..*from).unwrap_or_default());
        out.extend_from_slice(with);
        at = *to;
    }
    out.extend_from_slice(buf.get(at..).unwrap_or_default());
    out.into_boxed_slice()
}

/// Iterator over a buffer's entries.
#[derive(Debug, Clone)]
pub(super) struct Iter<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        let start = self.at;
        let (len, at) = read_varint(self.buf, start)?;
        let end = at.checked_add(usize::try_from(len).ok()?)?;
        let member = self.buf.get(at..end)?;
        let (score, end) = read_score(self.buf, end)?;
        self.at = end;
        Some(Entry {
            start,
            end,
            member,
            score,
        })
    }
}

fn write_score(out: &mut Vec<u8>, score: f64) {
    if score.fract() == 0.0 && score.abs() <= MAX_EXACT {
        let n = score as i64;
        let zigzag = ((n << 1) ^ (n >> 63)) as u64;
        write_varint(out, zigzag << 1);
    } else {
        out.push(1);
        out.extend_from_slice(&score.to_le_bytes());
    }
}

fn read_score(buf: &[u8], at: usize) -> Option<(f64, usize)> {
    if *buf.get(at)? & 1 == 1 {
        let raw: [u8; 8] = buf.get(at + 1..at + 9)?.try_into().ok()?;
        return Some((f64::from_le_bytes(raw), at + 9));
    }
    let (word, end) = read_varint(buf, at)?;
    let zigzag = word >> 1;
    let n = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
    Some((n as f64, end))
}

fn write_varint(out: &mut Vec<u8>, mut n: u64) {
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

fn read_varint(buf: &[u8], mut at: usize) -> Option<(u64, usize)> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(at)?;
        at += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((n, at));
        }
    }
    None
}
