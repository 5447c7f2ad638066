//! The node's keyspace, without sockets or codecs: `minikv::store::Store` with 100,000 keys
//! already in it (`key:000000000` .. `key:000099999`, 10-byte values, as many shards as
//! `NodeConfig::default()` gives a node), then GET/SET/EXPIRE mixes the way the command
//! handlers call the store (lock the key's shard, one table operation, unlock), and the
//! whole-store work of the background tasks (snapshot copy-out, expiry sweep).
//!
//! ```text
//! cargo bench --bench store
//! cargo bench --bench store -- --warm-up-time 1 --measurement-time 2
//! cargo bench --bench store -- get_hit         # one benchmark
//! ```

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use minikv::store::Store;
use minikv::NodeConfig;
use tokio::time::Instant;

/// Keys stored before measuring.
const PREFILLED: usize = 100_000;
/// The value stored under every key (10 bytes, like the memory target in issue 4).
const VALUE: &[u8] = b"0123456789";

/// `key:000000000` .. `key:000099999`, in a scrambled order so that consecutive requests
/// touch unrelated shards and map slots, as independent clients would.
fn keys() -> Vec<Bytes> {
    let mut keys: Vec<Bytes> = (0..PREFILLED)
        .map(|i| Bytes::from(format!("key:{i:09}")))
        .collect();
    // A fixed multiplicative shuffle: deterministic, no RNG dependency.
    let n = keys.len();
    for i in 0..n {
        let j = (i * 7919 + 13) % n;
        keys.swap(i, j);
    }
    keys
}

fn filled_store(keys: &[Bytes], now: Instant) -> Store {
    // As many shards per database as a node has by default.
    let store = Store::new(1, NodeConfig::default().shards);
    let db = store.db(0).expect("database 0 exists");
    for key in keys {
        db.shard(key).put(key, VALUE, None, now);
    }
    store
}

/// Cycles through `items` one per call.
struct Cycle<'a, T> {
    items: &'a [T],
    next: usize,
}

impl<'a, T> Cycle<'a, T> {
    fn new(items: &'a [T]) -> Self {
        Cycle { items, next: 0 }
    }

    fn next(&mut self) -> &'a T {
        let item = &self.items[self.next];
        self.next = (self.next + 1) % self.items.len();
        item
    }
}

fn single_ops(c: &mut Criterion) {
    let now = Instant::now();
    let keys = keys();
    let missing: Vec<Bytes> = (0..PREFILLED)
        .map(|i| Bytes::from(format!("missing:{i:09}")))
        .collect();
    let store = filled_store(&keys, now);
    let db = store.db(0).expect("database 0 exists");
    let later = now + Duration::from_secs(3600);

    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));

    let mut cycle = Cycle::new(&keys);
    group.bench_function("get_hit", |b| {
        b.iter(|| {
            let key = cycle.next();
            db.shard(key).get(key, now).map(|e| e.value)
        })
    });

    // The same with the shared gate slot every ordinary command holds while it runs.
    let mut cycle = Cycle::new(&keys);
    group.bench_function("get_hit_gated", |b| {
        b.iter(|| {
            let key = cycle.next();
            let _gate = store.gate().shared(black_box(7));
            db.shard(key).get(key, now).map(|e| e.value)
        })
    });

    let mut cycle = Cycle::new(&missing);
    group.bench_function("get_miss", |b| {
        b.iter(|| {
            let key = cycle.next();
            db.shard(key).get(key, now).is_some()
        })
    });

    // Plain SET (no NX/XX/GET/KEEPTTL): the handler's fast path, `put`.
    let mut cycle = Cycle::new(&keys);
    group.bench_function("set_overwrite", |b| {
        b.iter(|| {
            let key = cycle.next();
            db.shard(key).put(key, black_box(VALUE), None, now)
        })
    });

    // SET EX on keys that already have a deadline: one deadline-index removal and one
    // insertion besides the table write.
    let mut cycle = Cycle::new(&keys);
    let mut step = 0u64;
    group.bench_function("set_with_ttl", |b| {
        b.iter(|| {
            let key = cycle.next();
            step += 1;
            let deadline = Some(later + Duration::from_millis(step % 1000));
            db.shard(key).put(key, black_box(VALUE), deadline, now)
        })
    });

    // EXPIRE as its handler does it: read the current deadline (for NX/XX/GT/LT), set the new.
    let mut cycle = Cycle::new(&keys);
    group.bench_function("expire", |b| {
        b.iter(|| {
            let key = cycle.next();
            step += 1;
            let deadline = later + Duration::from_millis(step % 1000);
            let mut shard = db.shard(key);
            black_box(shard.deadline(key, now));
            shard.set_deadline(key, Some(deadline), now)
        })
    });

    // A fresh key each time, then DEL: the table grows and shrinks back.
    let mut fresh = 0u64;
    group.bench_function("set_new_then_del", |b| {
        b.iter(|| {
            fresh += 1;
            let key = format!("fresh:{fresh}");
            let mut shard = db.shard(key.as_bytes());
            shard.put(key.as_bytes(), VALUE, None, now);
            shard.remove(key.as_bytes(), now)
        })
    });
    group.finish();
}

