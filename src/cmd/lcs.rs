//! LCS: the longest common subsequence of two strings (Redis's `lcsCommand` in `t_string.c`).
//!
//! ```text
//! LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
//!     -> the subsequence | its length (LEN)
//!      | {matches: [[[a_start, a_end], [b_start, b_end] (, len)], ...], len: n} (IDX)
//! ```
//! Missing keys are empty strings. The answer is Redis's exactly, including which of several
//! equally long subsequences it picks and the order of the IDX ranges (last match first):
//! the same O(n·m) table of `u32` and the same walk back through it. Like Redis, the table may
//! not be larger than `proto-max-bulk-len` bytes (512 MB: two strings of about 11,500 bytes
//! each); longer inputs are refused before anything is allocated.

use bytes::Bytes;

use super::args::{int, is};
use super::{CommandError, Ctx};
use crate::protocol::Reply;

pub(super) fn lcs(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let db = ctx.db();
    let mut strings = [Bytes::new(), Bytes::new()];
    for (slot, key) in strings.iter_mut().zip(&args[1..3]) {
        let value = db.shard(key).value(key, ctx.now);
        ctx.node.stats.record_lookup(value.is_some());
        if let Some(value) = value {
            *slot = value.into_string().map_err(|_| {
                CommandError::Other("ERR The specified keys must contain string values".into())
            })?;
        }
    }
    let (mut want_len, mut want_idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j];
        if is(opt, "IDX") {
            want_idx = true;
        } else if is(opt, "LEN") {
            want_len = true;
        } else if is(opt, "WITHMATCHLEN") {
            with_len = true;
        } else if is(opt, "MINMATCHLEN") && j + 1 < args.len() {
            min_len = int(&args[j + 1])?.max(0);
            j += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    if want_len && want_idx {
        return Err(CommandError::Other(
            "ERR If you want both the length and indexes, please just use IDX.".into(),
        ));
    }
    let [a, b] = &strings;
    if a.len() >= u32::MAX as usize - 1 || b.len() >= u32::MAX as usize - 1 {
        return Err(CommandError::Other("ERR String too long for LCS".into()));
    }
    let table = Table::build(a, b, ctx.node.config.resp_limits.max_bulk_len)?;
    let total = table.at(a.len(), b.len());
    if want_len {
        return Ok(Reply::Int(i64::from(total)));
    }
    let walk = table.walk(a, b, want_idx, min_len, with_len);
    if !want_idx {
        return Ok(Reply::Bulk(Bytes::from(walk.sequence)));
    }
    Ok(Reply::Map(vec![
        (Reply::text("matches"), Reply::Array(walk.matches)),
        (Reply::text("len"), Reply::Int(i64::from(total))),
    ]))
}

/// `lcs[i][j]`: the length of the LCS of `a[..i]` and `b[..j]`, row by row.
struct Table {
    cells: Vec<u32>,
    width: usize,
}

/// What walking the table back yields.
struct Walk {
    /// The subsequence itself.
    sequence: Vec<u8>,
    /// IDX's ranges, as Redis emits them (from the ends of the strings backwards).
    matches: Vec<Reply>,
}

impl Table {
    /// Fills the table for `a` and `b`, refusing one larger than `limit` bytes as Redis does.
    fn build(a: &[u8], b: &[u8], limit: usize) -> Result<Table, CommandError> {
        let width = b.len() + 1;
        let size = (a.len() + 1)
            .checked_mul(width)
            .filter(|cells| cells.checked_mul(4).is_some_and(|bytes| bytes <= limit));
        let Some(size) = size else {
            return Err(CommandError::Other(
                "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
                    .into(),
            ));
        };
        let mut cells = Vec::new();
        if cells.try_reserve_exact(size).is_err() {
            return Err(CommandError::Other(
                "ERR Insufficient memory, failed allocating transient memory for LCS".into(),
            ));
        }
        cells.resize(size, 0u32);
        for i in 1..=a.len() {
            // Rows i-1 and i, split so both can be borrowed at once.
            let (done, rest) = cells.split_at_mut(i * width);
            let above = &done[(i - 1) * width..];
            let row = &mut rest[..width];
            for j in 1..width {
                row[j] = if a[i - 1] == b[j - 1] {
                    above[j - 1] + 1
                } else {
                    above[j].max(row[j - 1])
                };
            }
        }
        Ok(Table { cells, width })
    }

    fn at(&self, i: usize, j: usize) -> u32 {
        self.cells[i * self.width + j]
    }

    /// Walks back from the bottom-right corner as Redis does, collecting the subsequence and,
    /// with `ranges`, the matching ranges at least `min_len` long.
    fn walk(&self, a: &[u8], b: &[u8], ranges: bool, min_len: i64, with_len: bool) -> Walk {
        let mut sequence = vec![0u8; self.at(a.len(), b.len()) as usize];
        let mut idx = sequence.len();
        let mut matches = Vec::new();
        // The range being extended, (a_start, a_end, b_start, b_end); None between ranges.
        let mut current: Option<(usize, usize, usize, usize)> = None;
        let (mut i, mut j) = (a.len(), b.len());
        while i > 0 && j > 0 {
            let mut emit = false;
            if a[i - 1] == b[j - 1] {
                sequence[idx - 1] = a[i - 1];
                match &mut current {
                    None => current = Some((i - 1, i - 1, j - 1, j - 1)),
                    // Contiguous with the range: extend it backwards.
                    Some((a_start, _, b_start, _)) if *a_start == i && *b_start == j => {
                        *a_start -= 1;
                        *b_start -= 1;
                    }
                    Some(_) => emit = true,
                }
                // A range that reached the start of either string is complete.
                if current.is_some_and(|(a0, _, b0, _)| a0 == 0 || b0 == 0) {
                    emit = true;
                }
                idx -= 1;
                i -= 1;
                j -= 1;
            } else {
                if self.at(i - 1, j) > self.at(i, j - 1) {
                    i -= 1;
                } else {
                    j -= 1;
                }
                emit = current.is_some();
            }
            if emit {
                if let Some((a0, a1, b0, b1)) = current.take() {
                    let len = a1 - a0 + 1;
                    if ranges && (min_len == 0 || len as i64 >= min_len) {
                        let pair = |x: usize, y: usize| {
                            Reply::Array(vec![Reply::Int(x as i64), Reply::Int(y as i64)])
                        };
                        let mut entry = vec![pair(a0, a1), pair(b0, b1)];
                        if with_len {
                            entry.push(Reply::Int(len as i64));
                        }
                        matches.push(Reply::Array(entry));
                    }
                }
            }
        }
        Walk { sequence, matches }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(a: &[u8], b: &[u8], min_len: i64) -> Vec<Reply> {
        Table::build(a, b, 1 << 20)
            .map(|t| t.walk(a, b, true, min_len, false).matches)
            .unwrap_or_default()
    }

    #[test]
    fn lcs_matches_redis_s_documented_example() {
        let (a, b) = (b"ohmytext", b"mynewtext");
        let table = Table::build(a, b, 1 << 20).ok();
        let walk = table.as_ref().map(|t| t.walk(a, b, false, 0, false));
        assert_eq!(walk.map(|w| w.sequence), Some(b"mytext".to_vec()));
        let int_pair = |x, y| Reply::Array(vec![Reply::Int(x), Reply::Int(y)]);
        assert_eq!(
            ranges(a, b, 0),
            vec![
                Reply::Array(vec![int_pair(4, 7), int_pair(5, 8)]),
                Reply::Array(vec![int_pair(2, 3), int_pair(0, 1)]),
            ]
        );
        assert_eq!(ranges(a, b, 4).len(), 1);
    }

    #[test]
    fn oversized_tables_are_refused_before_allocating() {
        let a = vec![b'a'; 1000];
        assert!(Table::build(&a, &a, 1000 * 1000).is_err());
        assert!(Table::build(&a, &a, 1001 * 1001 * 4).is_ok());
    }
}
