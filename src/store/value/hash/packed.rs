//! The compact encoding: field/value pairs in one contiguous buffer, Redis's listpack idea.
//!
//! A buffer is a sequence of `[field length: LEB128][field][value length: LEB128][value]`,
//! pairs in insertion order (a changed value stays where its field is, as in a listpack), no
//! header and no terminator: an empty hash is an empty buffer, which allocates nothing. Lookup
//! is a linear walk, which is what Redis does below `hash-max-listpack-entries` too. A
//! listpack spends a length byte before and a back-length byte after every string plus 7
//! bytes of header and end marker; this form only the length before, since nothing walks it
//! backwards.
//!
//! The same form holds the entries of one bucket of the big encoding (`table`), so both share
//! these functions. Buffers are only ever built here; reading one that is cut short stops
//! early rather than panicking.

/// The pairs of a buffer, in order.
#[derive(Debug, Clone)]
pub(super) struct Iter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (field, rest) = string(self.rest)?;
        let (value, rest) = string(rest)?;
        self.rest = rest;
        Some((field, value))
    }
}

/// The pairs of `buf`.
#[inline]
pub(super) fn iter(buf: &[u8]) -> Iter<'_> {
    Iter { rest: buf }
}

/// Number of pairs.
pub(super) fn len(buf: &[u8]) -> usize {
    iter(buf).count()
}

/// The value of `field`.
#[inline]
pub(super) fn get<'a>(buf: &'a [u8], field: &[u8]) -> Option<&'a [u8]> {
    iter(buf).find(|(f, _)| *f == field).map(|(_, v)| v)
}

/// Sets `field` to `value`: `None` when the field existed (its value replaced in place),
/// else `Some(number of pairs now)`, the new pair appended.
pub(super) fn insert(buf: &mut Box<[u8]>, field: &[u8], value: &[u8]) -> Option<usize> {
    let mut count = 0;
    let mut at = 0;
    while let Some((value_at, old_len, end, found)) = pair_at(buf, at, field) {
        if found {
            if old_len == value.len() {
                // Same length (HINCRBY 10 -> 11): overwrite, no reallocation.
                buf[end - old_len..end].copy_from_slice(value);
            } else {
                let mut out = Vec::with_capacity(buf.len() - old_len + value.len() + 10);
                // (A few spare bytes at most: the value's length may take fewer.)
                out.extend_from_slice(&buf[..value_at]);
                push_string(&mut out, value);
                out.extend_from_slice(&buf[end..]);
                *buf = out.into_boxed_slice();
            }
            return None;
        }
        count += 1;
        at = end;
    }
    // Exactly sized: `into_boxed_slice` then keeps the allocation as it is.
    let mut out = Vec::with_capacity(buf.len() + pair_len(field, value));
    out.extend_from_slice(buf);
    push(&mut out, field, value);
    *buf = out.into_boxed_slice();
    Some(count + 1)
}

/// Sets every pair, in order, with one new allocation for all of them (HSET of a whole
/// object: the buffer is not regrown pair by pair). Returns (fields added, pairs now).
pub(super) fn insert_many(buf: &mut Box<[u8]>, pairs: &[(&[u8], &[u8])]) -> (usize, usize) {
    let mut out =
        Vec::with_capacity(buf.len() + pairs.iter().map(|(f, v)| pair_len(f, v)).sum::<usize>());
    out.extend_from_slice(buf);
    let mut count = len(&out);
    let mut added = 0;
    for &(field, value) in pairs {
        let mut at = 0;
        let found = loop {
            match pair_at(&out, at, field) {
                Some((value_at, _, end, true)) => break Some((value_at, end)),
                Some((_, _, end, false)) => at = end,
                None => break None,
            }
        };
        match found {
            Some((value_at, end)) => {
                let mut replacement = Vec::with_capacity(value.len() + 10);
                push_string(&mut replacement, value);
                out.splice(value_at..end, replacement);
            }
            None => {
                push(&mut out, field, value);
                added += 1;
                count += 1;
            }
        }
    }
    *buf = out.into_boxed_slice();
    (added, count)
}

/// The bytes a pair takes.
fn pair_len(field: &[u8], value: &[u8]) -> usize {
    varint_len(field.len()) + field.len() + varint_len(value.len()) + value.len()
}

