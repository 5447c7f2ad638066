use std::collections::VecDeque;
use std::sync::Mutex;

use proptest::prelude::*;

use super::*;
use crate::store::value::parse_int as canonical_int;

/// Elements that exercise both encodings and their edges: canonical integers of every width,
/// strings that look like integers but are not canonical, the empty string, long strings.
fn element() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            "a",
            "b",
            "",
            "0",
            "-0",
            "007",
            "+1",
            "1",
            "-1",
            "127",
            "128",
            "-128",
            "-129",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        (0usize..400, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    PushBack(Vec<u8>),
    PushFront(Vec<u8>),
    PopFront,
    PopBack,
    RemoveFront(usize),
    RemoveBack(usize),
    Set(i64, Vec<u8>),
    Insert(Vec<u8>, Vec<u8>, bool),
    Remove(Vec<u8>, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => element().prop_map(Op::PushBack),
        6 => element().prop_map(Op::PushFront),
        1 => Just(Op::PopFront),
        1 => Just(Op::PopBack),
        1 => (0usize..20).prop_map(Op::RemoveFront),
        1 => (0usize..20).prop_map(Op::RemoveBack),
        2 => (-60i64..60, element()).prop_map(|(i, e)| Op::Set(i, e)),
        2 => (element(), element(), any::<bool>()).prop_map(|(p, e, a)| Op::Insert(p, e, a)),
        1 => (element(), -3i64..3).prop_map(|(e, c)| Op::Remove(e, c)),
    ]
}

/// Held by the tests that set or depend on `list-max-listpack-size` (a global).
static FILL: Mutex<()> = Mutex::new(());

fn model_index(len: usize, i: i64) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

fn apply(list: &mut List, model: &mut VecDeque<Vec<u8>>, op: Op) {
    match op {
        Op::PushBack(e) => {
            list.push_back(&e);
            model.push_back(e);
        }
        Op::PushFront(e) => {
            list.push_front(&e);
            model.push_front(e);
        }
        Op::PopFront => {
            assert_eq!(list.pop_front().map(|b| b.to_vec()), model.pop_front());
        }
        Op::PopBack => {
            assert_eq!(list.pop_back().map(|b| b.to_vec()), model.pop_back());
        }
        Op::RemoveFront(n) => {
            list.remove_front(n);
            model.drain(..n.min(model.len()));
        }
        Op::RemoveBack(n) => {
            list.remove_back(n);
            let keep = model.len().saturating_sub(n);
            model.truncate(keep);
        }
        Op::Set(i, e) => {
            let at = model_index(model.len(), i);
            assert_eq!(list.set(i, &e), at.is_some());
            if let Some(at) = at {
                model[at] = e;
            }
        }
        Op::Insert(pivot, e, after) => {
            let at = model.iter().position(|x| *x == pivot);
            assert_eq!(list.insert(&pivot, &e, after), at.is_some());
            if let Some(at) = at {
                model.insert(if after { at + 1 } else { at }, e);
            }
        }
        Op::Remove(e, count) => {
            let mut positions: Vec<usize> = (0..model.len()).filter(|&i| model[i] == e).collect();
            if count < 0 {
                positions.reverse();
            }
            if count != 0 {
                positions.truncate(count.unsigned_abs() as usize);
            }
            positions.sort_unstable();
            for &p in positions.iter().rev() {
                model.remove(p);
            }
            assert_eq!(list.remove(&e, count), positions.len());
        }
    }
}

