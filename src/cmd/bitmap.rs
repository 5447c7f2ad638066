//! Bitmap commands: strings read and written as arrays of bits (Redis's `bitops.c`).
//!
//! ```text
//! SETBIT key offset 0|1                              -> the bit's previous value
//! GETBIT key offset                                  -> 0 | 1
//! BITCOUNT key [start end [BYTE|BIT]]                -> number of set bits
//! BITPOS key 0|1 [start [end [BYTE|BIT]]]            -> position of the first such bit | -1
//! BITOP AND|OR|XOR|NOT destkey key [key ...]         -> length of destkey
//! BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset increment]
//!              [OVERFLOW WRAP|SAT|FAIL] ...          -> one integer (or nil) per GET/SET/INCRBY
//! BITFIELD_RO key [GET type offset ...]              -> one integer per GET
//! ```
//! Bit 0 is the most significant bit of the first byte. Offsets stop at the string size limit
//! (`proto-max-bulk-len`, 512 MB: bit 2^32-1), and writes past the end grow the string with
//! zero bytes. Writes keep the key's TTL, except BITOP, which replaces its destination. Types
//! are `i1`..`i64` and `u1`..`u63`; an offset `#n` means n times the type's width.
//!
//! The handlers parse and check in Redis's order, so the first error reported is Redis's; the
//! bit arithmetic is in `bits`. A bitmap is an ordinary string: a read borrows it in its shard
//! (no copy), a write copies it out, changes it and stores the whole new value through the
//! command's [`Writer`](super::capture::Writer), which keeps the effect stream exact.

mod bits;

use bytes::Bytes;

use super::args::{int, is};
use super::table::{cmd, CommandSpec, KEY1, R, RF, W};
use super::{CommandError, Ctx};
use crate::protocol::Reply;
use bits::{BitOp, FieldType, Overflow};

/// The bitmap family's rows of the command table, and LCS (a string command of Redis's
/// `t_string.c`, kept beside them in `lcs`). Arity, flags and key positions are Redis 7.0's.
pub(super) fn commands() -> Vec<CommandSpec> {
    use crate::stats::StatKind::Other as O;
    vec![
        cmd("setbit", 4, W, KEY1, O, setbit),
        cmd("getbit", 3, RF, KEY1, O, getbit),
        cmd("bitcount", -2, R, KEY1, O, bitcount),
        cmd("bitpos", -3, R, KEY1, O, bitpos),
        // BITOP's destination is its first key, the sources follow.
        cmd("bitop", -4, W, (2, -1, 1), O, bitop),
        cmd("bitfield", -2, W, KEY1, O, bitfield),
        cmd("bitfield_ro", -2, RF, KEY1, O, bitfield_ro),
        cmd("lcs", -3, R, (1, 2, 1), O, super::lcs::lcs),
    ]
}

pub(super) fn setbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let offset = bit_offset(&args[2], 0, max_len(ctx))?;
    let on = match int(&args[3]) {
        Ok(0) => false,
        Ok(1) => true,
        _ => return Err(other("ERR bit is not an integer or out of range")),
    };
    let key = &args[1];
    let mut shard = ctx.write(key)?;
    let (mut value, deadline) = match shard.get(key) {
        Some(e) => (Vec::from(e.value.into_string()?), e.deadline),
        None => (Vec::new(), None),
    };
    let byte = byte_index(offset);
    let grown = value.len() <= byte;
    if grown {
        value.resize(byte + 1, 0);
    }
    let mask = 0x80u8 >> (offset & 7);
    let was = value[byte] & mask != 0;
    // As in Redis, an unchanged bit in an unchanged string is no write at all.
    if grown || was != on {
        if on {
            value[byte] |= mask;
        } else {
            value[byte] &= !mask;
        }
        shard.put(key, &Bytes::from(value), deadline);
    }
    Ok(Reply::Int(i64::from(was)))
}

pub(super) fn getbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let offset = bit_offset(&args[2], 0, max_len(ctx))?;
    with_string(ctx, &args[1], |value| {
        let set = value
            .and_then(|v| v.get(byte_index(offset)))
            .is_some_and(|b| b & (0x80 >> (offset & 7)) != 0);
        Ok(Reply::Int(i64::from(set)))
    })
}

pub(super) fn bitcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    with_string(ctx, &args[1], |value| count(value, args))
}

