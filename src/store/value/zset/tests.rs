use std::collections::BTreeMap;

use proptest::prelude::*;

use super::skiplist::Skiplist;
use super::*;

#[derive(Debug, Clone)]
enum Op {
    Insert(u16, f64),
    Remove(u16),
    RemoveRanks(usize, usize),
    Pop(bool, usize),
}

fn member(n: u16) -> Vec<u8> {
    // Every 50th member is longer than zset-max-listpack-value: adding it converts.
    if n % 50 == 49 {
        vec![b'L'; 65 + n as usize]
    } else {
        format!("m{n}").into_bytes()
    }
}

fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-5i32..5).prop_map(f64::from),
        1 => Just(0.5),
        1 => Just(-0.0),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(1e300),
        1 => Just(-(2f64.powi(60))),
    ]
}

fn op(members: u16) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..members, score()).prop_map(|(m, s)| Op::Insert(m, s)),
        2 => (0..members).prop_map(Op::Remove),
        1 => (0usize..40, 0usize..40).prop_map(|(a, b)| Op::RemoveRanks(a, b)),
        1 => (any::<bool>(), 0usize..5).prop_map(|(max, n)| Op::Pop(max, n)),
    ]
}

/// The model: a map member -> score, and its members in (score, member) order.
fn sorted(model: &BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
    let mut v: Vec<_> = model.iter().map(|(m, s)| (m.clone(), *s)).collect();
    v.sort_by(|a, b| {
        if before(a.1, &a.0, b.1, &b.0) {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        }
    });
    v
}

fn contents(z: &ZSet) -> Vec<(Vec<u8>, f64)> {
    let mut out = Vec::new();
    z.for_each(|m, s| out.push((m.to_vec(), s)));
    out
}

