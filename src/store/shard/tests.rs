//! Unit tests of the shard: entry layout, lazy expiry, the deadline index, dumps and WATCH
//! versions.

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::store::value::{Hash, List, ZSet};

fn entry(v: &'static [u8], deadline: Option<Instant>) -> Entry {
    Entry {
        value: Value::String(Bytes::from_static(v)),
        deadline,
    }
}

fn shard() -> Shard {
    Shard::new(ahash::RandomState::new())
}

#[test]
fn items_round_trip_keys_values_and_deadlines() {
    let now = Instant::now();
    let mut s = shard();
    let long_key = vec![b'k'; 300];
    s.insert(
        &long_key,
        entry(b"", Some(now + Duration::from_secs(5))),
        now,
    );
    s.insert(b"", entry(b"\x00\xff", None), now);
    let got = s.get(&long_key, now).expect("present");
    assert_eq!(got.value, Value::String(Bytes::new()));
    let left = got.deadline.expect("deadline") - now;
    assert!(left <= Duration::from_secs(5) && left > Duration::from_secs(4));
    assert_eq!(
        s.value(b"", now),
        Some(Value::String(Bytes::from_static(b"\x00\xff")))
    );
    assert_eq!(s.kind(b"", now), Some(Kind::String));
    assert_eq!(s.kind(b"missing", now), None);
    assert_eq!(s.deadline(b"", now), Some(None));
}

#[test]
fn expired_entries_are_invisible_and_purged() {
    let now = Instant::now();
    let mut s = shard();
    s.insert(b"a", entry(b"1", Some(now + Duration::from_secs(1))), now);
    s.insert(b"b", entry(b"2", None), now);
    assert!(s.get(b"a", now).is_some());
    let later = now + Duration::from_secs(2);
    assert!(s.get(b"a", later).is_none(), "lazy expiry on read");
    assert_eq!(s.len(), 1);
    assert_eq!(s.len_with_deadline(), 0);
}

#[test]
fn purge_removes_only_due_keys_and_keeps_index_in_step() {
    let now = Instant::now();
    let mut s = shard();
    for i in 0..10u64 {
        let key = format!("k{i}");
        let d = now + Duration::from_secs(i);
        s.insert(key.as_bytes(), entry(b"v", Some(d)), now);
    }
    s.set_deadline(b"k9", None, now);
    s.insert(b"k8", entry(b"new", None), now);
    assert_eq!(s.purge_expired(now + Duration::from_secs(5)), 6);
    assert_eq!(s.len(), 4);
    assert_eq!(s.len_with_deadline(), 2);
    assert!(s.remove(b"k7", now).is_some());
    assert_eq!(s.len_with_deadline(), 1);
}

/// Checks the shard's deadline count and sum against its entries, read one by one.
fn assert_deadline_sum(s: &Shard, what: &str) {
    let deadlines: Vec<u128> = s
        .iter()
        .filter_map(|(_, _, d)| d)
        .map(|d| u128::from(clock::to_micros(d)))
        .collect();
    assert_eq!(s.len_with_deadline(), deadlines.len(), "count after {what}");
    assert_eq!(
        s.deadline_sum(),
        deadlines.iter().sum::<u128>(),
        "sum after {what}"
    );
}

