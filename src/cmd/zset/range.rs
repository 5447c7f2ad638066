//! Range commands: ZRANGE in all its forms (and the older ZREVRANGE, Z[REV]RANGEBYSCORE,
//! Z[REV]RANGEBYLEX), ZRANGESTORE, ZCOUNT, ZLEXCOUNT and ZREMRANGEBY{RANK,SCORE,LEX}, as
//! Redis's `zrangeGenericCommand` parses them. A score or lex range becomes a pair of ranks
//! (two `partition_point` searches, O(log n) on a big set), so LIMIT's offset costs nothing.

use bytes::Bytes;

use super::{is_c_space, members_reply, read, resp3};
use crate::cmd::args::{int, is};
use crate::cmd::{CommandError, Ctx};
use crate::protocol::Reply;
use crate::store::{Entry, Value, ZSet};

/// A score interval (`zrangespec`).
#[derive(Debug, Clone, Copy)]
pub(super) struct ScoreRange {
    min: f64,
    minex: bool,
    max: f64,
    maxex: bool,
}

/// One end of a lex interval (`zlexrangespec`).
#[derive(Debug, Clone)]
enum Lex {
    /// `-`: below every member.
    Least,
    /// `+`: above every member.
    Most,
    /// `[member` (inclusive) or `(member` (exclusive).
    Member(Bytes, bool),
}

/// A lex interval.
#[derive(Debug, Clone)]
pub(super) struct LexRange {
    min: Lex,
    max: Lex,
}

/// What a range selects.
#[derive(Debug, Clone)]
enum Select {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// A parsed range query.
#[derive(Debug, Clone)]
struct Query {
    select: Select,
    rev: bool,
    offset: i64,
    limit: i64,
}

impl ScoreRange {
    /// Parses `min max` as `zslParseRange` does.
    ///
    /// # Errors
    /// `ERR min or max is not a float`.
    pub(super) fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, CommandError> {
        let err = || CommandError::Other("ERR min or max is not a float".into());
        let (min, minex) = bound(min).ok_or_else(err)?;
        let (max, maxex) = bound(max).ok_or_else(err)?;
        Ok(ScoreRange {
            min,
            minex,
            max,
            maxex,
        })
    }

    fn below_min(&self, s: f64) -> bool {
        s < self.min || (self.minex && s <= self.min)
    }

    fn within_max(&self, s: f64) -> bool {
        s < self.max || (!self.maxex && s <= self.max)
    }

    /// The ranks `start..end` of the members in range.
    pub(super) fn ranks(&self, z: &ZSet) -> (usize, usize) {
        let start = z.partition_point(|_, s| self.below_min(s));
        let end = z.partition_point(|_, s| self.within_max(s));
        (start, end.max(start))
    }
}

/// One end of a score range: `(` for exclusive, then what C's `strtod` takes whole (an empty
/// text is 0, as in Redis); NaN refused.
fn bound(arg: &[u8]) -> Option<(f64, bool)> {
    let (ex, rest) = match arg.split_first() {
        Some((b'(', rest)) => (true, rest),
        _ => (false, arg),
    };
    if rest.is_empty() {
        return Some((0.0, ex));
    }
    let text = std::str::from_utf8(rest).ok()?;
    let v = text
        .trim_start_matches(is_c_space)
        .parse::<f64>()
        .ok()
        .filter(|v| !v.is_nan())?;
    Some((v, ex))
}

impl LexRange {
    /// Parses `min max` as `zslParseLexRange` does.
    ///
    /// # Errors
    /// `ERR min or max not valid string range item`.
    pub(super) fn parse(min: &[u8], max: &[u8]) -> Result<LexRange, CommandError> {
        let err = || CommandError::Other("ERR min or max not valid string range item".into());
        Ok(LexRange {
            min: lex_item(min).ok_or_else(err)?,
            max: lex_item(max).ok_or_else(err)?,
        })
    }

    fn below_min(&self, m: &[u8]) -> bool {
        match &self.min {
            Lex::Least => false,
            Lex::Most => true,
            Lex::Member(b, ex) => m < &b[..] || (*ex && m == &b[..]),
        }
    }

