//! The client's key router: `minikv::node_for` (MD5 of the key, read as a 128-bit integer,
//! modulo the server count). It runs once per keyed request on the client side.
//!
//! ```text
//! cargo bench --bench router
//! cargo bench --bench router -- --quick        # a few seconds
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Keys of the sizes clients typically send: the spec's examples, redis-benchmark's
/// `key:__rand_int__` shape, and a long composite key.
const KEYS: [(&str, &str); 4] = [
    ("short", "user:alice"),
    ("benchmark", "key:000000001"),
    ("uuid", "session:3f2b9c7e-8d41-4a6f-9b0e-1c2d3e4f5a6b"),
    (
        "long_256",
        "tenant:acme:region:eu-west-1:service:billing:user:0000000042:invoice:2024-11-24:\
         line-items:page:0000000007:cache:v3:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\
         aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\
         aaaaaaaaaaaaa",
    ),
];

fn node_for(c: &mut Criterion) {
    let mut group = c.benchmark_group("node_for");
    group.throughput(Throughput::Elements(1));
    for (name, key) in KEYS {
        group.bench_with_input(BenchmarkId::new("3_servers", name), key, |b, key| {
            b.iter(|| minikv::node_for(black_box(key.as_bytes()), black_box(3)))
        });
    }
    // The server count only changes the final 128-bit remainder.
    for servers in [1usize, 16, 1000] {
        group.bench_with_input(
            BenchmarkId::new("servers", servers),
            &servers,
            |b, &servers| b.iter(|| minikv::node_for(black_box(b"user:alice"), black_box(servers))),
        );
    }
    group.finish();
}

/// Routing a 16-key MGET: what `ClusterClient::mget` does before grouping keys per node.
fn route_batch(c: &mut Criterion) {
    let keys: Vec<String> = (0..16).map(|i| format!("key:{i:09}")).collect();
    let mut group = c.benchmark_group("route_batch");
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("16_keys_3_servers", |b| {
        b.iter(|| {
            let mut per_node = [0usize; 3];
            for key in &keys {
                per_node[minikv::node_for(black_box(key.as_bytes()), 3)] += 1;
            }
            per_node
        })
    });
    group.finish();
}

criterion_group!(benches, node_for, route_batch);
criterion_main!(benches);
