//! The bit arithmetic behind the bitmap commands, on plain byte slices: population count, bit
//! search, BITOP's combinations and BITFIELD's integers at arbitrary bit offsets, with Redis's
//! overflow rules (`src/bitops.c`).
//!
//! Bit 0 is the most significant bit of the first byte, as in Redis. Counting and searching go
//! a 64-bit word at a time (big endian, so a word's leading zeros are the first bits); nothing
//! here loops bit by bit. This module knows no keys, replies or errors.

/// A BITOP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    /// Bitwise AND of every source.
    And,
    /// Bitwise OR of every source.
    Or,
    /// Bitwise XOR of every source.
    Xor,
    /// Bitwise NOT of the single source.
    Not,
}

/// What BITFIELD does when an INCRBY or SET does not fit the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Wrap around (modulo for unsigned, two's complement for signed): the default.
    Wrap,
    /// Saturate at the type's minimum or maximum.
    Sat,
    /// Leave the field alone and answer nil.
    Fail,
}

/// A BITFIELD integer type: `i1`..`i64` or `u1`..`u63`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldType {
    /// Signed (`i`) or unsigned (`u`).
    pub signed: bool,
    /// Width in bits, 1 to 64 (63 for unsigned).
    pub bits: u32,
}

/// The number of set bits in `bytes`.
pub fn popcount(bytes: &[u8]) -> u64 {
    let (words, tail) = bytes.as_chunks::<8>();
    let mut count: u64 = words
        .iter()
        .map(|w| u64::from(u64::from_ne_bytes(*w).count_ones()))
        .sum();
    count += tail.iter().map(|b| u64::from(b.count_ones())).sum::<u64>();
    count
}

/// Redis's `redisBitpos`: the position of the first bit equal to `bit` in `bytes`. When there
/// is none, `-1` for a 1 bit, and the first position past the end for a 0 bit (the string is
/// taken as padded with zeros on the right).
pub fn first_bit(bytes: &[u8], bit: bool) -> i64 {
    // A word of all `skip` bits holds no match.
    let skip = if bit { 0 } else { u64::MAX };
    let (words, tail) = bytes.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let word = u64::from_be_bytes(*word);
        if word != skip {
            let bits = if bit { word } else { !word };
            return (i * 64) as i64 + i64::from(bits.leading_zeros());
        }
    }
    let base = words.len() * 64;
    for (i, &byte) in tail.iter().enumerate() {
        let bits = if bit { byte } else { !byte };
        if bits != 0 {
            return (base + i * 8) as i64 + i64::from(bits.leading_zeros());
        }
    }
    if bit {
        -1
    } else {
        bytes.len() as i64 * 8
    }
}

/// BITOP's result over `sources` (missing keys are empty): as long as the longest source,
/// shorter ones read as zero-padded. Empty when every source is.
pub fn combine(op: BitOp, sources: &[&[u8]]) -> Vec<u8> {
    let len = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let Some((first, rest)) = sources.split_first() else {
        return Vec::new();
    };
    let mut out = vec![0u8; len];
    out[..first.len()].copy_from_slice(first);
    // Byte loops over zipped slices: the compiler turns each into wide SIMD operations,
    // which beats a hand-written u64 loop.
    match op {
        BitOp::Not => out.iter_mut().for_each(|b| *b = !*b),
        BitOp::And => {
            for src in rest {
                out.iter_mut().zip(src.iter()).for_each(|(o, s)| *o &= s);
                // Past a source's end its bytes are zero.
                out[src.len()..].fill(0);
            }
        }
        BitOp::Or => {
            for src in rest {
                out.iter_mut().zip(src.iter()).for_each(|(o, s)| *o |= s);
            }
        }
        BitOp::Xor => {
            for src in rest {
                out.iter_mut().zip(src.iter()).for_each(|(o, s)| *o ^= s);
            }
        }
    }
    out
}