    fn within_max(&self, m: &[u8]) -> bool {
        match &self.max {
            Lex::Least => false,
            Lex::Most => true,
            Lex::Member(b, ex) => m < &b[..] || (!*ex && m == &b[..]),
        }
    }

    /// The ranks `start..end` of the members in range.
    pub(super) fn ranks(&self, z: &ZSet) -> (usize, usize) {
        let start = z.partition_point(|m, _| self.below_min(m));
        let end = z.partition_point(|m, _| self.within_max(m));
        (start, end.max(start))
    }
}

fn lex_item(arg: &[u8]) -> Option<Lex> {
    match arg.split_first()? {
        (b'+', []) => Some(Lex::Most),
        (b'-', []) => Some(Lex::Least),
        (b'(', rest) => Some(Lex::Member(Bytes::copy_from_slice(rest), true)),
        (b'[', rest) => Some(Lex::Member(Bytes::copy_from_slice(rest), false)),
        _ => None,
    }
}

/// Normalises Redis rank indexes `start..=end` (negative from the end) against `len`:
/// the 0-based ranks `start..end`, or `None` for an empty range.
fn rank_span(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { len + end } else { end };
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, (end.min(len - 1) + 1) as usize))
}

impl Query {
    /// The selected members, in reply order.
    fn run(&self, z: &ZSet) -> Vec<(Bytes, f64)> {
        let len = z.len();
        let (start, end, rev) = match &self.select {
            Select::Rank(s, e) => match rank_span(*s, *e, len) {
                // A reverse rank range counts from the top.
                Some((s, e)) if self.rev => (len - e, len - s, true),
                Some((s, e)) => (s, e, false),
                None => return Vec::new(),
            },
            Select::Score(_) | Select::Lex(_) if self.offset < 0 => return Vec::new(),
            other => {
                let (start, end) = match other {
                    Select::Score(r) => r.ranks(z),
                    Select::Lex(r) => r.ranks(z),
                    Select::Rank(..) => (0, 0),
                };
                let offset = usize::try_from(self.offset).unwrap_or(usize::MAX);
                let room = end - start;
                if offset >= room {
                    return Vec::new();
                }
                let take =
                    usize::try_from(self.limit).map_or(room - offset, |l| l.min(room - offset));
                if self.rev {
                    (end - offset - take, end - offset, true)
                } else {
                    (start + offset, start + offset + take, false)
                }
            }
        };
        let mut out = Vec::with_capacity(end.saturating_sub(start));
        z.range(start, end, rev, |m, s| {
            out.push((Bytes::copy_from_slice(m), s))
        });
        out
    }
}

/// Which form of ZRANGE a command is.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// ZRANGE / ZRANGESTORE: options decide.
    Auto,
    Rank,
    Score,
    Lex,
}

/// Redis's `zrangeGenericCommand` parsing: the key is `args[at]`, the range follows, then
/// options. Returns the query and WITHSCORES.
fn parse(
    args: &[Bytes],
    at: usize,
    store: bool,
    mut form: Form,
    mut rev: Option<bool>,
) -> Result<(Query, bool), CommandError> {
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = at + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if !store && is(a, "WITHSCORES") {
            withscores = true;
        } else if is(a, "LIMIT") && left >= 2 {
            offset = int(&args[j + 1])?;
            limit = int(&args[j + 2])?;
            j += 2;
        } else if rev.is_none() && is(a, "REV") {
            rev = Some(true);
        } else if form == Form::Auto && is(a, "BYLEX") {
            form = Form::Lex;
        } else if form == Form::Auto && is(a, "BYSCORE") {
            form = Form::Score;
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if form == Form::Auto {
        form = Form::Rank;
    }
    if limit != -1 && form == Form::Rank {
        return Err(CommandError::Other(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
                .into(),
        ));
    }
    if withscores && form == Form::Lex {
        return Err(CommandError::Other(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX".into(),
        ));
    }
    let (mut min, mut max) = (&args[at + 1], &args[at + 2]);
    if rev && form != Form::Rank {
        // Reverse score and lex ranges are given as max, min.
        std::mem::swap(&mut min, &mut max);
    }
    let select = match form {
        Form::Score => Select::Score(ScoreRange::parse(min, max)?),
        Form::Lex => Select::Lex(LexRange::parse(min, max)?),
        _ => Select::Rank(int(min)?, int(max)?),
    };
    let query = Query {
        select,
        rev,
        offset,
        limit,
    };
    Ok((query, withscores))
}

/// A read range command.
fn range_reply(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    form: Form,
    rev: Option<bool>,
) -> Result<Reply, CommandError> {
    let (query, withscores) = parse(args, 1, false, form, rev)?;
    let resp3 = resp3(ctx);
    read(ctx, &args[1], |z| match z {
        None => Reply::Array(Vec::new()),
        Some(z) => members_reply(query.run(z), withscores, resp3),
    })
}

pub(super) fn zrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    range_reply(ctx, args, Form::Auto, None)
}