/// BITCOUNT on the string (`None`: a missing key).
fn count(value: Option<&[u8]>, args: &[Bytes]) -> Result<Reply, CommandError> {
    // A missing key counts 0 before the arguments are even looked at, as in Redis.
    let Some(value) = value else {
        return Ok(Reply::Int(0));
    };
    let range = match args.len() {
        2 => Range::whole(value.len()),
        4 | 5 => {
            let (start, end) = (int(&args[2])?, int(&args[3])?);
            if start < 0 && end < 0 && start > end {
                return Ok(Reply::Int(0));
            }
            let in_bits = match args.get(4) {
                Some(unit) => bit_unit(unit)?,
                None => false,
            };
            Range::resolve(value.len(), start, end, in_bits)
        }
        _ => return Err(CommandError::Syntax),
    };
    if range.start > range.end {
        return Ok(Reply::Int(0));
    }
    let (start, end) = (range.start as usize, range.end as usize);
    let mut count = bits::popcount(&value[start..=end]);
    // The edge bytes' bits outside a BIT range were counted: take them back out.
    count -= u64::from((value[start] & range.first_mask).count_ones());
    count -= u64::from((value[end] & range.last_mask).count_ones());
    Ok(Reply::Int(count as i64))
}

pub(super) fn bitpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let bit = match int(&args[2])? {
        0 => false,
        1 => true,
        _ => return Err(other("ERR The bit argument must be 1 or 0.")),
    };
    with_string(ctx, &args[1], |value| position(value, bit, args))
}

/// BITPOS for `bit` on the string (`None`: a missing key).
fn position(value: Option<&[u8]>, bit: bool, args: &[Bytes]) -> Result<Reply, CommandError> {
    // A missing key is an endless run of zeros.
    let Some(value) = value else {
        return Ok(Reply::Int(if bit { -1 } else { 0 }));
    };
    let len = value.len() as i64;
    let mut end_given = false;
    let range = match args.len() {
        3 => Range::whole(value.len()),
        4..=6 => {
            let start = int(&args[3])?;
            let in_bits = match args.get(5) {
                Some(unit) => bit_unit(unit)?,
                None => false,
            };
            let end = match args.get(4) {
                Some(end) => {
                    end_given = true;
                    int(end)?
                }
                None if in_bits => len * 8 + 7,
                None => len - 1,
            };
            Range::resolve(value.len(), start, end, in_bits)
        }
        _ => return Err(CommandError::Syntax),
    };
    if range.start > range.end {
        return Ok(Reply::Int(-1));
    }
    let (mut pos, start, bytes) = search(value, &range, bit);
    // With an explicit end, the bits right of the range are not zero padding: a 0 found
    // just past the range is no answer.
    if end_given && !bit && pos == bytes << 3 {
        return Ok(Reply::Int(-1));
    }
    if pos != -1 {
        pos += start << 3;
    }
    Ok(Reply::Int(pos))
}

pub(super) fn bitop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let op = if is(&args[1], "AND") {
        BitOp::And
    } else if is(&args[1], "OR") {
        BitOp::Or
    } else if is(&args[1], "XOR") {
        BitOp::Xor
    } else if is(&args[1], "NOT") {
        BitOp::Not
    } else {
        return Err(CommandError::Syntax);
    };
    if op == BitOp::Not && args.len() != 4 {
        return Err(other(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let mut sources = Vec::with_capacity(args.len() - 3);
    for key in &args[3..] {
        // Every key of this write command is locked already: read through its writer.
        let entry = ctx.write(key)?.get(key);
        ctx.node.stats.record_lookup(entry.is_some());
        sources.push(match entry {
            Some(e) => e.value.into_string()?,
            None => Bytes::new(),
        });
    }
    let slices: Vec<&[u8]> = sources.iter().map(|s| &s[..]).collect();
    let result = bits::combine(op, &slices);
    let len = result.len();
    let dest = &args[2];
    let mut shard = ctx.write(dest)?;
    if result.is_empty() {
        shard.remove(dest);
    } else {
        // The destination is replaced whole, TTL included (Redis's setKey).
        shard.put(dest, &Bytes::from(result), None);
    }
    Ok(Reply::Int(len as i64))
}

pub(super) fn bitfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    bitfield_generic(ctx, args, false)
}

pub(super) fn bitfield_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    bitfield_generic(ctx, args, true)
}

/// One BITFIELD operation, parsed.
struct FieldOp {
    kind: FieldOpKind,
    ty: FieldType,
    offset: u64,
    /// SET's value or INCRBY's increment.
    value: i64,
    overflow: Overflow,
}