/// Request mixes over the same 100k keys: `get90_set10` is a read-heavy cache,
/// `get80_set15_expire5` adds TTL updates (the spec's GET/SET/EXPIRE).
fn mixes(c: &mut Criterion) {
    let now = Instant::now();
    let keys = keys();
    let store = filled_store(&keys, now);
    let db = store.db(0).expect("database 0 exists");
    let later = now + Duration::from_secs(3600);

    let mut group = c.benchmark_group("store_mix");
    // One iteration is 100 operations, so the per-operation figure is the time / 100.
    group.throughput(Throughput::Elements(100));

    let mut cycle = Cycle::new(&keys);
    group.bench_function("get90_set10", |b| {
        b.iter(|| {
            for op in 0..100u32 {
                let key = cycle.next();
                let mut shard = db.shard(key);
                if op % 10 == 0 {
                    shard.put(key, VALUE, None, now);
                } else {
                    black_box(shard.get(key, now).map(|e| e.value));
                }
            }
        })
    });

    let mut cycle = Cycle::new(&keys);
    group.bench_function("get80_set15_expire5", |b| {
        b.iter(|| {
            for op in 0..100u32 {
                let key = cycle.next();
                let mut shard = db.shard(key);
                match op % 20 {
                    0..=2 => {
                        shard.put(key, VALUE, None, now);
                    }
                    3 => {
                        shard.set_deadline(key, Some(later), now);
                    }
                    _ => {
                        black_box(shard.get(key, now).map(|e| e.value));
                    }
                }
            }
        })
    });
    group.finish();
}

/// Whole-store operations a node runs in the background: the snapshot's copy-out (every
/// entry cloned under one shard lock at a time) and the expiry sweep.
fn background(c: &mut Criterion) {
    let now = Instant::now();
    let keys = keys();
    let store = filled_store(&keys, now);
    let db = store.db(0).expect("database 0 exists");

    let mut group = c.benchmark_group("store_background");
    group.sample_size(10);
    group.throughput(Throughput::Elements(PREFILLED as u64));
    group.bench_function("export_100k", |b| b.iter(|| db.export(now).len()));

    // A sweep over 100k keys of which 10% have just expired; throughput counts purged keys.
    let expiring: Vec<Bytes> = keys.iter().step_by(10).cloned().collect();
    group.throughput(Throughput::Elements(expiring.len() as u64));
    group.bench_function("purge_10k_of_100k", |b| {
        b.iter_batched(
            || {
                let deadline = Some(now + Duration::from_secs(1));
                for key in &expiring {
                    db.shard(key).put(key, VALUE, deadline, now);
                }
            },
            |()| store.purge_expired(now + Duration::from_secs(2)),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, single_ops, mixes, background);
criterion_main!(benches);
