//! The hash against a model (a `BTreeMap` plus the insertion order a `listpack` keeps), with
//! small conversion limits passed in directly, so that these tests never touch the node-wide
//! settings other tests read.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<u8>, Vec<u8>),
    /// HSET's several pairs at once.
    InsertMany(Vec<(Vec<u8>, Vec<u8>)>),
    Remove(Vec<u8>),
    /// `prepare_write` with one string of this length.
    Prepare(usize),
}

fn field() -> impl Strategy<Value = Vec<u8>> {
    // Few distinct short fields (so that replacing and removing happen), some long ones.
    prop_oneof![
        4 => (0u8..12).prop_map(|i| vec![b'a' + i]),
        1 => proptest::collection::vec(any::<u8>(), 0..20),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (field(), proptest::collection::vec(any::<u8>(), 0..12))
            .prop_map(|(f, v)| Op::Insert(f, v)),
        2 => proptest::collection::vec(
            (field(), proptest::collection::vec(any::<u8>(), 0..12)),
            0..5,
        )
        .prop_map(Op::InsertMany),
        3 => field().prop_map(Op::Remove),
        1 => (0usize..12).prop_map(Op::Prepare),
    ]
}

/// The model: pairs by field, and the fields in insertion order (a listpack's order).
#[derive(Default)]
struct Model {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    order: Vec<Vec<u8>>,
}