fn check(list: &List, model: &VecDeque<Vec<u8>>) {
    assert_eq!(list.len(), model.len());
    let items: Vec<Vec<u8>> = list.iter().map(Item::to_vec).collect();
    assert_eq!(items, Vec::from(model.clone()));
    let back: Vec<Vec<u8>> = list.iter_rev().map(Item::to_vec).collect();
    assert!(back.iter().eq(model.iter().rev()));
    let n = model.len() as i64;
    for i in [-n - 1, -n, -1, 0, n / 2, n - 1, n] {
        let want = model_index(model.len(), i).map(|i| model[i].clone());
        assert_eq!(list.get(i).map(Item::to_vec), want, "index {i}");
    }
    let len = model.len();
    for (start, count) in [(0, len), (len / 3, 7), (len.saturating_sub(1), 5), (len, 1)] {
        let copied = list.copy_range(start, count);
        let want: Vec<Vec<u8>> = model.iter().skip(start).take(count).cloned().collect();
        assert_eq!(copied.len(), want.len());
        let fwd: Vec<Vec<u8>> = copied
            .clone()
            .into_items(false)
            .iter()
            .map(|b| b.to_vec())
            .collect();
        assert_eq!(fwd, want);
        let rev: Vec<Vec<u8>> = copied.into_items(true).iter().map(|b| b.to_vec()).collect();
        assert!(rev.iter().eq(want.iter().rev()));
    }
    let mut dumped = Vec::new();
    list.for_each(|i| dumped.push(i.to_vec()));
    assert_eq!(dumped, Vec::from(model.clone()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn list_behaves_like_a_deque(
        fill in prop::sample::select(vec![-2i64, -1, 0, 1, 2, 3, 5]),
        ops in prop::collection::vec(op(), 0..120),
    ) {
        let _fill = FILL.lock().unwrap_or_else(|e| e.into_inner());
        limits::LIST_MAX_LISTPACK_SIZE.set(fill).expect("valid");
        let mut list = List::new();
        let mut model = VecDeque::new();
        for op in ops {
            apply(&mut list, &mut model, op);
            check(&list, &model);
        }
        let clone = list.clone();
        prop_assert_eq!(&clone, &list);
        limits::LIST_MAX_LISTPACK_SIZE.set(-2).expect("valid");
    }

    #[test]
    fn positions_match_a_scan(
        items in prop::collection::vec(prop::sample::select(vec!["a", "b", "1"]), 0..60),
        from_tail in any::<bool>(),
        maxlen in 0usize..70,
    ) {
        let mut list = List::new();
        for i in &items {
            list.push_back(i.as_bytes());
        }
        let limit = if maxlen == 0 { items.len() } else { maxlen.min(items.len()) };
        let mut want: Vec<usize> = if from_tail {
            (items.len() - limit..items.len()).rev().collect()
        } else {
            (0..limit).collect()
        };
        want.retain(|&i| items[i] == "a");
        let got: Vec<usize> = list.positions(b"a", from_tail, maxlen).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn canonical_integers_follow_string2ll() {
    assert_eq!(canonical_int(b"0"), Some(0));
    assert_eq!(canonical_int(b"-9223372036854775808"), Some(i64::MIN));
    assert_eq!(canonical_int(b"9223372036854775807"), Some(i64::MAX));
    for s in [
        "",
        "-",
        "-0",
        "01",
        "+1",
        " 1",
        "1 ",
        "9223372036854775808",
        "1a",
    ] {
        assert_eq!(canonical_int(s.as_bytes()), None, "{s:?}");
    }
}

#[test]
fn a_million_small_items_take_a_few_bytes_each() {
    let _fill = FILL.lock().unwrap_or_else(|e| e.into_inner());
    let mut list = List::new();
    for i in 0..1_000_000u32 {
        if i % 2 == 0 {
            list.push_back(b"xxx");
        } else {
            list.push_front(i.to_string().as_bytes());
        }
    }
    assert_eq!(list.len(), 1_000_000);
    let per_item = list.memory_usage() as f64 / 1e6;
    assert!(per_item < 6.0, "{per_item} bytes per item");
    assert!(list.node_count() < 1_000, "{} nodes", list.node_count());
    assert_eq!(list.get(0).map(Item::to_vec), Some(b"999999".to_vec()));
    assert_eq!(list.get(-1).map(Item::to_vec), Some(b"xxx".to_vec()));
}

#[test]
fn an_item_larger_than_a_node_gets_its_own_node() {
    let _fill = FILL.lock().unwrap_or_else(|e| e.into_inner());
    let mut list = List::new();
    list.push_back(b"a");
    list.push_back(&[b'x'; 20_000]);
    list.push_back(b"b");
    assert_eq!(list.len(), 3);
    assert!(list.set(0, &[b'y'; 9000]));
    assert!(list.insert(b"b", &[b'z'; 9000], false));
    let lens: Vec<usize> = list.iter().map(|i| i.to_vec().len()).collect();
    assert_eq!(lens, [9000, 20_000, 9000, 1]);
}