/// The window of (up to) 9 bytes starting at the byte of bit `offset`, as a big-endian
/// integer: every field of up to 64 bits at that offset lies inside it. Bytes past the end of
/// `bytes` read as zero.
fn window(bytes: &[u8], offset: u64) -> u128 {
    let start = usize::try_from(offset >> 3).unwrap_or(usize::MAX);
    let mut raw = [0u8; 16];
    if let Some(src) = bytes.get(start..) {
        let n = src.len().min(9);
        raw[..n].copy_from_slice(&src[..n]);
    }
    u128::from_be_bytes(raw) >> 56
}

/// The unsigned value of the `bits`-wide field at bit `offset` (1 to 64 bits), zero past the
/// end of `bytes`.
pub fn get_unsigned(bytes: &[u8], offset: u64, bits: u32) -> u64 {
    let shift = 72 - (offset & 7) as u32 - bits;
    let mask = u64::MAX >> (64 - bits);
    (window(bytes, offset) >> shift) as u64 & mask
}

/// The signed (two's complement) value of the field at `offset`.
pub fn get_signed(bytes: &[u8], offset: u64, bits: u32) -> i64 {
    let value = get_unsigned(bytes, offset, bits);
    // Move the field's sign bit to bit 63, then shift back arithmetically to extend it.
    ((value << (64 - bits)) as i64) >> (64 - bits)
}

/// Writes the low `bits` bits of `value` at bit `offset`. The bytes holding the field must
/// exist (the caller grew the string); bytes outside the field are left as they were.
pub fn set_field(bytes: &mut [u8], offset: u64, bits: u32, value: u64) {
    let start = usize::try_from(offset >> 3).unwrap_or(usize::MAX);
    let Some(dst) = bytes.get_mut(start..) else {
        return;
    };
    let n = dst.len().min(9);
    let mut raw = [0u8; 16];
    raw[..n].copy_from_slice(&dst[..n]);
    let shift = 72 - (offset & 7) as u32 - bits;
    let mask = u128::from(u64::MAX >> (64 - bits)) << shift;
    let old = u128::from_be_bytes(raw) >> 56;
    let new = (old & !mask) | ((u128::from(value) << shift) & mask);
    let out = (new << 56).to_be_bytes();
    dst[..n].copy_from_slice(&out[..n]);
}

/// Redis's `checkUnsignedBitfieldOverflow`: whether `value + incr` overflows (`1`) or
/// underflows (`-1`) a `bits`-wide unsigned field, and the value to store instead under
/// WRAP or SAT (`None` under FAIL).
pub fn unsigned_overflow(value: u64, incr: i64, bits: u32, mode: Overflow) -> (i8, Option<u64>) {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    // The casts reproduce Redis's mixed signed/unsigned arithmetic exactly.
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = 0u64.wrapping_sub(value) as i64;
    let wrapped = || value.wrapping_add(incr as u64) & !(u64::MAX.checked_shl(bits).unwrap_or(0));
    if value > max || (incr > 0 && incr > max_incr) {
        let limit = match mode {
            Overflow::Wrap => Some(wrapped()),
            Overflow::Sat => Some(max),
            Overflow::Fail => None,
        };
        (1, limit)
    } else if incr < 0 && incr < min_incr {
        let limit = match mode {
            Overflow::Wrap => Some(wrapped()),
            Overflow::Sat => Some(0),
            Overflow::Fail => None,
        };
        (-1, limit)
    } else {
        (0, None)
    }
}

