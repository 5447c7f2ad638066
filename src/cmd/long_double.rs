//! The arithmetic of INCRBYFLOAT and HINCRBYFLOAT, as Redis does it: in x86's 80-bit
//! `long double` (a 64-bit mantissa), read with `strtold` and printed with `%.17Lf` minus
//! trailing zeros. An `f64` gives other texts for everyday sums: Redis answers `0.3` to
//! `0.1 + 0.2` and `205.60000000000000001` to `10.5 + 0.1 - 5 + 200`; so the number is carried
//! here exactly as the x87 unit would, in software (`#![forbid(unsafe_code)]`, and Rust has no
//! `f80`): decimal input correctly rounded to 64 bits (glibc's `strtold` rounds correctly),
//! sums rounded half to even, and output digits from the exact binary value.
//!
//! Not covered, as nobody sends them: hexadecimal input (`0x1p3`, which `strtold` takes) and
//! numbers below the normal range (about 3.4e-4932), refused here though `strtold` accepts
//! subnormals.

use std::cmp::Ordering;

use bytes::Bytes;

/// A finite `long double`: `(-1)^neg * m * 2^e`, `m` with its top bit set, or zero (`m == 0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LongDouble {
    neg: bool,
    m: u64,
    e: i32,
}

/// A parsed number: finite, or an infinity (`inf` is valid input; the sum's check refuses it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Parsed {
    /// A finite value.
    Finite(LongDouble),
    /// `inf`, `-inf`, `infinity`...
    Infinite,
}

/// Reads `text` as Redis's `string2ld` does: the whole text a decimal number (or `inf`), no
/// leading space, shorter than 5120 bytes (`MAX_LONG_DOUBLE_CHARS`), not NaN, no overflow.
pub(super) fn parse(text: &[u8]) -> Option<Parsed> {
    if text.is_empty() || text.len() >= MAX_CHARS {
        return None;
    }
    let (neg, body) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, text),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(Parsed::Infinite);
    }
    let (mut digits, mut exp10, mut seen_digit, mut i) = (Big::default(), 0i64, false, 0);
    let mut significant = 0usize;
    let mut in_fraction = false;
    while let Some(&c) = body.get(i) {
        match c {
            b'0'..=b'9' => {
                seen_digit = true;
                if c != b'0' || significant > 0 {
                    digits.mul_small(10);
                    digits.add_small(u32::from(c - b'0'));
                    significant += 1;
                }
                if in_fraction {
                    exp10 -= 1;
                }
            }
            b'.' if !in_fraction => in_fraction = true,
            _ => break,
        }
        i += 1;
    }
    if !seen_digit {
        return None;
    }
    if let Some(b'e' | b'E') = body.get(i) {
        let exp = &body[i + 1..];
        let (exp_neg, exp_digits) = match exp.split_first() {
            Some((b'-', rest)) => (true, rest),
            Some((b'+', rest)) => (false, rest),
            _ => (false, exp),
        };
        if exp_digits.is_empty() || !exp_digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = exp_digits.iter().fold(0i64, |n, &d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
        exp10 = exp10.saturating_add(if exp_neg { -n } else { n });
        i = body.len();
    }
    if i != body.len() {
        return None;
    }
    if digits.is_zero() {
        return Some(Parsed::Finite(LongDouble { neg, m: 0, e: 0 }));
    }
    // Far outside the range: overflow or underflow to zero, which `string2ld` refuses.
    let magnitude = exp10.saturating_add(significant as i64);
    if !(-4960..=4940).contains(&magnitude) {
        return None;
    }
    let (q, sticky, shift) = if exp10 >= 0 {
        for _ in 0..exp10 {
            digits.mul_small(10);
        }
        let len = digits.bit_len();
        let low = len.saturating_sub(67);
        (digits.bits(low, 67), digits.any_below(low), low as i64)
    } else {
        // digits / 10^k: scale so that the quotient has 66 or 67 bits, divide bit by bit.
        let mut p = Big::from_u32(1);
        for _ in 0..-exp10 {
            p.mul_small(10);
        }
        let s = 66 + p.bit_len() as i64 - digits.bit_len() as i64;
        let (mut n, p) = if s >= 0 {
            (digits.shl(s as usize), p)
        } else {
            (digits, p.shl((-s) as usize))
        };
        let mut q = 0u128;
        for bit in (0..68).rev() {
            let shifted = p.shl(bit);
            if n.cmp(&shifted) != Ordering::Less {
                n.sub_assign(&shifted);
                q |= 1 << bit;
            }
        }
        (q, !n.is_zero(), -s)
    };
    let value = round(neg, q | u128::from(sticky), shift)?;
    Some(Parsed::Finite(value))
}

/// Zero, what a missing key or field counts as.
pub(super) const ZERO: Parsed = Parsed::Finite(LongDouble {
    neg: false,
    m: 0,
    e: 0,
});