fn check(h: &Hash, m: &Model) {
    assert_eq!(h.len(), m.map.len());
    assert_eq!(h.is_empty(), m.map.is_empty());
    for (k, v) in &m.map {
        assert_eq!(h.get(k), Some(&v[..]), "field {k:?}");
    }
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = h.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    let as_map: BTreeMap<_, _> = pairs.iter().cloned().collect();
    assert_eq!(as_map, m.map, "iteration yields the model's pairs");
    assert_eq!(pairs.len(), m.map.len(), "each pair once");
    if h.encoding() == "listpack" {
        let fields: Vec<_> = pairs.into_iter().map(|(k, _)| k).collect();
        assert_eq!(fields, m.order, "a listpack keeps insertion order");
    }
    let mut copy = Hash::new();
    h.for_each(|k, v| {
        copy.insert_within(
            k,
            v,
            Limits {
                entries: 0,
                value: 0,
            },
        );
    });
    assert_eq!(&copy, h, "equal whatever the encodings");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn behaves_like_a_map_across_conversions(
        ops in proptest::collection::vec(op(), 0..60),
        entries in 0usize..6,
        value in 0usize..8,
    ) {
        let limits = Limits { entries, value };
        let mut h = Hash::new();
        let mut m = Model::default();
        let mut was_table = false;
        for op in ops {
            match op {
                Op::Insert(f, v) => {
                    let fits = f.len() <= value && v.len() <= value;
                    let new = h.insert_within(&f, &v, limits);
                    prop_assert_eq!(new, !m.map.contains_key(&f));
                    if new {
                        m.order.push(f.clone());
                    }
                    m.map.insert(f, v);
                    if !fits || m.map.len() > entries {
                        prop_assert_eq!(h.encoding(), "hashtable");
                    }
                }
                Op::InsertMany(pairs) => {
                    let fits = pairs.iter().all(|(f, v)| f.len() <= value && v.len() <= value);
                    let mut added = 0;
                    for (f, v) in &pairs {
                        if m.map.insert(f.clone(), v.clone()).is_none() {
                            m.order.push(f.clone());
                            added += 1;
                        }
                    }
                    let got = h.insert_pairs_within(
                        pairs.iter().map(|(f, v)| (&f[..], &v[..])),
                        limits,
                    );
                    prop_assert_eq!(got, added);
                    if !fits || m.map.len() > entries {
                        prop_assert_eq!(h.encoding(), "hashtable");
                    }
                }
                Op::Remove(f) => {
                    prop_assert_eq!(h.remove(&f), m.map.remove(&f).is_some());
                    m.order.retain(|x| *x != f);
                }
                Op::Prepare(n) => {
                    h.prepare_write_within([1, n], limits);
                    if n > value {
                        prop_assert_eq!(h.encoding(), "hashtable");
                    }
                }
            }
            // One way only, as in Redis 7.0.
            prop_assert!(!(was_table && h.encoding() == "listpack"));
            was_table = h.encoding() == "hashtable";
            check(&h, &m);
        }
    }

    #[test]
    fn scan_returns_every_field_present_throughout(
        initial in 0u32..400,
        churn in proptest::collection::vec((any::<bool>(), 0u32..600), 0..200),
        count in 1usize..40,
        entries in 0usize..20,
    ) {
        let limits = Limits { entries, value: 64 };
        let mut h = Hash::new();
        for i in 0..initial {
            h.insert_within(i.to_string().as_bytes(), b"v", limits);
        }
        let mut removed = HashSet::new();
        let mut seen = Vec::new();
        let mut cursor = 0;
        let mut churn = churn.into_iter();
        loop {
            cursor = h.scan(cursor, count, |f, v| seen.push((f.to_vec(), v.to_vec())));
            if cursor == 0 {
                break;
            }
            // Between calls: add fields (growing the table) or remove some.
            for (add, n) in churn.by_ref().take(3) {
                let f = n.to_string();
                if add {
                    h.insert_within(f.as_bytes(), b"w", limits);
                } else if h.remove(f.as_bytes()) {
                    removed.insert(f.into_bytes());
                }
            }
        }
        let fields: HashSet<_> = seen.iter().map(|(f, _)| f.clone()).collect();
        prop_assert_eq!(fields.len(), seen.len(), "no field twice");
        for i in 0..initial {
            let f = i.to_string().into_bytes();
            prop_assert!(removed.contains(&f) || fields.contains(&f), "missed {:?}", f);
        }
    }

    #[test]
    fn random_picks_come_from_the_hash(
        n in 1u32..300,
        count in 0usize..400,
        seed in any::<u64>(),
        entries in prop_oneof![Just(0usize), Just(512)],
    ) {
        let limits = Limits { entries, value: 64 };
        let mut h = Hash::new();
        for i in 0..n {
            h.insert_within(i.to_string().as_bytes(), i.to_string().as_bytes(), limits);
        }
        let mut rng = fastrand::Rng::with_seed(seed);
        let (k, v) = h.random(&mut rng).expect("not empty");
        prop_assert_eq!(h.get(k), Some(v));
        let distinct = h.random_distinct(count, &mut rng);
        prop_assert_eq!(distinct.len(), count.min(n as usize));
        let unique: HashSet<_> = distinct.iter().map(|(k, _)| *k).collect();
        prop_assert_eq!(unique.len(), distinct.len());
        for (k, v) in &distinct {
            prop_assert_eq!(h.get(k), Some(*v));
        }
        let mut drawn = 0;
        h.random_with_repeats(count, &mut rng, |k, v| {
            drawn += 1;
            assert_eq!(h.get(k), Some(v));
        });
        prop_assert_eq!(drawn, count);
    }
}

#[test]
fn empty_hash_allocates_nothing_and_is_small() {
    assert!(std::mem::size_of::<Hash>() <= 24);
    let h = Hash::new();
    assert_eq!(h.memory_usage(), 0);
    assert_eq!(h.encoding(), "listpack");
    assert_eq!(h.scan(123, 10, |_, _| panic!("empty")), 0);
    assert!(h.random(&mut fastrand::Rng::with_seed(1)).is_none());
}

#[test]
fn default_limits_follow_redis() {
    // 512 fields of at most 64 bytes stay a listpack; one more field, or a 65-byte value,
    // makes a table (the node-wide defaults; no test changes them).
    let mut h = Hash::new();
    for i in 0..512 {
        h.insert(format!("f{i}").as_bytes(), &[b'v'; 64]);
    }
    assert_eq!(h.encoding(), "listpack");
    let mut wide = h.clone();
    wide.insert(b"f0", &[b'v'; 65]);
    assert_eq!(wide.encoding(), "hashtable");
    h.insert(b"one more", b"v");
    assert_eq!(h.encoding(), "hashtable");
    assert_eq!(h.len(), 513);
}
