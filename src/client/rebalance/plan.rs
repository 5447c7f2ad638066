//! The pure half of slot moves: from who owns which slots, the list of `CLUSTER MOVESLOTS`
//! calls that balances the shards ([`plan_rebalance`]) or empties one of them
//! ([`plan_removal`]). No sockets, no clock: the driver in `mod.rs` runs the plan.
//!
//! Both plans move as few slots as possible: only shards above their target give, only
//! shards below it receive, and a giver hands out its longest runs of consecutive slots
//! first, so that each call names few ranges.

use std::collections::BTreeMap;

use super::RebalanceError;

/// A shard id: the 1-based `shard-index` of `CLUSTER SHARDS`.
pub type ShardId = u64;

/// Who owns which slots: each shard's inclusive `(start, end)` ranges. A shard owning
/// nothing is listed with no ranges (it is a shard all the same, and a rebalance fills it).
pub type Ownership = BTreeMap<ShardId, Vec<(u16, u16)>>;

/// One `CLUSTER MOVESLOTS from to start-end ...` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The shard giving the slots.
    pub from: ShardId,
    /// The shard receiving them.
    pub to: ShardId,
    /// The slots, as inclusive ranges in ascending order, none adjacent to the next.
    pub ranges: Vec<(u16, u16)>,
}

impl Move {
    /// The number of slots moved.
    pub fn slots(&self) -> usize {
        count(&self.ranges)
    }
}

/// The moves after which every shard of `owners` owns the floor or the ceiling of the
/// average (12288 / shards when all slots are listed), each move at most `batch` slots
/// (0 counts as 1). Empty when the shards are balanced already.
///
/// The shards that end with one slot more than the others are the ones that have the most
/// now, so that no slot moves that need not; the moves go from the most loaded shard to the
/// least loaded one.
pub fn plan_rebalance(owners: &Ownership, batch: usize) -> Vec<Move> {
    let counts = counts(owners);
    if counts.is_empty() {
        return Vec::new();
    }
    let (base, extra) = (total(&counts) / counts.len(), total(&counts) % counts.len());
    // The `extra` shards holding the most (ties: the lower id) keep one slot above `base`.
    let mut by_load: Vec<(ShardId, usize)> = counts.clone();
    by_load.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let target = |id: ShardId| {
        let rank = by_load
            .iter()
            .position(|(s, _)| *s == id)
            .unwrap_or(usize::MAX);
        base + usize::from(rank < extra)
    };
    let mut givers = Vec::new();
    let mut takers = Vec::new();
    for &(id, n) in &counts {
        let want = target(id);
        if n > want {
            givers.push((id, n - want));
        } else if n < want {
            takers.push((id, want - n));
        }
    }
    let transfers = pair(givers, takers);
    batches(owners, &transfers, batch)
}

/// The moves that empty shard `removed`, its slots going to the other shards so that they
/// end as even as possible: each slot to the shard that has the fewest at that point (ties:
/// the lower id). Others that were balanced (within one slot) each receive the same number,
/// give or take one; one already above the others' final level receives nothing. Planning
/// again half-way (after a retry) leads to the same end. Empty when the shard owns nothing.
///
/// # Errors
/// [`RebalanceError::UnknownShard`] when `owners` has no shard `removed`,
/// [`RebalanceError::LastShard`] when it is the only one.
pub fn plan_removal(
    owners: &Ownership,
    removed: ShardId,
    batch: usize,
) -> Result<Vec<Move>, RebalanceError> {
    let Some(ranges) = owners.get(&removed) else {
        return Err(RebalanceError::UnknownShard {
            id: removed,
            known: owners.keys().copied().collect(),
        });
    };
    let others: Vec<(ShardId, usize)> = counts(owners)
        .into_iter()
        .filter(|(id, _)| *id != removed)
        .collect();
    if others.is_empty() {
        return Err(RebalanceError::LastShard(removed));
    }
    // Water filling, one slot at a time: at most 12288 rounds over the shards.
    let mut gains = vec![0; others.len()];
    for _ in 0..count(ranges) {
        let least = (0..others.len())
            .min_by_key(|&i| (others[i].1 + gains[i], others[i].0))
            .unwrap_or(0);
        gains[least] += 1;
    }
    // The least loaded receive first.
    let mut transfers: Vec<(ShardId, ShardId, usize)> = others
        .iter()
        .zip(gains)
        .filter(|(_, gain)| *gain > 0)
        .map(|((id, _), gain)| (removed, *id, gain))
        .collect();
    transfers.sort_by_key(|&(_, id, _)| (owners.get(&id).map_or(0, |r| count(r)), id));
    Ok(batches(owners, &transfers, batch))
}