/// The sum INCRBYFLOAT stores: `None` when it is not finite (an infinite operand, or an
/// overflow), which Redis answers with `increment would produce NaN or Infinity`.
pub(super) fn sum(a: Parsed, b: Parsed) -> Option<LongDouble> {
    match (a, b) {
        (Parsed::Finite(a), Parsed::Finite(b)) => add(a, b),
        _ => None,
    }
}

/// `a + b`, rounded to nearest, ties to even; `None` when it overflows.
pub(super) fn add(a: LongDouble, b: LongDouble) -> Option<LongDouble> {
    if a.m == 0 {
        return Some(if b.m == 0 {
            // -0 + -0 is -0; any other sum of zeros +0.
            LongDouble {
                neg: a.neg && b.neg,
                ..a
            }
        } else {
            b
        });
    }
    if b.m == 0 {
        return Some(a);
    }
    let (x, y) = if a.e >= b.e { (a, b) } else { (b, a) };
    // 62 guard bits below the mantissa; what shifts out of y is jammed into its lowest bit.
    let mx = u128::from(x.m) << 62;
    let my = u128::from(y.m) << 62;
    let shift = (x.e - y.e) as u32;
    let my = if shift >= 128 {
        1
    } else {
        (my >> shift) | u128::from(my & ((1u128 << shift) - 1) != 0)
    };
    let (neg, r) = if x.neg == y.neg {
        (x.neg, mx + my)
    } else if mx >= my {
        (x.neg, mx - my)
    } else {
        (y.neg, my - mx)
    };
    if r == 0 {
        return Some(LongDouble {
            neg: false,
            m: 0,
            e: 0,
        });
    }
    round(neg, r, i64::from(x.e) - 62)
}

/// The value as `%.17Lf` prints it, trailing zeros (and a bare point) removed, `-0` as `0`.
pub(super) fn text(v: LongDouble) -> Bytes {
    let mut out = String::new();
    if v.m == 0 {
        return Bytes::from_static(b"0");
    }
    let (int_part, frac) = if v.e >= 0 {
        (Big::from_u64(v.m).shl(v.e as usize).to_decimal(), 0u64)
    } else {
        // round(m * 10^17 / 2^-e), half to even: fits 128 bits before the shift.
        let scaled = u128::from(v.m) * 10u128.pow(17);
        let shift = (-v.e) as u32;
        let q = if shift >= 128 {
            0
        } else {
            let q = scaled >> shift;
            let rest = scaled & ((1u128 << shift) - 1);
            let half = 1u128 << (shift - 1);
            q + u128::from(rest > half || (rest == half && q & 1 == 1))
        };
        let unit = 10u128.pow(17);
        ((q / unit).to_string(), (q % unit) as u64)
    };
    let frac = format!("{frac:017}");
    let frac = frac.trim_end_matches('0');
    if v.neg && (int_part != "0" || !frac.is_empty()) {
        out.push('-');
    }
    out.push_str(&int_part);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Bytes::from(out)
}

/// Rounds `r * 2^shift` (r > 0, its lowest bit set if anything below it was lost) to a
/// 64-bit mantissa; `None` past the largest `long double`, or below the smallest normal one.
fn round(neg: bool, r: u128, shift: i64) -> Option<LongDouble> {
    let len = 128 - r.leading_zeros() as i64;
    let (mut m, mut e) = if len > 64 {
        let drop = (len - 64) as u32;
        let q = r >> drop;
        let rest = r & ((1u128 << drop) - 1);
        let half = 1u128 << (drop - 1);
        let up = rest > half || (rest == half && q & 1 == 1);
        (q + u128::from(up), shift + i64::from(drop))
    } else {
        (r << (64 - len), shift - (64 - len))
    };
    if m >> 64 != 0 {
        m >>= 1;
        e += 1;
    }
    // The unbiased exponent of the leading bit is e + 63: normal range -16382..=16383.
    if !(-16382..=16383).contains(&(e + 63)) {
        return None;
    }
    Some(LongDouble {
        neg,
        m: m as u64,
        e: e as i32,
    })
}

/// `strtold`'s input limit in `string2ld` (`MAX_LONG_DOUBLE_CHARS`).
const MAX_CHARS: usize = 5 * 1024;

/// A little unsigned big integer, 32-bit limbs, least significant first.
#[derive(Debug, Clone, Default)]
struct Big(Vec<u32>);

impl Big {
    fn from_u32(n: u32) -> Big {
        Big(vec![n])
    }

    fn from_u64(n: u64) -> Big {
        Big(vec![n as u32, (n >> 32) as u32])
    }

    fn is_zero(&self) -> bool {
        self.0.iter().all(|&l| l == 0)
    }