fn check(z: &ZSet, model: &BTreeMap<Vec<u8>, f64>, probe: u16) -> Result<(), TestCaseError> {
    let want = sorted(model);
    prop_assert_eq!(z.len(), want.len());
    let got = contents(z);
    prop_assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        prop_assert_eq!(&g.0, &w.0);
        // A listpack stores -0 as 0 (as Redis's does): compare with `==`.
        prop_assert!(g.1 == w.1);
    }
    let m = member(probe);
    let rank = want.iter().position(|(x, _)| *x == m);
    prop_assert_eq!(z.rank(&m).map(|r| r.0), rank);
    prop_assert_eq!(z.score(&m), model.get(&m).copied());
    for r in [0, want.len() / 2, want.len().saturating_sub(1), want.len()] {
        prop_assert_eq!(
            z.get(r).map(|(m, s)| (m.to_vec(), s)),
            want.get(r).map(|(m, s)| (m.clone(), *s))
        );
    }
    for bound in [-1.0, 0.0, 0.5, f64::INFINITY] {
        let pp = z.partition_point(|_, s| s < bound);
        prop_assert_eq!(pp, want.iter().filter(|(_, s)| *s < bound).count());
        let pp = z.partition_point(|_, s| s <= bound);
        prop_assert_eq!(pp, want.iter().filter(|(_, s)| *s <= bound).count());
    }
    let (a, b) = (want.len() / 3, want.len() / 3 * 2 + 1);
    let mut rev = Vec::new();
    z.range(a, b, true, |m, _| rev.push(m.to_vec()));
    let expect: Vec<_> = want
        .iter()
        .take(b)
        .skip(a)
        .rev()
        .map(|(m, _)| m.clone())
        .collect();
    prop_assert_eq!(rev, expect);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every operation agrees with a BTreeMap model, through the listpack -> skiplist
    /// conversion (more than 128 members, or a member longer than 64 bytes).
    #[test]
    fn zset_matches_a_btreemap_model(
        ops in proptest::collection::vec(op(220), 1..400),
        probe in 0u16..220,
    ) {
        let mut z = ZSet::new();
        let mut model: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert(m, s) => {
                    let m = member(m);
                    let new = !model.contains_key(&m);
                    // Redis keeps the old score when the new one compares equal (-0 vs 0).
                    if model.get(&m).is_none_or(|old| *old != s) {
                        model.insert(m.clone(), s);
                    }
                    prop_assert_eq!(z.insert(&m, s), new);
                }
                Op::Remove(m) => {
                    let m = member(m);
                    prop_assert_eq!(z.remove(&m), model.remove(&m).is_some());
                }
                Op::RemoveRanks(a, b) => {
                    let want = sorted(&model);
                    let end = b.min(want.len());
                    let gone = end.saturating_sub(a);
                    for (m, _) in want.iter().take(end).skip(a) {
                        model.remove(m);
                    }
                    prop_assert_eq!(z.remove_ranks(a, b), gone);
                }
                Op::Pop(max, n) => {
                    let mut want = sorted(&model);
                    if max {
                        want.reverse();
                    }
                    want.truncate(n);
                    for (m, _) in &want {
                        model.remove(m);
                    }
                    let got = z.pop(max, n);
                    prop_assert_eq!(got.len(), want.len());
                    for (g, w) in got.iter().zip(&want) {
                        prop_assert_eq!(&g.0, &w.0);
                    }
                }
            }
            check(&z, &model, probe)?;
        }
        let big = model.len() > 128 || model.keys().any(|m| m.len() > 64);
        if big {
            prop_assert_eq!(z.encoding(), "skiplist");
        }
        let copy = z.clone();
        prop_assert!(copy == z);
    }

    /// The skip list alone against the model, with rank, select and lex/score bounds.
    #[test]
    fn skiplist_matches_a_btreemap_model(
        ops in proptest::collection::vec((0u16..300, score(), any::<bool>()), 1..600),
    ) {
        let mut list = Skiplist::new();
        let mut model: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
        for (m, s, add) in ops {
            let m = member(m);
            if add {
                let new = !model.contains_key(&m);
                if model.get(&m).is_none_or(|old| *old != s) {
                    model.insert(m.clone(), s);
                }
                prop_assert_eq!(list.insert(&m, s), new);
            } else {
                prop_assert_eq!(list.remove(&m).map(f64::to_bits), model.remove(&m).map(f64::to_bits));
            }
        }
        let want = sorted(&model);
        prop_assert_eq!(list.len(), want.len());
        for (i, (m, s)) in want.iter().enumerate() {
            prop_assert_eq!(list.rank(m).map(|r| r.0), Some(i));
            prop_assert_eq!(list.get(i).map(|(m, s)| (m.to_vec(), s.to_bits())), Some((m.clone(), s.to_bits())));
            let lex = list.partition_point(|x, y| before(y, x, *s, m));
            prop_assert_eq!(lex, i);
        }
        prop_assert!(list.get(want.len()).is_none());
        let mut all = Vec::new();
        list.range(0, usize::MAX, true, |m, _| all.push(m.to_vec()));
        all.reverse();
        prop_assert_eq!(all, want.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>());
    }
}

#[test]
fn small_sets_are_listpacks_and_grow_into_skiplists() {
    let mut z = ZSet::new();
    for i in 0..128 {
        z.insert(format!("m{i}").as_bytes(), f64::from(i));
    }
    assert_eq!(z.encoding(), "listpack");
    z.insert(b"one more", 0.0);
    assert_eq!(z.encoding(), "skiplist");
    let mut z = ZSet::new();
    z.insert(&[b'x'; 65], 1.0);
    assert_eq!(z.encoding(), "skiplist");
    assert!(std::mem::size_of::<ZSet>() <= 24);
}

#[test]
fn scan_returns_every_member_once() {
    let mut z = ZSet::new();
    for i in 0..1000 {
        z.insert(format!("m{i}").as_bytes(), f64::from(i % 7));
    }
    let mut seen = std::collections::HashSet::new();
    let mut cursor = 0;
    loop {
        cursor = z.scan(cursor, 10, |m, _| assert!(seen.insert(m.to_vec())));
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 1000);
}
