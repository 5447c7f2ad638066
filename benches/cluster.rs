//! The cluster client through real nodes on loopback: three in-process nodes on ephemeral
//! ports, and `ClusterClient` routing SET/GET by MD5, from one caller and from many concurrent
//! callers, plus MGET/MSET split per node and sent concurrently.
//!
//! Unlike the other benches this one uses sockets: what it measures is the client's routing,
//! pooling and per-node fan-out over real connections.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use minikv::{ClientConfig, ClusterClient, NodeConfig, Server};
use tokio::runtime::Runtime;

/// Concurrent callers in the "many callers" benches.
const CALLERS: usize = 64;
/// Keys per MGET/MSET.
const BATCH: usize = 100;

fn start_cluster(rt: &Runtime, dir: &std::path::Path) -> ClusterClient {
    let servers = rt.block_on(async {
        let mut servers = Vec::new();
        for id in 1..=3 {
            let config = NodeConfig {
                id,
                port: 0,
                data_dir: dir.to_path_buf(),
                save_interval: Duration::from_secs(3600),
                ..NodeConfig::default()
            };
            let server = Server::bind(config).await.expect("bind a node");
            servers.push(server.local_addr().expect("address").to_string());
            tokio::spawn(server.run());
        }
        servers
    });
    ClusterClient::new(ClientConfig {
        servers,
        pool_size: CALLERS,
        ..ClientConfig::default()
    })
}

fn cluster(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let client = start_cluster(&rt, dir.path());
    let keys: Vec<String> = (0..10_000).map(|i| format!("bench:{i}")).collect();
    rt.block_on(async {
        for key in &keys {
            client
                .set(key.as_bytes(), b"value", None)
                .await
                .expect("preload");
        }
    });

    let mut group = c.benchmark_group("cluster_client");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("set_single_caller", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % keys.len();
            let key = keys[i].clone();
            let client = client.clone();
            async move {
                client
                    .set(key.as_bytes(), b"value", None)
                    .await
                    .expect("set")
            }
        })
    });
    group.bench_function("get_single_caller", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % keys.len();
            let key = keys[i].clone();
            let client = client.clone();
            async move { black_box(client.get(key.as_bytes()).await.expect("get")) }
        })
    });
    group.throughput(Throughput::Elements(CALLERS as u64));
    group.bench_function("get_many_callers", |b| {
        b.to_async(&rt).iter(|| {
            let client = client.clone();
            let batch: Vec<String> = (0..CALLERS)
                .map(|j| keys[(i + j * 7) % keys.len()].clone())
                .collect();
            i = (i + 1) % keys.len();
            async move {
                let calls = batch.iter().map(|k| client.get(k.as_bytes()));
                black_box(futures::future::try_join_all(calls).await.expect("gets"))
            }
        })
    });
    group.bench_function("set_many_callers", |b| {
        b.to_async(&rt).iter(|| {
            let client = client.clone();
            let batch: Vec<String> = (0..CALLERS)
                .map(|j| keys[(i + j * 7) % keys.len()].clone())
                .collect();
            i = (i + 1) % keys.len();
            async move {
                let calls = batch
                    .iter()
                    .map(|k| client.set(k.as_bytes(), b"value", None));
                futures::future::try_join_all(calls).await.expect("sets")
            }
        })
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("mget_100_keys", |b| {
        b.to_async(&rt).iter_batched(
            || {
                i = (i + BATCH) % (keys.len() - BATCH);
                keys[i..i + BATCH].to_vec()
            },
            |batch| {
                let client = client.clone();
                async move {
                    let refs: Vec<&[u8]> = batch.iter().map(|k| k.as_bytes()).collect();
                    black_box(client.mget(&refs).await.expect("mget"))
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("mset_100_keys", |b| {
        b.to_async(&rt).iter_batched(
            || {
                i = (i + BATCH) % (keys.len() - BATCH);
                keys[i..i + BATCH].to_vec()
            },
            |batch| {
                let client = client.clone();
                async move {
                    let pairs: Vec<(&[u8], &[u8])> = batch
                        .iter()
                        .map(|k| (k.as_bytes(), &b"value"[..]))
                        .collect();
                    client.mset(&pairs).await.expect("mset")
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, cluster);
criterion_main!(benches);