    fn mul_small(&mut self, k: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(k) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    fn add_small(&mut self, k: u32) {
        let mut carry = u64::from(k);
        for limb in &mut self.0 {
            if carry == 0 {
                return;
            }
            let v = u64::from(*limb) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    fn bit_len(&self) -> usize {
        match self.0.iter().rposition(|&l| l != 0) {
            Some(i) => i * 32 + 32 - self.0[i].leading_zeros() as usize,
            None => 0,
        }
    }

    fn bit(&self, i: usize) -> bool {
        self.0.get(i / 32).is_some_and(|l| l >> (i % 32) & 1 == 1)
    }

    /// Bits `low..low + n` (n <= 128) as an integer.
    fn bits(&self, low: usize, n: usize) -> u128 {
        (0..n).fold(0, |acc, i| acc | u128::from(self.bit(low + i)) << i)
    }

    /// Whether any bit below `n` is set.
    fn any_below(&self, n: usize) -> bool {
        (0..n).any(|i| self.bit(i))
    }

    fn shl(&self, n: usize) -> Big {
        let (limbs, bits) = (n / 32, (n % 32) as u32);
        let mut out = vec![0u32; limbs];
        let mut carry = 0u32;
        for &l in &self.0 {
            if bits == 0 {
                out.push(l);
            } else {
                out.push(l << bits | carry);
                carry = l >> (32 - bits);
            }
        }
        if carry != 0 {
            out.push(carry);
        }
        Big(out)
    }

    fn cmp(&self, other: &Big) -> Ordering {
        let (a, b) = (self.bit_len(), other.bit_len());
        if a != b {
            return a.cmp(&b);
        }
        let n = a.div_ceil(32);
        for i in (0..n).rev() {
            let (x, y) = (
                self.0.get(i).copied().unwrap_or(0),
                other.0.get(i).copied().unwrap_or(0),
            );
            if x != y {
                return x.cmp(&y);
            }
        }
        Ordering::Equal
    }

    /// `self -= other`, for `self >= other`.
    fn sub_assign(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let v = i64::from(*limb) - i64::from(other.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(v < 0);
            *limb = v.rem_euclid(1 << 32) as u32;
        }
    }

    /// Decimal digits.
    fn to_decimal(&self) -> String {
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            let mut rem = 0u64;
            for limb in n.0.iter_mut().rev() {
                let v = rem << 32 | u64::from(*limb);
                *limb = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            chunks.push(rem as u32);
        }
        let mut out = chunks
            .pop()
            .map_or_else(|| "0".to_owned(), |c| c.to_string());
        for c in chunks.iter().rev() {
            out.push_str(&format!("{c:09}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis 7.0.15's answers (x86-64), starting from 0.
    fn sum(terms: &[&str]) -> String {
        let mut acc = LongDouble {
            neg: false,
            m: 0,
            e: 0,
        };
        for t in terms {
            let Some(Parsed::Finite(v)) = parse(t.as_bytes()) else {
                panic!("{t} parses");
            };
            acc = add(acc, v).expect("finite");
        }
        String::from_utf8(text(acc).to_vec()).expect("ascii")
    }

    #[test]
    fn sums_print_as_redis_prints_them() {
        assert_eq!(sum(&["0.1", "0.2"]), "0.3");
        assert_eq!(
            sum(&["10.5", "0.1", "-5", "2.0e2"]),
            "205.60000000000000001"
        );
        assert_eq!(sum(&["10.5", "0.1"]), "10.6");
        assert_eq!(sum(&["1000000.1"]), "1000000.10000000000002274");
        assert_eq!(sum(&["5.0e3", "2.0e2"]), "5200");
        assert_eq!(sum(&["1e-20"]), "0");
        assert_eq!(sum(&["-0", "-0"]), "0");
        assert_eq!(sum(&["-2.5"]), "-2.5");
        assert_eq!(sum(&["3"]), "3");
        assert_eq!(
            sum(&["1e300"]),
            "1000000000000000000008997324079559193870523944273290747938260082321265646596\
             180935755849152083750497190350372508614274835903592556184672983913096260520748\
             646287327135641843653294084255107606016789726652932370030551382947620994540294\
             772781889620606179267611627097410650567187386105690089424915104006144"
        );
    }

    #[test]
    fn input_follows_string2ld() {
        for bad in [
            "", " 1", "1 ", "abc", "1e", "1e+", ".", "-", "nan", "1e5000", "1e-5000",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        for good in [
            "1.",
            ".5",
            "+1",
            "-0",
            "1E3",
            "0e99999999999999999999",
            "007",
        ] {
            assert!(
                matches!(parse(good.as_bytes()), Some(Parsed::Finite(_))),
                "{good:?}"
            );
        }
        assert_eq!(parse(b"-Infinity"), Some(Parsed::Infinite));
        assert_eq!(parse(&[b'1'; MAX_CHARS]), None);
        // The largest long double sums with itself to an overflow.
        let Some(Parsed::Finite(max)) = parse(b"1.1e4932") else {
            panic!("in range");
        };
        assert_eq!(add(max, max), None);
    }
}
