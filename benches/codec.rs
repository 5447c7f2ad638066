//! Both wire codecs on byte buffers, without sockets: `RespCodec` decoding a typical SET, a
//! 16-request pipeline (redis-benchmark `-P 16`) and a 64 KB value, encoding the usual
//! replies; `JsonCodec` decoding the spec's requests and encoding their reply objects.
//!
//! ```text
//! cargo bench --bench codec
//! cargo bench --bench codec -- --warm-up-time 1 --measurement-time 2
//! cargo bench --bench codec -- resp_decode     # one group
//! ```

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use minikv::protocol::json::JsonLimits;
use minikv::protocol::resp::RespLimits;
use minikv::protocol::{Codec, Incoming, JsonCodec, Reply, ReplyShape, RespCodec};
use tokio_util::codec::{Decoder, Encoder};

/// The SET redis-benchmark sends (`SET key:__rand_int__ xxx`), with a 10-byte value.
const SET_REQUEST: &[u8] = b"*3\r\n$3\r\nSET\r\n$13\r\nkey:000000042\r\n$10\r\n0123456789\r\n";
/// The matching GET.
const GET_REQUEST: &[u8] = b"*2\r\n$3\r\nGET\r\n$13\r\nkey:000000042\r\n";
/// An inline command, as typed into telnet.
const INLINE_REQUEST: &[u8] = b"SET key:000000042 0123456789\r\n";
/// Requests in one pipelined batch, as `redis-benchmark -P 16` sends them.
const PIPELINE: usize = 16;
/// The large value size.
const LARGE: usize = 64 * 1024;

/// The spec's request objects.
const JSON_SET: &[u8] = br#"{"command": "SET", "key": "user:123", "value": "John Doe"}"#;
const JSON_GET: &[u8] = br#"{"command": "GET", "key": "user:123"}"#;
const JSON_SET_TTL: &[u8] =
    br#"{"command": "SET", "key": "session:abc", "value": "xyz", "ttl": 60}"#;

/// Decodes every request in `input` with a fresh codec; returns how many.
fn decode_all<D>(mut codec: D, mut buf: BytesMut) -> usize
where
    D: Decoder<Item = Incoming>,
    D::Error: std::fmt::Debug,
{
    let mut n = 0;
    while let Some(item) = codec.decode(&mut buf).expect("benchmark input is valid") {
        black_box(item);
        n += 1;
    }
    n
}

