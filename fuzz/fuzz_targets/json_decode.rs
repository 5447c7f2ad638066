//! Fuzzes the JSON request decoder (`JsonCodec`) with arbitrary bytes.
//!
//! The first input byte picks how the rest is cut into reads and which reply is encoded for
//! each decoded request; the rest is the byte stream. Checked on every input:
//! - decoding never panics, every `Some` consumes input, and the loop always stops;
//! - the stream decodes to the same items and the same final outcome whether it arrives in
//!   one read or in many;
//! - every decoded item (request or invalid request) gets a reply, in the item's own reply
//!   shape, that encodes to one line of valid JSON carrying the node's `server_id`;
//! - with tiny limits (so the size and depth paths are reached) decoding still never panics.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use minikv::protocol::json::{JsonCodec, JsonLimits};
use minikv::protocol::{Codec, Incoming, Reply, ReplyShape};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let limits = JsonLimits::default();
    let whole = decode(limits, input, &[input.len()], seed);
    let chunked = decode(limits, input, &chunk_sizes(seed, input.len()), seed);
    assert_eq!(whole, chunked, "read boundaries changed the outcome");

    let tiny = JsonLimits {
        max_object_len: 24,
        max_depth: 3,
    };
    decode(tiny, input, &[input.len()], seed);
    decode(tiny, input, &chunk_sizes(seed, input.len()), seed);
});

/// What decoding a whole stream produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    items: Vec<Incoming>,
    end: End,
}

#[derive(Debug, PartialEq)]
enum End {
    /// Everything was consumed.
    Drained,
    /// The decoder waits for more: these bytes are still buffered, and this is what
    /// `decode_eof` then said.
    Waiting(Vec<u8>, String),
    /// A protocol error.
    Error(String),
}

/// Feeds `input` in reads of the given sizes (then one byte at a time), decoding after each
/// read until the codec needs more and answering every item; at the end of the input calls
/// `decode_eof` once.
fn decode(limits: JsonLimits, input: &[u8], sizes: &[usize], seed: u8) -> Outcome {
    let mut codec = JsonCodec::new(7, limits);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut sizes = sizes.iter().copied().chain(std::iter::repeat(1));
    let mut fed = 0;
    while fed < input.len() {
        let n = sizes.next().unwrap_or(1).clamp(1, input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        // Each `Some` consumes at least one byte, so this many steps always suffice.
        let mut waiting = false;
        for _ in 0..=input.len() {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(item)) => {
                    assert!(buf.len() < before, "a decoded item consumed no input");
                    answer(&mut codec, &item, seed);
                    items.push(item);
                }
                Ok(None) => {
                    waiting = true;
                    break;
                }
                Err(e) => {
                    return Outcome {
                        items,
                        end: End::Error(e.to_string()),
                    }
                }
            }
        }
        assert!(waiting, "the decoder did not stop");
    }
    let tail = buf.to_vec();
    let eof = match codec.decode_eof(&mut buf) {
        Ok(Some(item)) => panic!("decode_eof produced {item:?} after decode said None"),
        Ok(None) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    let end = if tail.is_empty() {
        assert_eq!(eof, "ok", "decode_eof on an empty buffer");
        End::Drained
    } else {
        End::Waiting(tail, eof)
    };
    Outcome { items, end }
}

/// Encodes a reply for `item` (one of several replies, picked by `seed`, in the item's reply
/// shape) and checks that it is one line of JSON with the node's id.
fn answer(codec: &mut JsonCodec, item: &Incoming, seed: u8) {
    let generic = ReplyShape::generic();
    let (reply, shape) = match item {
        Incoming::Invalid(message) => (Reply::Error(message.clone().into()), &generic),
        Incoming::Request(_, shape) => (reply_for(seed), shape),
        Incoming::CrossProtocol => panic!("only RESP recognises HTTP"),
    };
    let mut out = BytesMut::new();
    codec
        .encode(&reply, shape, &mut out)
        .expect("replies always encode");
    assert_eq!(out.last(), Some(&b'\n'), "a reply is one line");
    assert_eq!(
        out.iter().filter(|&&b| b == b'\n').count(),
        1,
        "a reply is exactly one line"
    );
    let value: serde_json::Value =
        serde_json::from_slice(&out[..out.len() - 1]).expect("a reply is valid JSON");
    assert_eq!(value["server_id"], 7, "every reply carries server_id");
}

/// One of the replies commands give, picked by `seed`.
fn reply_for(seed: u8) -> Reply {
    match seed % 8 {
        0 => Reply::ok(),
        1 => Reply::Nil,
        2 => Reply::Int(i64::from(seed) - 100),
        3 => Reply::Array(vec![Reply::bulk(b"v\xff"), Reply::Int(-1)]),
        4 => Reply::error("ERR wrong type"),
        5 => Reply::Bulk(Bytes::from_static(b"\x00\x80\"}")),
        6 => Reply::Map(vec![(Reply::bulk("k"), Reply::Double(1.5))]),
        _ => Reply::Array(vec![Reply::bulk("a"), Reply::Nil, Reply::Bool(true)]),
    }
}

/// Read sizes derived from `seed`: from one byte at a time up to whole kilobytes.
fn chunk_sizes(seed: u8, len: usize) -> Vec<usize> {
    let cap = [1, 2, 3, 5, 8, 64, 512, 4096][usize::from(seed >> 5)];
    let mut state = u32::from(seed) | 0x9e37_7900;
    let mut sizes = Vec::new();
    let mut total = 0;
    while total < len {
        // xorshift32: cheap and deterministic, so a crash reproduces from its input alone.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = 1 + (state as usize) % cap;
        sizes.push(size);
        total += size;
    }
    sizes
}
