//! Redis's intset: a sorted array of distinct integers packed at the narrowest width that
//! holds them all (16, 32 or 64 bits), searched by binary search. Like Redis's, it widens
//! when a value does not fit and never narrows.
//!
//! Up to [`TINY`] 16-bit values live inside the set's own 24 bytes, with no allocation at
//! all (the common "a few small ids" set). Beyond that each width is its own boxed slice: 100
//! small integers are one 200-byte allocation (Redis's `intset` blob adds an 8-byte header).
//! Inserting and removing reallocate to the exact length, as `intsetResize` does.

/// How many 16-bit values fit inline: the enum's tag and the length take 2 of its 24 bytes.
pub(super) const TINY: usize = 11;

/// A sorted set of distinct integers at one of three widths.
#[derive(Debug, Clone)]
pub(super) enum IntSet {
    /// At most [`TINY`] values that fit in 16 bits, inline: the length, then the values
    /// (those past the length are unused).
    Tiny(u8, [i16; TINY]),
    /// Every value fits in 16 bits.
    I16(Box<[i16]>),
    /// Every value fits in 32 bits.
    I32(Box<[i32]>),
    /// 64-bit values.
    I64(Box<[i64]>),
}

impl Default for IntSet {
    fn default() -> Self {
        IntSet::Tiny(0, [0; TINY])
    }
}

impl IntSet {
    /// Number of values.
    pub(super) fn len(&self) -> usize {
        match self {
            IntSet::Tiny(len, _) => usize::from(*len),
            IntSet::I16(v) => v.len(),
            IntSet::I32(v) => v.len(),
            IntSet::I64(v) => v.len(),
        }
    }

    /// The value at `index` in ascending order.
    pub(super) fn get(&self, index: usize) -> Option<i64> {
        match self {
            IntSet::Tiny(..) => self.tiny().get(index).map(|&n| i64::from(n)),
            IntSet::I16(v) => v.get(index).map(|&n| i64::from(n)),
            IntSet::I32(v) => v.get(index).map(|&n| i64::from(n)),
            IntSet::I64(v) => v.get(index).copied(),
        }
    }

    /// Whether `value` is in the set.
    pub(super) fn contains(&self, value: i64) -> bool {
        self.position(value).is_ok()
    }

    /// Adds `value`; true when it was not there.
    pub(super) fn insert(&mut self, value: i64) -> bool {
        if self.contains(value) {
            return false;
        }
        if !self.fits(value) {
            self.widen(value);
        }
        let Err(at) = self.position(value) else {
            return false;
        };
        match self {
            IntSet::Tiny(len, values) => {
                let n = usize::from(*len);
                values.copy_within(at..n, at + 1);
                values[at] = value as i16;
                *len += 1;
            }
            IntSet::I16(v) => *v = inserted(v, at, value as i16),
            IntSet::I32(v) => *v = inserted(v, at, value as i32),
            IntSet::I64(v) => *v = inserted(v, at, value),
        }
        true
    }

    /// Removes `value`; true when it was there.
    pub(super) fn remove(&mut self, value: i64) -> bool {
        match self.position(value) {
            Ok(at) => {
                self.remove_at(at);
                true
            }
            Err(_) => false,
        }
    }

    /// Removes the value at `index` (ascending order), if any.
    pub(super) fn remove_at(&mut self, index: usize) {
        if index >= self.len() {
            return;
        }
        match self {
            IntSet::Tiny(len, values) => {
                values.copy_within(index + 1..usize::from(*len), index);
                *len -= 1;
            }
            IntSet::I16(v) => *v = removed(v, index),
            IntSet::I32(v) => *v = removed(v, index),
            IntSet::I64(v) => *v = removed(v, index),
        }
    }

    /// The values in ascending order.
    pub(super) fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Bytes of the packed values.
    pub(super) fn bytes(&self) -> usize {
        match self {
            IntSet::Tiny(..) => 0,
            IntSet::I16(v) => v.len() * 2,
            IntSet::I32(v) => v.len() * 4,
            IntSet::I64(v) => v.len() * 8,
        }
    }

    /// The index of `value`, or where it would go.
    fn position(&self, value: i64) -> Result<usize, usize> {
        match self {
            IntSet::Tiny(..) | IntSet::I16(_) => match i16::try_from(value) {
                Ok(n) => self.tiny().binary_search(&n),
                Err(_) => Err(if value < 0 { 0 } else { self.len() }),
            },
            IntSet::I32(v) => match i32::try_from(value) {
                Ok(n) => v.binary_search(&n),
                Err(_) => Err(if value < 0 { 0 } else { v.len() }),
            },
            IntSet::I64(v) => v.binary_search(&value),
        }
    }

    /// Whether `value` fits the current width.
    fn fits(&self, value: i64) -> bool {
        match self {
            IntSet::Tiny(len, _) => usize::from(*len) < TINY && i16::try_from(value).is_ok(),
            IntSet::I16(_) => i16::try_from(value).is_ok(),
            IntSet::I32(_) => i32::try_from(value).is_ok(),
            IntSet::I64(_) => true,
        }
    }

    /// The 16-bit values of a tiny or 16-bit set (empty for the wider ones).
    fn tiny(&self) -> &[i16] {
        match self {
            IntSet::Tiny(len, values) => &values[..usize::from(*len)],
            IntSet::I16(v) => v,
            _ => &[],
        }
    }

    /// Re-packs every value at the width `value` needs (`intsetUpgradeAndAdd`'s first half),
    /// or moves a full tiny set to the heap.
    fn widen(&mut self, value: i64) {
        let values = self.iter();
        *self = if i16::try_from(value).is_ok() {
            IntSet::I16(values.map(|n| n as i16).collect())
        } else if i32::try_from(value).is_ok() {
            IntSet::I32(values.map(|n| n as i32).collect())
        } else {
            IntSet::I64(values.collect())
        };
    }
}

/// `values` with `value` inserted at `at`, in an allocation of the exact new length.
fn inserted<T: Copy>(values: &[T], at: usize, value: T) -> Box<[T]> {
    let mut out = Vec::with_capacity(values.len() + 1);
    out.extend_from_slice(&values[..at]);
    out.push(value);
    out.extend_from_slice(&values[at..]);
    out.into_boxed_slice()
}

/// `values` without the one at `at`, in an allocation of the exact new length.
fn removed<T: Copy>(values: &[T], at: usize) -> Box<[T]> {
    let mut out = Vec::with_capacity(values.len().saturating_sub(1));
    out.extend_from_slice(&values[..at]);
    out.extend_from_slice(&values[at + 1..]);
    out.into_boxed_slice()
}
