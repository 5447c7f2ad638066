//! Unit tests of the shard: entry layout, lazy expiry, the deadline index, dumps and WATCH
//! versions.

use std::time::Duration;

use super::*;

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
    ];
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
    let item = Item::new(b"key:000000001", b"vxxxxxxxxx", None);
    assert_eq!(item.0.len(), 24);
    assert_eq!(item.kind(), Kind::String);
    let long = Item::new(&[b'k'; 31], b"", None);
    assert_eq!(
        long.0.len(),
        32,
        "keys up to 31 bytes keep a one-byte header"
    );
}