fn varint_len(n: usize) -> usize {
    (usize::BITS - n.leading_zeros()).div_ceil(7).max(1) as usize
}

/// The pair starting at offset `at`: (offset of its value's length, the value's length, the
/// offset after it, whether its field is `field`).
#[inline]
fn pair_at(buf: &[u8], at: usize, field: &[u8]) -> Option<(usize, usize, usize, bool)> {
    let (f, after_field) = string(buf.get(at..)?)?;
    let (v, after_value) = string(after_field)?;
    Some((
        buf.len() - after_field.len(),
        v.len(),
        buf.len() - after_value.len(),
        f == field,
    ))
}

/// Removes `field`; true when it was there.
pub(super) fn remove(buf: &mut Box<[u8]>, field: &[u8]) -> bool {
    let mut at = 0;
    while let Some((_, _, end, found)) = pair_at(buf, at, field) {
        if found {
            let mut out = Vec::with_capacity(buf.len() - (end - at));
            out.extend_from_slice(&buf[..at]);
            out.extend_from_slice(&buf[end..]);
            *buf = out.into_boxed_slice();
            return true;
        }
        at = end;
    }
    false
}

/// Appends the pair to `out`.
pub(super) fn push(out: &mut Vec<u8>, field: &[u8], value: &[u8]) {
    push_string(out, field);
    push_string(out, value);
}

/// A buffer of the one pair.
pub(super) fn single(field: &[u8], value: &[u8]) -> Box<[u8]> {
    let mut out = Vec::with_capacity(pair_len(field, value));
    push(&mut out, field, value);
    out.into_boxed_slice()
}

fn push_string(out: &mut Vec<u8>, s: &[u8]) {
    super::super::dump::varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// The length-prefixed string at the start of `data` and what follows it.
#[inline]
fn string(data: &[u8]) -> Option<(&[u8], &[u8])> {
    // One byte covers strings up to 127 bytes: every string of a default-sized listpack.
    let (&first, rest) = data.split_first()?;
    if first < 0x80 {
        return rest.split_at_checked(usize::from(first));
    }
    let mut n = u64::from(first & 0x7f);
    let mut rest = rest;
    for shift in (7..64).step_by(7) {
        let (&b, tail) = rest.split_first()?;
        rest = tail;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return rest.split_at_checked(usize::try_from(n).ok()?);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_keep_insertion_order_and_replace_in_place() {
        let mut buf: Box<[u8]> = Box::default();
        assert_eq!(insert(&mut buf, b"a", b"1"), Some(1));
        assert_eq!(insert(&mut buf, b"b", &[7u8; 200]), Some(2));
        assert_eq!(insert(&mut buf, b"c", b""), Some(3));
        assert_eq!(insert(&mut buf, b"a", b"22"), None);
        assert_eq!(insert(&mut buf, b"a", b"33"), None);
        let pairs: Vec<_> = iter(&buf).collect();
        assert_eq!(pairs[0], (&b"a"[..], &b"33"[..]));
        assert_eq!(pairs[1].1.len(), 200);
        assert_eq!(pairs[2], (&b"c"[..], &b""[..]));
        assert_eq!(get(&buf, b"b").map(<[u8]>::len), Some(200));
        assert!(remove(&mut buf, b"b"));
        assert!(!remove(&mut buf, b"b"));
        assert_eq!(len(&buf), 2);
        assert_eq!(get(&buf, b"c"), Some(&b""[..]));
        // A damaged buffer reads as far as it goes.
        assert_eq!(len(&buf[..buf.len() - 1]), 1);
        assert_eq!(iter(&[0x80, 0x80]).count(), 0);
    }

    #[test]
    fn many_pairs_at_once_match_one_by_one() {
        let pairs: [(&[u8], &[u8]); 5] = [
            (b"a", b"1"),
            (b"b", &[9u8; 130]),
            (b"a", b"22"),
            (b"c", b""),
            (b"b", b"x"),
        ];
        let (mut one, mut many): (Box<[u8]>, Box<[u8]>) = (Box::default(), Box::default());
        insert(&mut one, b"z", b"0");
        insert(&mut many, b"z", b"0");
        let added = pairs
            .iter()
            .filter(|(f, v)| insert(&mut one, f, v).is_some())
            .count();
        assert_eq!(insert_many(&mut many, &pairs), (added, 4));
        assert_eq!(one, many);
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
    }
}
