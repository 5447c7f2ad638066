use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

/// The canonical-integer rule as the rest of the node writes it (`value::is_integer`).
fn canonical(s: &[u8]) -> Option<i64> {
    let n = std::str::from_utf8(s).ok()?.parse::<i64>().ok()?;
    (itoa::Buffer::new().format(n).as_bytes() == s).then_some(n)
}

fn bytes_of(m: Member<'_>) -> Vec<u8> {
    m.to_bytes().to_vec()
}

fn sorted(set: &Set) -> Vec<Vec<u8>> {
    let mut all: Vec<_> = set.iter().map(bytes_of).collect();
    all.sort();
    all
}

#[test]
fn stays_small() {
    assert!(std::mem::size_of::<Set>() <= 24);
}

#[test]
fn parse_int_follows_string2ll() {
    for ok in [
        "0",
        "-1",
        "12",
        "9223372036854775807",
        "-9223372036854775808",
    ] {
        assert_eq!(parse_int(ok.as_bytes()), canonical(ok.as_bytes()), "{ok}");
        assert!(parse_int(ok.as_bytes()).is_some(), "{ok}");
    }
    for bad in [
        "",
        "-",
        "-0",
        "+1",
        "01",
        " 1",
        "1 ",
        "1a",
        "9223372036854775808",
        "00",
        "-9223372036854775809",
        "12345678901234567890",
    ] {
        assert_eq!(parse_int(bad.as_bytes()), None, "{bad:?}");
    }
}

#[test]
fn intset_widens_and_stays_sorted() {
    let mut s = Set::new();
    for m in ["5", "-3", "70000", "-9223372036854775808", "40000", "1"] {
        assert!(s.insert(m.as_bytes()));
    }
    assert!(!s.insert(b"70000"));
    assert_eq!(s.encoding(), "intset");
    let got: Vec<_> = s.iter().collect();
    let want: Vec<_> = [i64::MIN, -3, 1, 5, 40000, 70000]
        .into_iter()
        .map(Member::Int)
        .collect();
    assert_eq!(got, want);
    assert!(s.contains(b"40000") && !s.contains(b"040000") && !s.contains(b"x"));
    assert!(s.remove(b"-9223372036854775808") && !s.remove(b"2"));
    assert_eq!(s.len(), 5);
}

#[test]
fn a_string_or_too_many_integers_make_a_table() {
    let mut s = Set::new();
    s.insert_with(b"1", 2);
    s.insert_with(b"2", 2);
    assert_eq!(s.encoding(), "intset");
    s.insert_with(b"3", 2);
    assert_eq!(s.encoding(), "hashtable");
    assert!(s.contains(b"3") && s.contains_member(Member::Int(1)));
    assert!(s.remove(b"3") && s.remove(b"2"));
    assert_eq!(s.encoding(), "hashtable", "never back to an intset");
    let mut t = Set::new();
    t.insert_with(b"1", 2);
    t.insert_with(b"a", 2);
    assert_eq!(t.encoding(), "hashtable");
    assert_eq!(sorted(&t), [b"1".to_vec(), b"a".to_vec()]);
}

#[test]
fn random_members_are_uniform() {
    let mut s = Set::new();
    for m in ["a", "b", "c", "d", "e", "f"] {
        s.insert(m.as_bytes());
    }
    let mut counts = std::collections::HashMap::new();
    for _ in 0..60_000 {
        let m = s.random().map(bytes_of).unwrap_or_default();
        *counts.entry(m).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 6);
    // Each expects 10,000 (standard deviation ~91): 10% off is ~11 deviations.
    assert!(
        counts.values().all(|&c| (9_000..11_000).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn random_indexes_are_distinct() {
    let mut s = Set::new();
    for i in 0..100 {
        s.insert(format!("m{i}").as_bytes());
    }
    for count in [0, 1, 10, 33, 34, 99, 100, 1000] {
        let got = s.random_indexes(count);
        assert_eq!(got.len(), count.min(100));
        let distinct: BTreeSet<_> = got.iter().collect();
        assert_eq!(distinct.len(), got.len());
        assert!(got.iter().all(|&i| i < 100));
    }
}

/// Scans `set` to the end while `between` changes it after every step; returns every member
/// returned.
fn full_scan(set: &mut Set, count: usize, mut between: impl FnMut(&mut Set)) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    let mut cursor = 0;
    for _ in 0..100_000 {
        let (next, members) = set.scan(cursor, count);
        seen.extend(members.into_iter().map(bytes_of));
        if next == 0 {
            return seen;
        }
        cursor = next;
        between(set);
    }
    panic!("the scan did not end");
}

#[test]
fn scan_of_an_intset_is_one_call() {
    let mut s = Set::new();
    s.insert(b"2");
    s.insert(b"1");
    let (cursor, members) = s.scan(99, 1);
    assert_eq!((cursor, members), (0, vec![Member::Int(1), Member::Int(2)]));
}

#[test]
fn scan_returns_each_member_of_a_still_table_exactly_once() {
    let mut s = Set::new();
    for i in 0..1000 {
        s.insert(format!("m{i}").as_bytes());
    }
    let seen = full_scan(&mut s, 7, |_| {});
    assert_eq!(seen.len(), 1000);
    let distinct: BTreeSet<_> = seen.into_iter().collect();
    assert_eq!(distinct.len(), 1000);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<u8>),
    Remove(Vec<u8>),
    RemoveAt(usize),
}

fn member() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (-20i64..20).prop_map(|n| n.to_string().into_bytes()),
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(70_000),
            Just(-40_000),
            Just(3_000_000_000)
        ]
        .prop_map(|n| n.to_string().into_bytes()),
        "[a-c0-]{0,3}".prop_map(String::into_bytes),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => member().prop_map(Op::Insert),
        2 => member().prop_map(Op::Remove),
        1 => (0usize..40).prop_map(Op::RemoveAt),
    ]
}