/// Gives `mv`'s slots to `mv.to` in `owners` (the ones `mv.from` does not own are taken from
/// whichever shard owns them), as the cluster does once the call succeeds.
pub fn apply(owners: &mut Ownership, mv: &Move) {
    for ranges in owners.values_mut() {
        *ranges = subtract(ranges, &mv.ranges);
    }
    let to = owners.entry(mv.to).or_default();
    to.extend_from_slice(&mv.ranges);
    *to = merge(std::mem::take(to));
}

/// The number of slots in `ranges` (inclusive ranges).
pub fn count(ranges: &[(u16, u16)]) -> usize {
    ranges
        .iter()
        .map(|&(start, end)| usize::from(end.saturating_sub(start)) + 1)
        .sum()
}

/// Each shard's slot count, in id order.
pub fn counts(owners: &Ownership) -> Vec<(ShardId, usize)> {
    owners.iter().map(|(id, r)| (*id, count(r))).collect()
}

/// `(giver, taker, slots)` transfers that settle every surplus against every deficit, the
/// largest remaining surplus against the largest remaining deficit first.
fn pair(
    mut givers: Vec<(ShardId, usize)>,
    mut takers: Vec<(ShardId, usize)>,
) -> Vec<(ShardId, ShardId, usize)> {
    let mut transfers = Vec::new();
    loop {
        let largest = |list: &Vec<(ShardId, usize)>| {
            (0..list.len())
                .filter(|&i| list[i].1 > 0)
                .max_by(|&a, &b| list[a].1.cmp(&list[b].1).then(list[b].0.cmp(&list[a].0)))
        };
        let (Some(g), Some(t)) = (largest(&givers), largest(&takers)) else {
            return transfers;
        };
        let n = givers[g].1.min(takers[t].1);
        givers[g].1 -= n;
        takers[t].1 -= n;
        transfers.push((givers[g].0, takers[t].0, n));
    }
}

/// The transfers as moves of at most `batch` slots, each giver's slots handed out from its
/// longest runs first.
fn batches(owners: &Ownership, transfers: &[(ShardId, ShardId, usize)], batch: usize) -> Vec<Move> {
    let batch = batch.max(1);
    // What each giver has not handed out yet.
    let mut pools: BTreeMap<ShardId, Vec<(u16, u16)>> = BTreeMap::new();
    let mut moves = Vec::new();
    for &(from, to, slots) in transfers {
        let pool = pools
            .entry(from)
            .or_insert_with(|| merge(owners.get(&from).cloned().unwrap_or_default()));
        let mut left = slots;
        while left > 0 {
            let ranges = take(pool, left.min(batch));
            if ranges.is_empty() {
                // Not reached: a transfer never exceeds what its giver owns.
                break;
            }
            left = left.saturating_sub(count(&ranges));
            moves.push(Move { from, to, ranges });
        }
    }
    moves
}

/// Takes `n` slots (fewer if the pool runs out) out of `pool`: whole runs, longest first
/// (ties: the lower start), and a leading part of the run where `n` ends. Returns them as
/// merged ascending ranges.
fn take(pool: &mut Vec<(u16, u16)>, n: usize) -> Vec<(u16, u16)> {
    pool.sort_by(|a, b| (b.1 - b.0).cmp(&(a.1 - a.0)).then(a.0.cmp(&b.0)));
    let mut taken = Vec::new();
    let mut left = n;
    let mut kept = Vec::new();
    for &(start, end) in pool.iter() {
        let len = usize::from(end - start) + 1;
        if left == 0 {
            kept.push((start, end));
        } else if len <= left {
            taken.push((start, end));
            left -= len;
        } else {
            // left < len <= SLOTS, so the sum stays a u16 within the range.
            let split = start + left as u16;
            taken.push((start, split - 1));
            kept.push((split, end));
            left = 0;
        }
    }
    *pool = kept;
    merge(taken)
}

