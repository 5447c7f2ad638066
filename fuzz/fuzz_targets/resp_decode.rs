//! Fuzzes the RESP request decoder (`RespCodec`) with arbitrary bytes.
//!
//! The first input byte picks how the rest is cut into reads; the rest is the byte stream.
//! Checked on every input:
//! - decoding never panics, every `Some` consumes input, and the loop always stops;
//! - the stream decodes to the same requests and the same final outcome (error text, or the
//!   same undecoded tail) whether it arrives in one read or in many (default limits, which
//!   fuzz-sized inputs never reach, so read boundaries cannot matter);
//! - every decoded request, re-encoded as a multibulk, decodes back to exactly its args;
//! - HTTP (`Incoming::CrossProtocol`) ends the stream at the same request either way;
//! - with tiny limits (so the limit paths are reached) decoding still never panics.

#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use minikv::protocol::resp::{RespCodec, RespLimits};
use minikv::protocol::Incoming;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let limits = RespLimits::default();
    let whole = decode(limits, input, &[input.len()]);
    let chunked = decode(limits, input, &chunk_sizes(seed, input.len()));
    assert_eq!(whole, chunked, "read boundaries changed the outcome");

    for args in &whole.requests {
        let mut encoded = BytesMut::new();
        encode_multibulk(args, &mut encoded);
        let again = decode(limits, &encoded, &[encoded.len()]);
        assert_eq!(again.requests, vec![args.clone()], "re-encoded request");
        assert_eq!(again.end, End::Drained, "re-encoded request leaves nothing");
    }

    let tiny = RespLimits {
        max_bulk_len: 8,
        max_multibulk_len: 4,
        max_inline_len: 16,
        ..RespLimits::default()
    };
    decode(tiny, input, &[input.len()]);
    decode(tiny, input, &chunk_sizes(seed, input.len()));
});

/// What decoding a whole stream produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    requests: Vec<Vec<Vec<u8>>>,
    end: End,
}

#[derive(Debug, PartialEq)]
enum End {
    /// Everything was consumed.
    Drained,
    /// HTTP came after these requests; the connection would close here.
    CrossProtocol,
    /// The decoder waits for more: these bytes are still buffered, and this is what
    /// `decode_eof` then said.
    Waiting(Vec<u8>, String),
    /// A protocol error.
    Error(String),
}

/// Feeds `input` in reads of the given sizes (then one byte at a time), decoding after each
/// read until the codec needs more; at the end of the input calls `decode_eof` once.
fn decode(limits: RespLimits, input: &[u8], sizes: &[usize]) -> Outcome {
    let mut codec = RespCodec::new(limits);
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
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
                Ok(Some(Incoming::Request(r, _))) => {
                    assert!(buf.len() < before, "a decoded request consumed no input");
                    assert!(!r.args.is_empty(), "empty requests are skipped");
                    requests.push(r.args.iter().map(|a| a.to_vec()).collect());
                }
                Ok(Some(Incoming::Invalid(e))) => panic!("RESP never yields Invalid: {e}"),
                Ok(Some(Incoming::CrossProtocol)) => {
                    return Outcome {
                        requests,
                        end: End::CrossProtocol,
                    }
                }
                Ok(None) => {
                    waiting = true;
                    break;
                }
                Err(e) => {
                    return Outcome {
                        requests,
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
    Outcome { requests, end }
}

/// Read sizes derived from `seed`: from one byte at a time up to whole kilobytes.
fn chunk_sizes(seed: u8, len: usize) -> Vec<usize> {
    let cap = [1, 2, 3, 5, 8, 64, 512, 4096][usize::from(seed & 7)];
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

fn encode_multibulk(args: &[Vec<u8>], dst: &mut BytesMut) {
    dst.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        dst.put_slice(format!("${}\r\n", arg.len()).as_bytes());
        dst.put_slice(arg);
        dst.put_slice(b"\r\n");
    }
}