/// Redis's `checkSignedBitfieldOverflow`, for a `bits`-wide signed field.
pub fn signed_overflow(value: i64, incr: i64, bits: u32, mode: Overflow) -> (i8, Option<i64>) {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    // As in Redis these may wrap; they are only compared once `value` is known in range.
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrapped = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let msb = 1u64 << (bits - 1);
            let mask = u64::MAX << bits;
            if c & msb != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    let wide = bits != 64;
    if value > max || (wide && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr) {
        let limit = match mode {
            Overflow::Wrap => Some(wrapped()),
            Overflow::Sat => Some(max),
            Overflow::Fail => None,
        };
        (1, limit)
    } else if value < min || (wide && incr < min_incr) || (value < 0 && incr < 0 && incr < min_incr)
    {
        let limit = match mode {
            Overflow::Wrap => Some(wrapped()),
            Overflow::Sat => Some(min),
            Overflow::Fail => None,
        };
        (-1, limit)
    } else {
        (0, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naive definition: bit `i` of the string.
    fn bit(bytes: &[u8], i: usize) -> bool {
        bytes[i / 8] & (0x80 >> (i % 8)) != 0
    }

    #[test]
    fn popcount_counts_every_set_bit_across_words_and_tail() {
        let bytes: Vec<u8> = (0..=255u8).chain(0..37).collect();
        let naive = (0..bytes.len() * 8).filter(|&i| bit(&bytes, i)).count();
        assert_eq!(popcount(&bytes), naive as u64);
        assert_eq!(popcount(&[]), 0);
    }

    #[test]
    fn first_bit_follows_redis_padding_rules() {
        assert_eq!(first_bit(&[], true), -1);
        assert_eq!(first_bit(&[], false), 0);
        assert_eq!(first_bit(&[0; 20], true), -1);
        assert_eq!(first_bit(&[0xff; 20], false), 160);
        let mut bytes = [0u8; 20];
        bytes[17] = 0x10;
        assert_eq!(first_bit(&bytes, true), 17 * 8 + 3);
        bytes[3] = 0x01;
        assert_eq!(first_bit(&bytes, true), 31);
        assert_eq!(first_bit(&[0xff, 0xfe], false), 15);
    }

    #[test]
    fn combine_pads_shorter_sources_with_zeros() {
        let a: &[u8] = &[0xff, 0x0f, 0xaa];
        let b: &[u8] = &[0xf0];
        assert_eq!(combine(BitOp::And, &[a, b]), vec![0xf0, 0, 0]);
        assert_eq!(combine(BitOp::Or, &[b, a]), vec![0xff, 0x0f, 0xaa]);
        assert_eq!(combine(BitOp::Xor, &[a, b]), vec![0x0f, 0x0f, 0xaa]);
        assert_eq!(combine(BitOp::Not, &[b]), vec![0x0f]);
        assert!(combine(BitOp::Or, &[&[], &[]]).is_empty());
    }

    #[test]
    fn fields_round_trip_at_unaligned_offsets() {
        // Redis's own example: u5 = 23 at offset 7 -> 00000001|01110000.
        let mut bytes = vec![0u8; 2];
        set_field(&mut bytes, 7, 5, 23);
        assert_eq!(bytes, vec![0b0000_0001, 0b0111_0000]);
        assert_eq!(get_unsigned(&bytes, 7, 5), 23);
        let mut bytes = vec![0xaau8; 12];
        set_field(&mut bytes, 13, 64, 0x0123_4567_89ab_cdef);
        assert_eq!(get_unsigned(&bytes, 13, 64), 0x0123_4567_89ab_cdef);
        assert_eq!(get_signed(&bytes, 0, 8), 0xaau8 as i8 as i64);
        assert_eq!(bytes[0], 0xaa);
        assert_eq!(bytes[11] & 0x07, 0xaa & 0x07);
        // Past the end reads zero.
        assert_eq!(get_unsigned(&[0xff], 4, 8), 0xf0);
    }

    #[test]
    fn overflow_rules_match_redis() {
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Wrap), (1, Some(4)));
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Sat), (1, Some(255)));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Sat), (-1, Some(0)));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Fail), (-1, None));
        // SET u8 -1 under SAT stores 255, as Redis does.
        assert_eq!(
            unsigned_overflow(u64::MAX, 0, 8, Overflow::Sat),
            (1, Some(255))
        );
        assert_eq!(signed_overflow(127, 1, 8, Overflow::Wrap), (1, Some(-128)));
        assert_eq!(
            signed_overflow(-128, -1, 8, Overflow::Sat),
            (-1, Some(-128))
        );
        assert_eq!(signed_overflow(200, 0, 8, Overflow::Wrap), (1, Some(-56)));
        assert_eq!(
            signed_overflow(i64::MAX, 1, 64, Overflow::Wrap),
            (1, Some(i64::MIN))
        );
        assert_eq!(
            signed_overflow(i64::MIN, -1, 64, Overflow::Sat),
            (-1, Some(i64::MIN))
        );
        assert_eq!(signed_overflow(3, 4, 64, Overflow::Fail), (0, None));
    }
}