/// Sorts `ranges` and joins the overlapping and adjacent ones.
fn merge(mut ranges: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if u32::from(start) <= u32::from(last.1) + 1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// `ranges` without the slots of `remove`, merged: one sweep over both lists, sorted.
fn subtract(ranges: &[(u16, u16)], remove: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let remove = merge(remove.to_vec());
    let mut out = Vec::new();
    let mut next = 0;
    for (start, end) in merge(ranges.to_vec()) {
        // Removals ending before this range cannot touch the ranges after it either.
        while next < remove.len() && remove[next].1 < start {
            next += 1;
        }
        // `from` is where the part still to keep begins; u32 so that end + 1 cannot overflow.
        let mut from = u32::from(start);
        for &(rs, re) in remove[next..].iter().take_while(|r| r.0 <= end) {
            if u32::from(rs) > from {
                out.push((from as u16, rs - 1));
            }
            from = from.max(u32::from(re) + 1);
        }
        if from <= u32::from(end) {
            out.push((from as u16, end));
        }
    }
    out
}

fn total(counts: &[(ShardId, usize)]) -> usize {
    counts.iter().map(|(_, n)| n).sum()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::client::router::SLOTS;

    /// The initial layout of a cluster of `n` nodes: slot `s` in shard `(s mod n) + 1`.
    fn initial(n: u64) -> Ownership {
        let mut owners = Ownership::new();
        for slot in 0..SLOTS {
            let id = u64::from(slot) % n + 1;
            owners.entry(id).or_default().push((slot, slot));
        }
        owners
    }

    /// Applies `moves` in order, checking that each slot moved belongs to the giver then.
    fn run(owners: &Ownership, moves: &[Move], batch: usize) -> Ownership {
        let mut owners = owners.clone();
        for mv in moves {
            assert!(mv.slots() <= batch.max(1), "{mv:?} exceeds the batch");
            assert!(mv.slots() > 0);
            let from = merge(owners[&mv.from].clone());
            assert_eq!(subtract(&mv.ranges, &from), [], "{mv:?}: not all owned");
            apply(&mut owners, mv);
        }
        owners
    }

    fn sizes(owners: &Ownership) -> Vec<usize> {
        counts(owners).into_iter().map(|(_, n)| n).collect()
    }

    /// The fewest slots any balancing can move: each shard's surplus over the ceiling, plus
    /// the surplus over the floor of the shards that cannot all keep the ceiling.
    fn least_moves(owners: &Ownership) -> usize {
        let mut sizes = sizes(owners);
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        let (base, extra) = (
            total_of(&sizes) / sizes.len(),
            total_of(&sizes) % sizes.len(),
        );
        sizes
            .iter()
            .enumerate()
            .map(|(rank, n)| n.saturating_sub(base + usize::from(rank < extra)))
            .sum()
    }

    fn total_of(sizes: &[usize]) -> usize {
        sizes.iter().sum()
    }

    #[test]
    fn three_shards_to_four_end_with_3072_each() {
        let mut owners = initial(3);
        owners.insert(4, Vec::new());
        let moves = plan_rebalance(&owners, 256);
        assert_eq!(moves.iter().map(Move::slots).sum::<usize>(), 3072);
        assert_eq!(moves.len(), 12, "1024 from each giver, 4 calls each");
        assert!(moves.iter().all(|m| m.to == 4 && m.from != 4));
        let after = run(&owners, &moves, 256);
        assert_eq!(sizes(&after), [3072; 4]);
        assert_eq!(plan_rebalance(&after, 256), [], "balanced now");
    }

    #[test]
    fn four_shards_to_five_move_only_the_surplus() {
        let mut owners = initial(4);
        owners.insert(5, Vec::new());
        let moves = plan_rebalance(&owners, 100);
        let after = run(&owners, &moves, 100);
        // 12288 = 5 * 2457 + 3: three shards keep 2458.
        let mut ends = sizes(&after);
        ends.sort_unstable();
        assert_eq!(ends, [2457, 2457, 2458, 2458, 2458]);
        assert!(
            after[&5].len() <= 2,
            "shard 5 received few ranges: {:?}",
            after[&5]
        );
        assert_eq!(moves.iter().map(Move::slots).sum::<usize>(), 2457);
        assert_eq!(least_moves(&owners), 2457);
    }

    #[test]
    fn contiguous_runs_travel_as_one_range() {
        // Shard 1 owns 0-8191 in one run, shard 2 the rest: 2048 slots to give in 8 calls,
        // each a single range.
        let owners = Ownership::from([(1, vec![(0, 8191)]), (2, vec![(8192, 12287)])]);
        let moves = plan_rebalance(&owners, 256);
        assert_eq!(moves.len(), 8);
        assert!(moves.iter().all(|m| m.ranges.len() == 1 && m.from == 1));
        assert_eq!(moves[0].ranges, [(0, 255)]);
        assert_eq!(sizes(&run(&owners, &moves, 256)), [6144, 6144]);
    }

    #[test]
    fn removing_shards_from_five_down_to_three() {
        let owners = initial(5);
        let moves = plan_removal(&owners, 5, 256).expect("shard 5 exists");
        assert!(moves.iter().all(|m| m.from == 5));
        let mut after = run(&owners, &moves, 256);
        assert_eq!(after[&5], []);
        after.remove(&5);
        // 2457 slots shared by 4: each gets 614 or 615, the least loaded the extra.
        let mut ends = sizes(&after);
        ends.sort_unstable();
        assert_eq!(ends, [3072; 4]);
        let moves = plan_removal(&after, 2, 256).expect("shard 2 exists");
        let mut after = run(&after, &moves, 256);
        after.remove(&2);
        assert_eq!(sizes(&after), [4096; 3]);
        assert_eq!(after.keys().copied().collect::<Vec<_>>(), [1, 3, 4]);
    }

    #[test]
    fn removal_fills_the_least_loaded_shards_first() {
        // 7 is above the others' final level (3500): it receives nothing.
        let owners = Ownership::from([
            (1, vec![(0, 2999)]),
            (2, vec![(3000, 3999)]),
            (7, vec![(4000, 9287)]),
            (9, vec![(9288, 12287)]),
        ]);
        let moves = plan_removal(&owners, 9, 400).expect("shard 9 exists");
        let after = run(&owners, &moves, 400);
        assert_eq!(sizes(&after), [3500, 3500, 5288, 0]);
        // Planning again half-way leads to the same end.
        let half = run(&owners, &moves[..moves.len() / 2], 400);
        let rest = plan_removal(&half, 9, 400).expect("shard 9 exists");
        assert_eq!(sizes(&run(&half, &rest, 400)), [3500, 3500, 5288, 0]);
    }

    #[test]
    fn balanced_shards_plan_no_moves() {
        assert_eq!(plan_rebalance(&initial(4), 256), []);
        assert_eq!(plan_rebalance(&initial(5), 1), []);
        assert_eq!(plan_rebalance(&Ownership::new(), 256), []);
        let empty = Ownership::from([(1, vec![(0, 12287)]), (2, vec![])]);
        assert_eq!(plan_removal(&empty, 2, 256).expect("known"), []);
    }

    #[test]
    fn removal_of_an_unknown_or_the_last_shard_is_refused() {
        let owners = initial(3);
        assert!(matches!(
            plan_removal(&owners, 4, 256),
            Err(RebalanceError::UnknownShard { id: 4, ref known }) if known == &[1, 2, 3]
        ));
        let one = Ownership::from([(2, vec![(0, 12287)])]);
        assert!(matches!(
            plan_removal(&one, 2, 256),
            Err(RebalanceError::LastShard(2))
        ));
    }

    #[test]
    fn apply_moves_slots_and_keeps_ranges_merged() {
        let mut owners = Ownership::from([(1, vec![(0, 9)]), (2, vec![(10, 19)])]);
        apply(
            &mut owners,
            &Move {
                from: 1,
                to: 2,
                ranges: vec![(5, 9)],
            },
        );
        assert_eq!(owners[&1], [(0, 4)]);
        assert_eq!(owners[&2], [(5, 19)]);
    }

    /// Random ownership: `cuts` split the slots into runs, run `i` going to shard
    /// `ids[picks[i] % ids.len()]`; shards may own nothing and ids may have gaps.
    fn layout(ids: &[ShardId], cuts: &[u16], picks: &[usize]) -> Ownership {
        let mut bounds: Vec<u16> = cuts.iter().map(|c| c % SLOTS).collect();
        bounds.push(0);
        bounds.sort_unstable();
        bounds.dedup();
        let mut owners: Ownership = ids.iter().map(|id| (*id, Vec::new())).collect();
        for (i, start) in bounds.iter().enumerate() {
            let end = bounds.get(i + 1).map_or(SLOTS - 1, |next| next - 1);
            let id = ids[picks[i % picks.len()] % ids.len()];
            owners.entry(id).or_default().push((*start, end));
        }
        owners
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn every_shard_ends_within_one_slot_of_the_others(
            ids in prop::collection::btree_set(1u64..40, 1..9),
            cuts in prop::collection::vec(any::<u16>(), 0..300),
            picks in prop::collection::vec(any::<usize>(), 1..20),
            batch in 1usize..700,
        ) {
            let ids: Vec<ShardId> = ids.into_iter().collect();
            let owners = layout(&ids, &cuts, &picks);
            let moves = plan_rebalance(&owners, batch);
            let after = run(&owners, &moves, batch);
            let ends = sizes(&after);
            let (min, max) = (ends.iter().min(), ends.iter().max());
            prop_assert!(max.zip(min).is_some_and(|(max, min)| max - min <= 1), "{ends:?}");
            prop_assert_eq!(total_of(&ends), usize::from(SLOTS));
            prop_assert_eq!(moves.iter().map(Move::slots).sum::<usize>(), least_moves(&owners));
            // A shard gives or receives, never both.
            for mv in &moves {
                prop_assert!(!moves.iter().any(|other| other.to == mv.from));
            }
            prop_assert_eq!(plan_rebalance(&after, batch), vec![]);
        }

        #[test]
        fn removal_empties_the_shard_and_evens_out_the_others(
            ids in prop::collection::btree_set(1u64..40, 2..9),
            cuts in prop::collection::vec(any::<u16>(), 0..300),
            picks in prop::collection::vec(any::<usize>(), 1..20),
            pick in any::<prop::sample::Index>(),
            batch in 1usize..700,
        ) {
            let ids: Vec<ShardId> = ids.into_iter().collect();
            let owners = layout(&ids, &cuts, &picks);
            let removed = ids[pick.index(ids.len())];
            let moves = plan_removal(&owners, removed, batch).expect("a known shard");
            let after = run(&owners, &moves, batch);
            prop_assert_eq!(&after[&removed], &Vec::<(u16, u16)>::new());
            let others: Vec<ShardId> = ids.iter().copied().filter(|id| *id != removed).collect();
            let least = others.iter().map(|id| count(&after[id])).min().unwrap_or(0);
            // No receiver ends more than one slot above the least loaded shard.
            for id in &others {
                if count(&after[id]) > count(&owners[id]) {
                    prop_assert!(count(&after[id]) <= least + 1, "shard {id}");
                }
            }
            prop_assert!(moves.iter().all(|m| m.from == removed));
            // Balanced others each receive the same share, give or take one.
            let before: Vec<usize> = others.iter().map(|id| count(&owners[id])).collect();
            if before.iter().max().zip(before.iter().min()).is_some_and(|(a, b)| a - b <= 1) {
                let gained: Vec<usize> = others
                    .iter()
                    .map(|id| count(&after[id]) - count(&owners[id]))
                    .collect();
                let (min, max) = (gained.iter().min(), gained.iter().max());
                prop_assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{gained:?}");
            }
        }
    }
}