#[derive(PartialEq)]
enum FieldOpKind {
    Get,
    Set,
    IncrBy,
}

/// BITFIELD and BITFIELD_RO (`read_only`): every operation is parsed before any runs, then
/// they run in order on one buffer.
fn bitfield_generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    read_only: bool,
) -> Result<Reply, CommandError> {
    let limit = max_len(ctx);
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut highest_write: Option<u64> = None;
    let mut j = 2;
    while j < args.len() {
        let rest = args.len() - j - 1;
        let sub = &args[j];
        let kind = if is(sub, "GET") && rest >= 2 {
            FieldOpKind::Get
        } else if is(sub, "SET") && rest >= 3 {
            FieldOpKind::Set
        } else if is(sub, "INCRBY") && rest >= 3 {
            FieldOpKind::IncrBy
        } else if is(sub, "OVERFLOW") && rest >= 1 {
            let mode = &args[j + 1];
            overflow = if is(mode, "WRAP") {
                Overflow::Wrap
            } else if is(mode, "SAT") {
                Overflow::Sat
            } else if is(mode, "FAIL") {
                Overflow::Fail
            } else {
                return Err(other("ERR Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(CommandError::Syntax);
        };
        let ty = field_type(&args[j + 1])?;
        let offset = bit_offset(&args[j + 2], ty.bits, limit)?;
        let mut value = 0;
        if kind != FieldOpKind::Get {
            let last = offset.saturating_add(u64::from(ty.bits) - 1);
            highest_write = highest_write.max(Some(last));
            value = int(&args[j + 3])?;
        }
        j += if kind == FieldOpKind::Get { 3 } else { 4 };
        ops.push(FieldOp {
            kind,
            ty,
            offset,
            value,
            overflow,
        });
    }
    let key = &args[1];
    let Some(highest) = highest_write else {
        // Only GETs: a read, whichever command.
        let gets = |value: Option<&[u8]>| {
            let value = value.unwrap_or_default();
            Ok(Reply::Array(
                ops.iter().map(|op| get_field(value, op)).collect(),
            ))
        };
        if read_only {
            return with_string(ctx, key, gets);
        }
        let stats = &ctx.node.stats;
        // BITFIELD is a write command: its key is locked already, read it through its writer.
        let mut shard = ctx.write(key)?;
        let value = shard.peek(key);
        stats.record_lookup(value.is_some());
        return gets(value.map(|v| v.as_string()).transpose()?);
    };
    if read_only {
        return Err(other("ERR BITFIELD_RO only supports the GET subcommand"));
    }
    let mut shard = ctx.write(key)?;
    let (mut value, deadline) = match shard.get(key) {
        Some(e) => (Vec::from(e.value.into_string()?), e.deadline),
        None => (Vec::new(), None),
    };
    let needed = byte_index(highest) + 1;
    // Growing (or creating) the string is a change even if every operation then fails.
    let mut changed = value.len() < needed;
    if changed {
        value.resize(needed, 0);
    }
    let mut replies = Vec::with_capacity(ops.len());
    for op in &ops {
        let reply = match op.kind {
            FieldOpKind::Get => get_field(&value, op),
            _ => {
                let (reply, wrote) = write_field(&mut value, op);
                changed |= wrote;
                reply
            }
        };
        replies.push(reply);
    }
    if changed {
        shard.put(key, &Bytes::from(value), deadline);
    }
    Ok(Reply::Array(replies))
}

/// A GET: the field's value, the string zero-padded past its end.
fn get_field(value: &[u8], op: &FieldOp) -> Reply {
    if op.ty.signed {
        Reply::Int(bits::get_signed(value, op.offset, op.ty.bits))
    } else {
        Reply::Int(bits::get_unsigned(value, op.offset, op.ty.bits) as i64)
    }
}

/// A SET or INCRBY on `value` (already long enough): its reply (the old value for SET, the
/// new one for INCRBY, nil when OVERFLOW FAIL refused it) and whether the bits changed.
fn write_field(value: &mut [u8], op: &FieldOp) -> (Reply, bool) {
    let FieldType { signed, bits } = op.ty;
    let incr = op.kind == FieldOpKind::IncrBy;
    // Both signednesses go through u64: the field stores the low `bits` bits either way.
    let (old, new, reply) = if signed {
        let old = bits::get_signed(value, op.offset, bits);
        let (base, by) = if incr { (old, op.value) } else { (op.value, 0) };
        let (overflow, limit) = bits::signed_overflow(base, by, bits, op.overflow);
        if overflow != 0 && op.overflow == Overflow::Fail {
            return (Reply::Nil, false);
        }
        let new = limit.unwrap_or(base.wrapping_add(by));
        (old as u64, new as u64, if incr { new } else { old })
    } else {
        let old = bits::get_unsigned(value, op.offset, bits);
        let base = if incr { old } else { op.value as u64 };
        let by = if incr { op.value } else { 0 };
        let (overflow, limit) = bits::unsigned_overflow(base, by, bits, op.overflow);
        if overflow != 0 && op.overflow == Overflow::Fail {
            return (Reply::Nil, false);
        }
        let new = limit.unwrap_or(base.wrapping_add(by as u64));
        (old, new, if incr { new as i64 } else { old as i64 })
    };
    bits::set_field(value, op.offset, bits, new);
    (Reply::Int(reply), old != new)
}

/// A BITCOUNT/BITPOS range resolved against a string: byte indices (inclusive), and for a
/// BIT range the bits of the first and last byte that lie outside it.
struct Range {
    start: i64,
    end: i64,
    first_mask: u8,
    last_mask: u8,
}

impl Range {
    fn whole(len: usize) -> Range {
        Range {
            start: 0,
            end: len as i64 - 1,
            first_mask: 0,
            last_mask: 0,
        }
    }

    /// Redis's conversion: negative indices count from the end, then clamp to the string.
    fn resolve(len: usize, mut start: i64, mut end: i64, in_bits: bool) -> Range {
        let total = if in_bits { len as i64 * 8 } else { len as i64 };
        if start < 0 {
            start += total;
        }
        if end < 0 {
            end += total;
        }
        start = start.max(0);
        end = end.max(0).min(total - 1);
        let (mut first_mask, mut last_mask) = (0, 0);
        if in_bits && start <= end {
            first_mask = !(0xffu8 >> (start & 7));
            last_mask = ((1u16 << (7 - (end & 7))) - 1) as u8;
            start >>= 3;
            end >>= 3;
        }
        Range {
            start,
            end,
            first_mask,
            last_mask,
        }
    }
}

/// BITPOS's search over a non-empty `range`, step for step as Redis's `bitposCommand`: a
/// partial first byte, whole bytes, a partial last byte. Returns the position found (relative
/// to the returned start byte; -1 for none) with the start byte and byte count it applies to.
fn search(value: &[u8], range: &Range, bit: bool) -> (i64, i64, i64) {
    let (mut start, end) = (range.start, range.end);
    let mut bytes = end - start + 1;
    let byte = |i: i64| value[i as usize];
    // Sets the bits outside the range to the value not searched for.
    let masked = |b: u8, mask: u8| if bit { b & !mask } else { b | mask };
    if range.first_mask != 0 {
        let mut tmp = masked(byte(start), range.first_mask);
        if range.last_mask != 0 && bytes == 1 {
            tmp = masked(tmp, range.last_mask);
        }
        let pos = bits::first_bit(&[tmp], bit);
        if bytes == 1 || (pos != -1 && pos != 8) {
            return (pos, start, bytes);
        }
        start += 1;
        bytes -= 1;
    }
    let whole = bytes - i64::from(range.last_mask != 0);
    if whole > 0 {
        let pos = bits::first_bit(&value[start as usize..(start + whole) as usize], bit);
        if bytes == whole || (pos != -1 && pos != whole << 3) {
            return (pos, start, bytes);
        }
        start += whole;
        bytes -= whole;
    }
    let pos = bits::first_bit(&[masked(byte(end), range.last_mask)], bit);
    (pos, start, bytes)
}

/// Runs `f` on the string at `key` (`None` when the key is missing), borrowed: a read command
/// copies nothing, so GETBIT on a large bitmap is O(1). The key counts as a keyspace hit or
/// miss. The shard stays locked while `f` runs (synchronous work only, as every lock here),
/// which keeps a BITCOUNT of a whole bitmap consistent.
///
/// # Errors
/// WRONGTYPE when the key holds another type, and whatever `f` returns.
fn with_string<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(Option<&[u8]>) -> Result<R, CommandError>,
) -> Result<R, CommandError> {
    let mut shard = ctx.db().shard(key);
    let value = shard.peek(key, ctx.now);
    ctx.node.stats.record_lookup(value.is_some());
    f(value.map(|v| v.as_string()).transpose()?)
}

/// Redis's `getBitOffsetFromArgument`: a bit offset below `limit` bytes. With a field width
/// (`bits > 0`, BITFIELD), `#n` means `n * bits`.
///
/// # Errors
/// `ERR bit offset is not an integer or out of range`.
fn bit_offset(arg: &[u8], bits: u32, limit: usize) -> Result<u64, CommandError> {
    let (scaled, digits) = match arg.split_first() {
        Some((b'#', rest)) if bits > 0 => (true, rest),
        _ => (false, arg),
    };
    let mut offset = int(digits).map_err(|_| offset_error())?;
    if scaled {
        // Redis multiplies without an overflow check; wrapping gives the same answer as its
        // build does, so `#huge` offsets are accepted or refused exactly as there.
        offset = offset.wrapping_mul(i64::from(bits));
    }
    if offset < 0 || (offset >> 3) as u64 >= limit as u64 {
        return Err(offset_error());
    }
    Ok(offset as u64)
}

/// Redis's `getBitfieldTypeFromArgument`: `i1`..`i64` or `u1`..`u63` (lower case only).
///
/// # Errors
/// Redis's invalid-type error.
fn field_type(arg: &[u8]) -> Result<FieldType, CommandError> {
    let invalid = || {
        other(
            "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not \
             supported but i64 is.",
        )
    };
    let (signed, digits) = match arg.split_first() {
        Some((b'i', rest)) => (true, rest),
        Some((b'u', rest)) => (false, rest),
        _ => return Err(invalid()),
    };
    let max = if signed { 64 } else { 63 };
    match int(digits) {
        Ok(n) if (1..=max).contains(&n) => Ok(FieldType {
            signed,
            bits: n as u32,
        }),
        _ => Err(invalid()),
    }
}

/// BITCOUNT/BITPOS's unit argument: true for BIT.
fn bit_unit(arg: &[u8]) -> Result<bool, CommandError> {
    if is(arg, "BIT") {
        Ok(true)
    } else if is(arg, "BYTE") {
        Ok(false)
    } else {
        Err(CommandError::Syntax)
    }
}

/// The byte holding bit `offset` (offsets are checked against the size limit, so it fits).
fn byte_index(offset: u64) -> usize {
    usize::try_from(offset >> 3).unwrap_or(usize::MAX)
}

/// The string size limit, `proto-max-bulk-len`.
fn max_len(ctx: &Ctx<'_>) -> usize {
    ctx.node.config.resp_limits.max_bulk_len
}

fn offset_error() -> CommandError {
    other("ERR bit offset is not an integer or out of range")
}

fn other(text: &'static str) -> CommandError {
    CommandError::Other(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_redis_limits_and_hash_form() {
        let limit = 512 * 1024 * 1024;
        assert_eq!(bit_offset(b"4294967295", 0, limit).ok(), Some(4294967295));
        assert!(bit_offset(b"4294967296", 0, limit).is_err());
        assert!(bit_offset(b"-1", 0, limit).is_err());
        assert!(bit_offset(b"#3", 0, limit).is_err());
        assert_eq!(bit_offset(b"#3", 8, limit).ok(), Some(24));
        assert!(bit_offset(b"#", 8, limit).is_err());
        // Redis's unchecked multiplication wraps: 2^61+1 fields of 8 bits is bit 8.
        assert_eq!(bit_offset(b"#2305843009213693953", 8, limit).ok(), Some(8));
    }

    #[test]
    fn field_types_are_redis_s() {
        assert_eq!(
            field_type(b"i64").ok(),
            Some(FieldType {
                signed: true,
                bits: 64
            })
        );
        assert!(field_type(b"u63").is_ok());
        for bad in [&b"u64"[..], b"i0", b"I8", b"i", b"", b"u-1", b"i65"] {
            assert!(field_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bit_ranges_mask_the_edge_bytes() {
        let r = Range::resolve(2, 3, 12, true);
        assert_eq!(
            (r.start, r.end, r.first_mask, r.last_mask),
            (0, 1, 0xe0, 0x07)
        );
        let r = Range::resolve(2, -1, -1, false);
        assert_eq!((r.start, r.end), (1, 1));
        let r = Range::resolve(0, 0, -1, false);
        assert!(r.start > r.end);
    }
}