#[test]
fn the_deadline_sum_follows_every_change() {
    let now = Instant::now();
    let secs = |n: u64| Some(now + Duration::from_secs(n));
    let mut s = shard();
    assert_deadline_sum(&s, "nothing");
    s.put(b"a", b"1", secs(10), now);
    s.put(b"b", b"2", secs(20), now);
    s.put(b"c", b"3", None, now);
    assert_eq!(
        s.deadline_sum(),
        2 * u128::from(clock::to_micros(now)) + 30_000_000
    );
    assert_deadline_sum(&s, "put");
    s.put(b"a", b"1", secs(40), now);
    s.insert(b"c", entry(b"3", secs(5)), now);
    assert_deadline_sum(&s, "replace");
    s.put(b"b", b"2", None, now);
    assert_deadline_sum(&s, "replace without TTL");
    assert!(s.set_deadline(b"c", secs(7), now));
    assert!(s.set_deadline(b"b", secs(8), now));
    assert!(s.set_deadline(b"a", None, now));
    assert_deadline_sum(&s, "expire and persist");
    assert!(s.remove(b"b", now).is_some());
    assert!(s.delete(b"c", now));
    assert_deadline_sum(&s, "remove and delete");

    for i in 0..20u64 {
        s.put(format!("k{i}").as_bytes(), b"v", secs(i + 1), now);
    }
    // Two keys with the same deadline: both count.
    s.put(b"twin", b"v", secs(3), now);
    assert_deadline_sum(&s, "many");
    assert_eq!(s.purge_expired(now + Duration::from_secs(5)), 6);
    assert_deadline_sum(&s, "purge");
    assert!(s.get(b"k5", now + Duration::from_secs(6)).is_none());
    assert_deadline_sum(&s, "lazy expiry");

    // SWAPDB swaps shards of one store: they hash with the same seed.
    let mut other = Shard::new(s.hasher.clone());
    other.put(b"x", b"v", secs(100), now);
    s.swap_contents(&mut other);
    assert_deadline_sum(&s, "swap (this side)");
    assert_deadline_sum(&other, "swap (other side)");
    assert_eq!(s.len_with_deadline(), 1);

    let hasher = s.hasher.clone();
    let prepared = vec![
        Shard::prepare(&hasher, b"x", Kind::String, b"w", secs(50)),
        Shard::prepare(&hasher, b"y", Kind::String, b"w", secs(60)),
        Shard::prepare(&hasher, b"z", Kind::String, b"w", None),
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .expect("strings always prepare");
    s.load(prepared);
    assert_deadline_sum(&s, "load over an existing key");
    assert_eq!(s.len_with_deadline(), 2);

    s.clear();
    assert_deadline_sum(&s, "clear");
    assert_eq!(s.deadline_sum(), 0);
}

#[test]
fn dumps_read_back_every_entry() {
    let now = Instant::now();
    let mut s = shard();
    s.put(b"a", b"1", None, now);
    s.put(b"b", b"", Some(now + Duration::from_secs(9)), now);
    let mut dump = Vec::new();
    s.dump_into(&mut dump);
    let mut got: Vec<_> = dump_entries(&dump)
        .map(|e| (e.key.to_vec(), e.data.to_vec(), e.deadline.is_some()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (b"a".to_vec(), b"1".to_vec(), false),
            (b"b".to_vec(), vec![], true)
        ]
    );
}

#[test]
fn watched_versions_move_on_every_change_only() {
    let now = Instant::now();
    let mut s = shard();
    s.put(b"a", b"1", None, now);
    let v = s.watch(b"a");
    s.put(b"other", b"x", None, now);
    assert_eq!(s.version(b"a", now), v, "other keys do not count");
    s.put(b"a", b"1", None, now);
    assert_ne!(s.version(b"a", now), v, "same value rewritten still counts");
    let v = s.version(b"a", now);
    s.set_deadline(b"a", Some(now + Duration::from_millis(1)), now);
    let v2 = s.version(b"a", now);
    assert_ne!(v2, v);
    assert_ne!(
        s.version(b"a", now + Duration::from_millis(2)),
        v2,
        "expiry counts"
    );
    s.unwatch(b"a");
    assert!(s.watches.is_empty());
}

#[test]
fn a_short_string_entry_costs_one_header_byte() {
    // memory.sh's keys (`key:000000001`, 13 bytes) with 10-byte values: the type tag must
    // not push the allocation past 24 bytes (a 32-byte malloc chunk).
    let len = |item: &Item| match item {
        Item::Inline(data) => data.len(),
        Item::Boxed(_) => usize::MAX,
    };
    let item = Item::new(b"key:000000001", b"vxxxxxxxxx", None);
    assert_eq!(len(&item), 24);
    assert_eq!(item.kind(), Kind::String);
    let long = Item::new(&[b'k'; 31], b"", None);
    assert_eq!(len(&long), 32, "keys up to 31 bytes keep a one-byte header");
    assert_eq!(
        std::mem::size_of::<Item>(),
        16,
        "a table slot stays 16 bytes"
    );
}

fn push(l: &mut Collection, item: &[u8]) -> Result<((), bool), WrongType> {
    l.as_list_mut()?.push_back(item);
    Ok(((), true))
}

#[test]
fn collections_change_in_place_and_go_when_emptied() {
    let mut s = shard();
    let now = Instant::now();
    let secs = |n: u64| Some(now + Duration::from_secs(n));
    // A missing key without `create`: nothing runs.
    assert_eq!(
        s.update(b"l", Kind::List, false, now, |l| push(l, b"a")),
        Ok(None)
    );
    assert!(!s.contains(b"l", now));
    let version = s.watch(b"l");
    assert_eq!(
        s.update(b"l", Kind::List, true, now, |l| push(l, b"a")),
        Ok(Some((
            (),
            Some(Change {
                existed: false,
                exists: true
            })
        )))
    );
    assert_eq!(s.kind(b"l", now), Some(Kind::List));
    assert!(
        s.version(b"l", now) > version,
        "a change moves the WATCH version"
    );
    // A change that changes nothing leaves the version alone.
    let version = s.version(b"l", now);
    assert_eq!(
        s.update(b"l", Kind::List, false, now, |_| Ok((7, false))),
        Ok(Some((7, None)))
    );
    assert_eq!(s.version(b"l", now), version);
    // The wrong kind: refused before `f`; strings too.
    s.put(b"str", b"x", None, now);
    assert_eq!(
        s.update(b"str", Kind::List, true, now, |l| push(l, b"a")),
        Err(WrongType)
    );
    assert_eq!(
        s.update(b"l", Kind::Hash, true, now, |v| v
            .as_hash_mut()
            .map(|_| ((), true))),
        Err(WrongType)
    );
    // A deadline stays through changes; emptying deletes the key and its deadline.
    assert!(s.set_deadline(b"l", secs(100), now));
    s.update(b"l", Kind::List, false, now, |l| push(l, b"b"))
        .expect("a list");
    let micros = |d: Option<Option<Instant>>| d.map(|d| d.map(clock::to_micros));
    assert_eq!(micros(s.deadline(b"l", now)), micros(Some(secs(100))));
    assert_eq!(s.len_with_deadline(), 1);
    let emptied = s.update(b"l", Kind::List, false, now, |l| {
        *l.as_list_mut()? = List::new();
        Ok(((), true))
    });
    let gone = Change {
        existed: true,
        exists: false,
    };
    assert_eq!(emptied, Ok(Some(((), Some(gone)))));
    assert!(!s.contains(b"l", now));
    assert_eq!(s.len_with_deadline(), 0);
    // Creating without adding anything stores nothing.
    assert_eq!(
        s.update(b"h", Kind::Hash, true, now, |_| Ok(((), true))),
        Ok(Some(((), None)))
    );
    assert!(!s.contains(b"h", now));
}

#[test]
fn collections_dump_load_and_expire_like_strings() {
    let mut s = shard();
    let now = Instant::now();
    let secs = |n: u64| Some(now + Duration::from_secs(n));
    let mut h = Hash::new();
    h.insert(b"f", b"v");
    let mut z = ZSet::new();
    z.insert(b"m", 2.5);
    s.put_owned(b"h", Value::Hash(h.clone()), secs(10), now);
    s.put_value(b"z", &Value::ZSet(z.clone()), None, now);
    s.put(b"s", b"text", None, now);
    let mut dump = Vec::new();
    s.dump_into(&mut dump);
    let mut other = shard();
    let prepared = dump_entries(&dump)
        .map(|e| Shard::prepare(&other.hasher, e.key, e.kind, e.data, e.deadline))
        .collect::<Result<Vec<_>, _>>()
        .expect("a fresh dump loads");
    other.load(prepared);
    assert_eq!(other.value(b"h", now), Some(Value::Hash(h)));
    let micros = |d: Option<Option<Instant>>| d.map(|d| d.map(clock::to_micros));
    assert_eq!(micros(other.deadline(b"h", now)), micros(Some(secs(10))));
    assert_eq!(other.value(b"z", now), Some(Value::ZSet(z)));
    assert_eq!(other.peek(b"s", now).map(|v| v.kind()), Some(Kind::String));
    // A damaged collection dump is refused.
    assert!(Shard::prepare(&other.hasher, b"x", Kind::Set, b"\x01\x05", None).is_err());
    // Expiry removes a collection as it removes a string.
    assert_eq!(other.purge_expired(now + Duration::from_secs(11)), 1);
    assert!(!other.contains(b"h", now));
}

#[test]
fn collection_entries_stay_small() {
    // Every key of a collection pays for its box (docs/performance.md, "Data types").
    assert!(std::mem::size_of::<crate::store::List>() <= 24);
    assert!(std::mem::size_of::<crate::store::Hash>() <= 24);
    assert!(std::mem::size_of::<crate::store::Set>() <= 24);
    assert!(std::mem::size_of::<crate::store::ZSet>() <= 24);
    assert_eq!(
        std::mem::size_of::<Boxed>(),
        56,
        "a collection entry fills a 64-byte malloc chunk, no more"
    );
}

#[test]
fn collection_keys_of_any_length_keep_their_deadlines() {
    let mut s = shard();
    let now = Instant::now();
    let later = Some(now + Duration::from_secs(50));
    let micros = |d: Option<Option<Instant>>| d.map(|d| d.map(clock::to_micros));
    // Keys around the inline limits (30 bytes without a deadline, 22 with one).
    for len in [0, 1, 21, 22, 23, 29, 30, 31, 32, 200] {
        let key = vec![b'k'; len];
        let mut set = crate::store::Set::new();
        set.insert(b"1");
        for deadline in [None, later] {
            s.put_value(&key, &Value::Set(set.clone()), deadline, now);
            assert_eq!(s.kind(&key, now), Some(Kind::Set), "{len}");
            assert_eq!(micros(s.deadline(&key, now)), micros(Some(deadline)));
            assert!(s.set_deadline(&key, None, now));
            assert_eq!(s.deadline(&key, now), Some(None));
            assert!(s.set_deadline(&key, deadline, now));
            s.update(&key, Kind::Set, false, now, |v| {
                Ok(((), v.as_set_mut()?.insert(b"2")))
            })
            .expect("a set");
            assert_eq!(micros(s.deadline(&key, now)), micros(Some(deadline)));
            let entry = s.get(&key, now).expect("live");
            assert_eq!(entry.value.as_ref().as_set().map(|s| s.len()), Ok(2));
            let keys: Vec<Vec<u8>> = s.iter().map(|(k, _, _)| k.to_vec()).collect();
            assert!(keys.contains(&key));
            assert!(s.delete(&key, now));
        }
    }
    // A missing key is never created as a string.
    assert_eq!(
        s.update(b"new", Kind::String, true, now, |_| Ok(((), true))),
        Err(WrongType)
    );
}

#[test]
fn modify_string_rewrites_in_place_keeps_the_deadline_and_treats_an_expired_key_as_missing() {
    let now = Instant::now();
    let later = now + Duration::from_secs(60);
    let mut s = shard();
    let add = |s: &mut Shard, key: &[u8], at: Instant| {
        s.modify_string(key, at, |old| {
            let n: i64 = old.map_or(0, |b| std::str::from_utf8(b).unwrap().parse().unwrap());
            Ok::<_, WrongType>((n + 5).to_string())
        })
        .map(|(v, d)| (v, d.is_some()))
    };
    // Missing: created without a deadline.
    assert_eq!(add(&mut s, b"n", now), Ok(("5".to_string(), false)));
    // Same length: in place; longer: a new item; the version moves each time.
    let v0 = s.watch(b"n");
    assert_eq!(add(&mut s, b"n", now), Ok(("10".to_string(), false)));
    assert_eq!(add(&mut s, b"n", now), Ok(("15".to_string(), false)));
    assert!(s.version(b"n", now) > v0);
    assert_eq!(s.value(b"n", now), Some(Value::String(Bytes::from("15"))));
    // A deadline survives both kinds of rewrite.
    s.set_deadline(b"n", Some(later), now);
    assert_eq!(add(&mut s, b"n", now), Ok(("20".to_string(), true)));
    assert_eq!(add(&mut s, b"n", now), Ok(("25".to_string(), true)));
    assert_eq!(add(&mut s, b"n", now), Ok(("30".to_string(), true)));
    assert_eq!(s.len_with_deadline(), 1);
    // Past the deadline the key counts as missing and loses its deadline.
    let after = later + Duration::from_secs(1);
    assert_eq!(add(&mut s, b"n", after), Ok(("5".to_string(), false)));
    assert_eq!(s.len_with_deadline(), 0);
    assert_eq!(s.expired(), 1);
    // A collection is WRONGTYPE and `f` never runs; a failing `f` changes nothing.
    s.insert(
        b"h",
        Entry {
            value: Value::Hash(Hash::default()),
            deadline: None,
        },
        now,
    );
    let refused = s.modify_string(b"h", now, |_| -> Result<Vec<u8>, WrongType> {
        panic!("not called for a collection")
    });
    assert_eq!(refused.map(|_| ()), Err(WrongType));
    let failed = s.modify_string(b"n", now, |_| Err::<Vec<u8>, _>(WrongType));
    assert!(failed.is_err());
    assert_eq!(s.value(b"n", after), Some(Value::String(Bytes::from("5"))));
}