proptest! {
    #[test]
    fn parse_int_agrees_with_the_canonical_rule(s in "-?[0-9]{0,21}|[+ 0-9a-]{0,4}") {
        prop_assert_eq!(parse_int(s.as_bytes()), canonical(s.as_bytes()));
    }

    #[test]
    fn behaves_as_a_btreeset(
        ops in proptest::collection::vec(op(), 0..120),
        max in prop_oneof![0usize..8, Just(512)],
    ) {
        let mut set = Set::new();
        let mut model = BTreeSet::new();
        let mut table = false;
        for op in ops {
            match op {
                Op::Insert(m) => {
                    prop_assert_eq!(set.insert_with(&m, max), model.insert(m.clone()));
                    table |= canonical(&m).is_none() || model.len() > max;
                }
                Op::Remove(m) => prop_assert_eq!(set.remove(&m), model.remove(&m)),
                Op::RemoveAt(i) => {
                    let gone = set.get(i).map(bytes_of);
                    set.remove_at(i);
                    prop_assert_eq!(gone.is_some(), i < model.len());
                    if let Some(m) = gone {
                        prop_assert!(model.remove(&m));
                    }
                }
            }
            prop_assert_eq!(set.len(), model.len());
            prop_assert_eq!(set.encoding(), if table { "hashtable" } else { "intset" });
            let all: Vec<Vec<u8>> = model.iter().cloned().collect();
            prop_assert_eq!(sorted(&set), all);
            for m in &model {
                prop_assert!(set.contains(m));
                prop_assert!(set.contains_member(Member::Bytes(m)));
            }
        }
        let mut dumped = Vec::new();
        set.for_each(|m| dumped.push(m.to_vec()));
        dumped.sort();
        prop_assert_eq!(dumped, model.iter().cloned().collect::<Vec<_>>());
        prop_assert_eq!(&set.clone(), &set);
    }

    #[test]
    fn scan_keeps_its_guarantee_while_the_table_grows_and_shrinks(
        stable in 1usize..200,
        churn in proptest::collection::vec((any::<bool>(), 0usize..3000), 0..400),
        count in 1usize..20,
    ) {
        let mut set = Set::new();
        set.insert(b"x");
        for i in 0..stable {
            set.insert(format!("s{i}").as_bytes());
        }
        let mut steps = churn.into_iter();
        let seen = full_scan(&mut set, count, |s| {
            // Bursts of inserts or removals of other members move the table through
            // several sizes between two steps.
            for (add, n) in steps.by_ref().take(8) {
                let m = format!("c{n}");
                if add { s.insert(m.as_bytes()); } else { s.remove(m.as_bytes()); }
            }
        });
        let seen: BTreeSet<Vec<u8>> = seen.into_iter().collect();
        for i in 0..stable {
            let m = format!("s{i}").into_bytes();
            prop_assert!(seen.contains(&m), "member {} missed", i);
        }
        prop_assert!(seen.iter().all(|m| m.starts_with(b"s") || m.starts_with(b"c") || m == b"x"));
    }
}

#[test]
fn scan_survives_a_table_that_doubles_and_halves_between_calls() {
    let mut s = Set::new();
    for i in 0..64 {
        s.insert(format!("s{i}").as_bytes());
    }
    let Repr::Table(t) = &s.repr else {
        panic!("a table")
    };
    let start = t.buckets();
    let mut grow = true;
    let seen = full_scan(&mut s, 5, |s| {
        for i in 0..2000 {
            let m = format!("c{i}");
            if grow {
                s.insert(m.as_bytes());
            } else {
                s.remove(m.as_bytes());
            }
        }
        grow = !grow;
    });
    let seen: BTreeSet<_> = seen.into_iter().collect();
    assert!((0..64).all(|i| seen.contains(format!("s{i}").as_bytes())));
    let Repr::Table(t) = &s.repr else {
        panic!("a table")
    };
    assert!(t.buckets() >= start);
}

#[test]
fn a_few_small_integers_stay_inline() {
    let mut s = Set::new();
    for n in 0..intset::TINY as i64 {
        s.insert(itoa::Buffer::new().format(n * 1000 - 5000).as_bytes());
    }
    assert_eq!(s.memory_usage(), 0, "no allocation");
    assert!(!s.insert(b"0"));
    assert!(s.insert(b"1"), "a 12th moves to the heap");
    assert!(s.memory_usage() > 0);
    assert_eq!(s.len(), intset::TINY + 1);
    let mut t = Set::new();
    t.insert(b"1");
    t.insert(b"100000");
    assert_eq!(sorted(&t), [b"1".to_vec(), b"100000".to_vec()]);
    assert!(t.remove(b"1") && t.contains(b"100000"));
}