fn resp_decode(c: &mut Criterion) {
    let pipeline: Vec<u8> = SET_REQUEST.repeat(PIPELINE / 2);
    let pipeline = [pipeline, GET_REQUEST.repeat(PIPELINE / 2)].concat();
    let mut large = format!("*3\r\n$3\r\nSET\r\n$9\r\nkey:large\r\n${LARGE}\r\n").into_bytes();
    large.extend(std::iter::repeat_n(b'x', LARGE));
    large.extend_from_slice(b"\r\n");

    let cases: [(&str, &[u8], u64); 5] = [
        ("set", SET_REQUEST, 1),
        ("get", GET_REQUEST, 1),
        ("inline_set", INLINE_REQUEST, 1),
        ("pipeline_16", &pipeline, PIPELINE as u64),
        ("set_64k_value", &large, 1),
    ];
    let mut group = c.benchmark_group("resp_decode");
    for (name, input, requests) in cases {
        group.throughput(Throughput::Elements(requests));
        group.bench_function(name, |b| {
            // The copy into a fresh buffer is setup, not measured: the node decodes in place
            // from its read buffer.
            b.iter_batched(
                || BytesMut::from(input),
                |buf| {
                    let n = decode_all(RespCodec::new(RespLimits::default()), buf);
                    debug_assert_eq!(n as u64, requests);
                    n
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    // A 64 KB value arriving in 4 KB reads: the codec keeps its place between reads.
    let mut group = c.benchmark_group("resp_decode_split");
    group.throughput(Throughput::Bytes(large.len() as u64));
    group.bench_function("set_64k_value_in_4k_reads", |b| {
        b.iter(|| {
            let mut codec = RespCodec::new(RespLimits::default());
            let mut buf = BytesMut::with_capacity(8 * 1024);
            let mut out = None;
            for chunk in large.chunks(4096) {
                buf.extend_from_slice(chunk);
                if let Some(item) = codec.decode(&mut buf).expect("valid") {
                    out = Some(item);
                }
            }
            out.expect("one request")
        })
    });
    group.finish();
}

fn resp_encode(c: &mut Criterion) {
    let value = Reply::Bulk(Bytes::from_static(b"0123456789"));
    let large = Reply::Bulk(Bytes::from(vec![b'x'; LARGE]));
    let mget = Reply::Array((0..PIPELINE).map(|_| value.clone()).collect());
    let stats = Reply::Map(
        [
            "total_requests",
            "get",
            "set",
            "delete",
            "expire",
            "total_keys",
            "keys_with_ttl",
        ]
        .map(|k| (Reply::bulk(k), Reply::Int(12345)))
        .to_vec(),
    );
    let cases: [(&str, &Reply); 6] = [
        ("ok", &Reply::ok()),
        ("bulk_10b", &value),
        ("nil", &Reply::Nil),
        ("bulk_64k", &large),
        ("array_16_bulks", &mget),
        ("stats_map", &stats),
    ];
    let mut group = c.benchmark_group("resp_encode");
    group.throughput(Throughput::Elements(1));
    for version in [2u8, 3] {
        let mut codec = RespCodec::new(RespLimits::default());
        codec.version = version;
        let mut buf = BytesMut::with_capacity(2 * LARGE);
        for (name, reply) in cases {
            group.bench_function(format!("resp{version}/{name}"), |b| {
                b.iter(|| {
                    buf.clear();
                    Encoder::<&Reply>::encode(&mut codec, black_box(reply), &mut buf)
                        .expect("encoding cannot fail");
                    buf.len()
                })
            });
        }
    }
    // A whole pipelined batch of replies into one write buffer, as a connection does: through
    // `Codec::encode`, each with its request's (generic) shape.
    group.throughput(Throughput::Elements(PIPELINE as u64));
    let mut codec = RespCodec::new(RespLimits::default());
    let mut buf = BytesMut::with_capacity(16 * 1024);
    group.bench_function("resp2/batch_16_ok", |b| {
        b.iter(|| {
            buf.clear();
            for _ in 0..PIPELINE {
                let shape = black_box(ReplyShape::generic());
                Codec::encode(&mut codec, &Reply::ok(), &shape, &mut buf).expect("encodes");
            }
            buf.len()
        })
    });
    group.finish();
}

fn json_decode(c: &mut Criterion) {
    let mut pipeline = Vec::new();
    for i in 0..PIPELINE {
        pipeline.extend_from_slice(if i % 2 == 0 { JSON_SET } else { JSON_GET });
        pipeline.push(b'\n');
    }
    let large = format!(
        r#"{{"command": "SET", "key": "blob", "value": "{}"}}"#,
        "x".repeat(LARGE)
    )
    .into_bytes();
    let cases: [(&str, &[u8], u64); 5] = [
        ("set", JSON_SET, 1),
        ("get", JSON_GET, 1),
        ("set_ttl", JSON_SET_TTL, 1),
        ("pipeline_16", &pipeline, PIPELINE as u64),
        ("set_64k_value", &large, 1),
    ];
    let mut group = c.benchmark_group("json_decode");
    for (name, input, requests) in cases {
        group.throughput(Throughput::Elements(requests));
        group.bench_function(name, |b| {
            b.iter_batched(
                || BytesMut::from(input),
                |buf| decode_all(JsonCodec::new(1, JsonLimits::default()), buf),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn json_encode(c: &mut Criterion) {
    let get_reply = Reply::Array(vec![
        Reply::Bulk(Bytes::from_static(b"John Doe")),
        Reply::Int(-1),
    ]);
    let stats = Reply::Map(
        [
            "total_requests",
            "get",
            "set",
            "delete",
            "expire",
            "total_keys",
            "keys_with_ttl",
        ]
        .map(|k| (Reply::bulk(k), Reply::Int(12345)))
        .to_vec(),
    );
    let keys = Reply::Array((0..100).map(|i| Reply::bulk(format!("user:{i}"))).collect());
    let cases: [(&str, &[u8], &Reply); 5] = [
        ("set", JSON_SET, &Reply::ok()),
        ("get", JSON_GET, &get_reply),
        ("get_not_found", JSON_GET, &Reply::Nil),
        ("stats", br#"{"command": "STATS"}"#, &stats),
        ("keys_100", br#"{"command": "KEYS"}"#, &keys),
    ];
    let mut group = c.benchmark_group("json_encode");
    group.throughput(Throughput::Elements(1));
    for (name, request, reply) in cases {
        // A reply is shaped after the request it answers: decode that request (unmeasured)
        // for its shape.
        let mut codec = JsonCodec::new(1, JsonLimits::default());
        let Ok(Some(Incoming::Request(_, shape))) = codec.decode(&mut BytesMut::from(request))
        else {
            panic!("{name}: the request decodes");
        };
        let mut out = BytesMut::with_capacity(4096);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                codec.encode(reply, &shape, &mut out).expect("encodes");
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, resp_decode, resp_encode, json_decode, json_encode);
criterion_main!(benches);