pub(super) fn zrevrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    range_reply(ctx, args, Form::Rank, Some(true))
}

pub(super) fn zrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    range_reply(ctx, args, Form::Score, Some(false))
}

pub(super) fn zrevrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    range_reply(ctx, args, Form::Score, Some(true))
}

pub(super) fn zrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    range_reply(ctx, args, Form::Lex, Some(false))
}

pub(super) fn zrevrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    range_reply(ctx, args, Form::Lex, Some(true))
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count].
pub(super) fn zrangestore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let (query, _) = parse(args, 2, true, Form::Auto, None)?;
    let (dst, src) = (&args[1], &args[2]);
    let items = {
        let mut w = ctx.write(src)?;
        let value = w.peek(src);
        let found = value.is_some();
        let items = match value {
            None => Vec::new(),
            Some(v) => query.run(v.as_zset()?),
        };
        ctx.node.stats.record_lookup(found);
        items
    };
    store(ctx, dst, items)
}

/// Stores `items` as a new sorted set under `dst` (replacing any value and TTL; an empty
/// result deletes `dst`), built afresh so that it takes the encoding Redis gives a new set.
/// Replies with its size.
///
/// # Errors
/// None in practice (the database exists).
pub(super) fn store(
    ctx: &mut Ctx<'_>,
    dst: &Bytes,
    items: Vec<(Bytes, f64)>,
) -> Result<Reply, CommandError> {
    let mut w = ctx.write(dst)?;
    if items.is_empty() {
        w.remove(dst);
        return Ok(Reply::Int(0));
    }
    let mut z = ZSet::new();
    for (m, s) in &items {
        z.insert(m, *s);
    }
    let n = z.len() as i64;
    w.insert(
        dst,
        Entry {
            value: Value::ZSet(z),
            deadline: None,
        },
    );
    Ok(Reply::Int(n))
}

pub(super) fn zcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let range = ScoreRange::parse(&args[2], &args[3])?;
    read(ctx, &args[1], |z| {
        let (start, end) = z.map_or((0, 0), |z| range.ranks(z));
        Reply::Int((end - start) as i64)
    })
}

pub(super) fn zlexcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let range = LexRange::parse(&args[2], &args[3])?;
    read(ctx, &args[1], |z| {
        let (start, end) = z.map_or((0, 0), |z| range.ranks(z));
        Reply::Int((end - start) as i64)
    })
}

pub(super) fn zremrangebyrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let (start, end) = (int(&args[2])?, int(&args[3])?);
    remove_ranks(ctx, &args[1], |z| {
        rank_span(start, end, z.len()).unwrap_or((0, 0))
    })
}

pub(super) fn zremrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let range = ScoreRange::parse(&args[2], &args[3])?;
    remove_ranks(ctx, &args[1], |z| range.ranks(z))
}

pub(super) fn zremrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let range = LexRange::parse(&args[2], &args[3])?;
    remove_ranks(ctx, &args[1], |z| range.ranks(z))
}

/// Removes the ranks `span` picks from `key`; replies how many.
fn remove_ranks(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    span: impl FnOnce(&ZSet) -> (usize, usize),
) -> Result<Reply, CommandError> {
    let removed = ctx.write(key)?.update_zset(key, false, |z| {
        let (start, end) = span(z);
        let n = z.remove_ranks(start, end);
        (n as i64, n > 0)
    })?;
    Ok(Reply::Int(removed.unwrap_or(0)))
}
