//! Property tests (proptest) for the hostile-input surfaces and the store's TTL bookkeeping.
//!
//! - RESP replies: any `Reply` tree encoded by `resp::encode_reply` decodes with the independent
//!   `redis_protocol` crate (RESP2 and RESP3) to the corresponding frame.
//! - RESP requests: any list of binary arguments, sent as a multibulk (or as a quoted inline
//!   line) and cut into arbitrary reads, decodes with `RespCodec` to exactly those arguments.
//! - Arbitrary bytes never panic `RespCodec` or `JsonCodec`, and decoding always stops.
//! - JSON requests built from the spec's fields decode to the expected `Request`.
//! - The store (shards of one `Db`) matches a `HashMap` model with deadlines under random
//!   operations on an explicit virtual clock; expired keys are never returned or counted.
//! - Commands run through `Session::execute` match a model of Redis's semantics.
//! - KEYS glob matching agrees with a textbook matcher on `*`/`?` patterns.
//!
//! Each property runs proptest's default 256 cases; the file takes a few seconds in a debug
//! build. A failing case is shrunk and printed, and its seed saved in
//! `tests/properties.proptest-regressions`, which proptest replays first on every later run:
//! commit that file with the fix.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use common::raw::resp_from;
use common::session;
use minikv::node::Node;
use minikv::protocol::json::{JsonCodec, JsonLimits};
use minikv::protocol::resp::{encode_reply, RespCodec, RespLimits};
use minikv::protocol::{Incoming, Reply, Request, Strings};
use minikv::store::{clock, pattern, Entry, Store, Value as StoreValue};
use minikv::NodeConfig;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use redis_protocol::resp2::types::OwnedFrame as Frame2;
use redis_protocol::resp3::types::{
    FrameMap, FrameSet, OwnedFrame as Frame3, VerbatimStringFormat,
};
use serde_json::{json, Map, Value};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

// ---------------------------------------------------------------------------------------------
// RESP replies against redis_protocol
// ---------------------------------------------------------------------------------------------

/// Scalars that can be map keys and set members in RESP3 (`redis_protocol` hashes them).
/// Doubles are left out: `0.0 == -0.0` but they hash differently, which makes two equal maps
/// compare unequal.
fn key_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        "[^\r\n]{0,12}".prop_map(|s| Reply::Simple(s.into())),
        any::<String>().prop_map(|s| Reply::Error(s.into())),
        "[a-z \r\n]{0,12}".prop_map(|s| Reply::Error(s.into())),
        any::<i64>().prop_map(Reply::Int),
        vec(any::<u8>(), 0..40).prop_map(|b| Reply::Bulk(b.into())),
        Just(Reply::Nil),
        Just(Reply::NilArray),
        any::<bool>().prop_map(Reply::Bool),
        vec(any::<u8>(), 0..20).prop_map(|b| Reply::Verbatim(b.into())),
    ]
}

fn scalar_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        4 => key_reply(),
        1 => any::<f64>()
            .prop_filter("finite", |d| d.is_finite())
            .prop_map(Reply::Double),
    ]
}

/// Any reply tree: arrays, maps and sets nested up to depth 3 around scalars.
fn reply_tree() -> impl Strategy<Value = Reply> {
    scalar_reply().prop_recursive(3, 48, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Reply::Array),
            vec((key_reply(), inner), 0..5).prop_map(|pairs| Reply::Map(unique_keys(pairs))),
            vec(key_reply(), 0..5).prop_map(Reply::Set),
            vec(vec(any::<u8>(), 0..12), 0..6).prop_map(|items| {
                let mut strings = Strings::with_capacity(items.len(), 0);
                items.iter().for_each(|s| strings.push(s));
                Reply::Strings(strings)
            }),
        ]
    })
}

/// Drops pairs whose key repeats an earlier one (as a frame: `Nil` and `NilArray` are both
/// RESP3 null). Map keys are unique in RESP3, and `redis_protocol` keeps the first of two equal
/// keys where a `HashMap` built from the pairs keeps the last.
fn unique_keys(pairs: Vec<(Reply, Reply)>) -> Vec<(Reply, Reply)> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (k, v) in pairs {
        let frame = resp3_frame(&k);
        if !seen.contains(&frame) {
            seen.push(frame);
            out.push((k, v));
        }
    }
    out
}

/// An error's text as it must arrive: CR and LF would break the framing, so both become spaces.
fn sanitized(error: &str) -> String {
    error.replace(['\r', '\n'], " ")
}

/// Checks a RESP2 frame against the reply it should carry.
fn check_resp2(reply: &Reply, frame: &Frame2) -> Result<(), TestCaseError> {
    match (reply, frame) {
        (Reply::Simple(s), Frame2::SimpleString(got)) => prop_assert_eq!(s.as_bytes(), &got[..]),
        (Reply::Error(e), Frame2::Error(got)) => prop_assert_eq!(&sanitized(e), got),
        (Reply::Int(n), Frame2::Integer(got)) => prop_assert_eq!(n, got),
        (Reply::Bulk(b) | Reply::Verbatim(b), Frame2::BulkString(got)) => {
            prop_assert_eq!(&b[..], &got[..])
        }
        (Reply::Nil | Reply::NilArray, Frame2::Null) => {}
        (Reply::Bool(b), Frame2::Integer(got)) => prop_assert_eq!(i64::from(*b), *got),
        (Reply::Double(d), Frame2::BulkString(text)) => {
            let parsed: f64 = std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| TestCaseError::fail(format!("not a number: {text:?}")))?;
            prop_assert_eq!(parsed, *d);
        }
        (Reply::Array(items) | Reply::Set(items), Frame2::Array(frames)) => {
            prop_assert_eq!(items.len(), frames.len());
            for (item, frame) in items.iter().zip(frames) {
                check_resp2(item, frame)?;
            }
        }
        (Reply::Strings(strings), Frame2::Array(frames)) => {
            prop_assert_eq!(strings.len(), frames.len());
            for (s, frame) in strings.iter().zip(frames) {
                prop_assert_eq!(frame, &Frame2::BulkString(s.to_vec()));
            }
        }
        (Reply::Map(pairs), Frame2::Array(frames)) => {
            prop_assert_eq!(pairs.len() * 2, frames.len());
            for ((k, v), kv) in pairs.iter().zip(frames.chunks(2)) {
                check_resp2(k, &kv[0])?;
                check_resp2(v, &kv[1])?;
            }
        }
        (reply, frame) => {
            return Err(TestCaseError::fail(format!(
                "{reply:?} arrived as {frame:?}"
            )))
        }
    }
    Ok(())
}

/// The RESP3 frame a reply must decode to.
fn resp3_frame(reply: &Reply) -> Frame3 {
    let attributes = None;
    match reply {
        Reply::Simple(s) => Frame3::SimpleString {
            data: s.as_bytes().to_vec(),
            attributes,
        },
        Reply::Error(e) => Frame3::SimpleError {
            data: sanitized(e),
            attributes,
        },
        Reply::Int(n) => Frame3::Number {
            data: *n,
            attributes,
        },
        Reply::Bulk(b) => Frame3::BlobString {
            data: b.to_vec(),
            attributes,
        },
        Reply::Nil | Reply::NilArray => Frame3::Null,
        Reply::Array(items) => Frame3::Array {
            data: items.iter().map(resp3_frame).collect(),
            attributes,
        },
        Reply::Map(pairs) => Frame3::Map {
            data: pairs
                .iter()
                .map(|(k, v)| (resp3_frame(k), resp3_frame(v)))
                .collect::<FrameMap<_, _>>(),
            attributes,
        },
        Reply::Set(items) => Frame3::Set {
            data: items.iter().map(resp3_frame).collect::<FrameSet<_>>(),
            attributes,
        },
        Reply::Double(d) => Frame3::Double {
            data: *d,
            attributes,
        },
        Reply::Bool(b) => Frame3::Boolean {
            data: *b,
            attributes,
        },
        Reply::Verbatim(b) => Frame3::VerbatimString {
            data: b.to_vec(),
            format: VerbatimStringFormat::Text,
            attributes,
        },
        Reply::Push(items) => Frame3::Push {
            data: items.iter().map(resp3_frame).collect(),
            attributes,
        },
        Reply::Strings(strings) => Frame3::Array {
            data: strings
                .iter()
                .map(|s| Frame3::BlobString {
                    data: s.to_vec(),
                    attributes: None,
                })
                .collect(),
            attributes,
        },
    }
}

proptest! {
    #[test]
    fn encoded_replies_decode_with_redis_protocol_resp2(reply in reply_tree()) {
        let mut out = BytesMut::new();
        encode_reply(&reply, false, &mut out);
        let (frame, used) = redis_protocol::resp2::decode::decode(&out)
            .map_err(|e| TestCaseError::fail(format!("{e:?} decoding {out:?}")))?
            .ok_or_else(|| TestCaseError::fail("incomplete frame"))?;
        prop_assert_eq!(used, out.len(), "one reply, one frame");
        check_resp2(&reply, &frame)?;
    }

    #[test]
    fn encoded_replies_decode_with_redis_protocol_resp3(reply in reply_tree()) {
        let mut out = BytesMut::new();
        encode_reply(&reply, true, &mut out);
        let (frame, used) = redis_protocol::resp3::decode::complete::decode(&out)
            .map_err(|e| TestCaseError::fail(format!("{e:?} decoding {out:?}")))?
            .ok_or_else(|| TestCaseError::fail("incomplete frame"))?;
        prop_assert_eq!(used, out.len(), "one reply, one frame");
        prop_assert_eq!(frame, resp3_frame(&reply));
    }
}

// ---------------------------------------------------------------------------------------------
// RESP requests through RespCodec
// ---------------------------------------------------------------------------------------------

/// Decodes `input` fed in reads of the given sizes (cycled), returning every request's
/// arguments, or the protocol error.
fn resp_decode_chunked(input: &[u8], sizes: &[usize]) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let mut codec = RespCodec::new(RespLimits::default());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    let mut sizes = sizes.iter().cycle();
    while fed < input.len() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        loop {
            let before = buf.len();
            match codec.decode(&mut buf).map_err(|e| e.to_string())? {
                Some(Incoming::Request(r, _)) => {
                    assert!(buf.len() < before, "a request must consume input");
                    out.push(r.args.iter().map(|a| a.to_vec()).collect());
                }
                Some(Incoming::Invalid(e)) => return Err(format!("Invalid({e})")),
                Some(Incoming::CrossProtocol) => return Err("CrossProtocol".into()),
                None => break,
            }
        }
    }
    if !buf.is_empty() {
        return Err(format!("{} bytes left over", buf.len()));
    }
    Ok(out)
}

/// One inline line: every argument double-quoted, every byte written as `\xHH`, except
/// letters and digits, which go as themselves.
fn inline(args: &[Vec<u8>], dst: &mut Vec<u8>) {
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            dst.push(b' ');
        }
        dst.push(b'"');
        for &b in arg {
            if b.is_ascii_alphanumeric() {
                dst.push(b);
            } else {
                dst.extend_from_slice(format!("\\x{b:02x}").as_bytes());
            }
        }
        dst.push(b'"');
    }
    dst.extend_from_slice(b"\r\n");
}

fn request_args() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(vec(any::<u8>(), 0..48), 1..6)
}

proptest! {
    #[test]
    fn multibulk_requests_decode_to_their_args_in_any_chunking(
        requests in vec(request_args(), 1..5),
        sizes in vec(1usize..40, 1..8),
    ) {
        let mut input = Vec::new();
        for args in &requests {
            input.extend(resp_from(args));
        }
        prop_assert_eq!(resp_decode_chunked(&input, &[input.len()]), Ok(requests.clone()));
        prop_assert_eq!(resp_decode_chunked(&input, &sizes), Ok(requests));
    }

    #[test]
    fn quoted_inline_requests_decode_to_their_args_in_any_chunking(
        requests in vec(request_args(), 1..5),
        sizes in vec(1usize..40, 1..8),
    ) {
        let mut input = Vec::new();
        for args in &requests {
            inline(args, &mut input);
        }
        prop_assert_eq!(resp_decode_chunked(&input, &sizes), Ok(requests));
    }

    #[test]
    fn multibulk_and_inline_requests_mix_in_one_stream(
        requests in vec((any::<bool>(), request_args()), 1..6),
        sizes in vec(1usize..40, 1..8),
    ) {
        let mut input = Vec::new();
        for (as_inline, args) in &requests {
            if *as_inline {
                inline(args, &mut input);
            } else {
                input.extend(resp_from(args));
            }
        }
        let want: Vec<_> = requests.into_iter().map(|(_, args)| args).collect();
        prop_assert_eq!(resp_decode_chunked(&input, &sizes), Ok(want));
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary bytes never panic the decoders
// ---------------------------------------------------------------------------------------------

/// Byte soup biased towards protocol tokens, so that inputs get past the first header.
fn resp_soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        select(vec![
            &b"*"[..],
            b"$",
            b"\r\n",
            b"\r",
            b"\n",
            b"*1\r\n",
            b"*2\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"$0\r\n",
            b"$-1\r\n",
            b"$3\r\nfoo\r\n",
            b"$536870912\r\n",
            b"*1048577\r\n",
            b"*99999999999999999999\r\n",
            b"\"",
            b"'",
            b"\\x4",
            b"\\",
            b" ",
            b"-0",
            b"01",
        ])
        .prop_map(<[u8]>::to_vec),
        vec(any::<u8>(), 0..8),
        "[0-9]{1,4}".prop_map(String::into_bytes),
    ];
    vec(token, 0..40).prop_map(|t| t.concat())
}

fn json_soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        select(vec![
            &b"{"[..],
            b"}",
            b"[",
            b"]",
            b"\"",
            b"\\",
            b"\\\"",
            b":",
            b",",
            b" ",
            b"\n",
            b"\"command\"",
            b"\"key\"",
            b"\"key_base64\"",
            b"\"value\"",
            b"\"value_base64\"",
            b"\"ttl\"",
            b"\"db\"",
            b"\"args\"",
            b"\"pattern\"",
            b"\"SET\"",
            b"\"GET\"",
            b"\"EXPIRE\"",
            b"\"KEYS\"",
            b"null",
            b"1e400",
            b"-1",
            b"\"/w==\"",
            b"\"\\ud800\"",
        ])
        .prop_map(<[u8]>::to_vec),
        vec(any::<u8>(), 0..8),
    ];
    vec(token, 0..60).prop_map(|t| t.concat())
}

/// Feeds `input` to `codec` in reads of the given sizes, decoding until it needs more; then
/// `decode_eof`. Panics (failing the property) if a decoded item consumes nothing or the
/// decoder never stops.
fn decode_never_panics<D: Decoder<Item = Incoming>>(mut codec: D, input: &[u8], sizes: &[usize]) {
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut sizes = sizes.iter().cycle();
    while fed < input.len() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        let mut stopped = false;
        for _ in 0..=input.len() {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(_)) => assert!(buf.len() < before, "an item consumed no input"),
                Ok(None) => {
                    stopped = true;
                    break;
                }
                Err(_) => return,
            }
        }
        assert!(stopped, "the decoder did not stop");
    }
    for _ in 0..=input.len() {
        let before = buf.len();
        match codec.decode_eof(&mut buf) {
            Ok(Some(_)) => assert!(buf.len() < before, "an item consumed no input"),
            Ok(None) | Err(_) => return,
        }
    }
    panic!("decode_eof did not stop");
}

/// Tiny limits, so that fuzz-sized inputs reach the limit checks.
fn tiny_resp_limits() -> RespLimits {
    RespLimits {
        max_bulk_len: 8,
        max_multibulk_len: 4,
        max_inline_len: 16,
        ..RespLimits::default()
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_resp_decoder(
        input in prop_oneof![vec(any::<u8>(), 0..512), resp_soup()],
        sizes in vec(1usize..64, 1..6),
    ) {
        decode_never_panics(RespCodec::new(RespLimits::default()), &input, &[input.len()]);
        decode_never_panics(RespCodec::new(RespLimits::default()), &input, &sizes);
        decode_never_panics(RespCodec::new(tiny_resp_limits()), &input, &sizes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_json_decoder(
        input in prop_oneof![vec(any::<u8>(), 0..512), json_soup()],
        sizes in vec(1usize..64, 1..6),
    ) {
        let codec = || JsonCodec::new(1, JsonLimits::default());
        decode_never_panics(codec(), &input, &[input.len()]);
        decode_never_panics(codec(), &input, &sizes);
        let tiny = JsonLimits { max_object_len: 32, max_depth: 2 };
        decode_never_panics(JsonCodec::new(1, tiny), &input, &sizes);
    }
}

// ---------------------------------------------------------------------------------------------
// JSON requests from the spec's fields
// ---------------------------------------------------------------------------------------------

/// A key or value as the JSON protocol carries it.
#[derive(Debug, Clone)]
enum Field {
    /// `"key": "text"`.
    Text(String),
    /// `"key": 42` (clients send numbers; they arrive as their decimal text).
    Number(i64),
    /// `"key_base64": "..."`.
    Base64(Vec<u8>),
}

impl Field {
    fn put(&self, object: &mut Map<String, Value>, name: &str) {
        match self {
            Field::Text(s) => object.insert(name.into(), json!(s)),
            Field::Number(n) => object.insert(name.into(), json!(n)),
            Field::Base64(b) => object.insert(
                format!("{name}_base64"),
                json!(base64::engine::general_purpose::STANDARD.encode(b)),
            ),
        };
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Field::Text(s) => s.clone().into_bytes(),
            Field::Number(n) => n.to_string().into_bytes(),
            Field::Base64(b) => b.clone(),
        }
    }
}

#[derive(Debug, Clone)]
enum JsonRequest {
    Set {
        key: Field,
        value: Field,
        ttl: Option<i64>,
    },
    Get {
        key: Field,
    },
    Delete {
        key: Field,
        name: &'static str,
    },
    Expire {
        key: Field,
        ttl: i64,
    },
    Stats,
    Keys {
        pattern: Option<Option<String>>,
    },
    Ping,
    /// The generic form: `{"command": "incrby", "args": ["k", 5]}`.
    Generic {
        command: String,
        args: Vec<Field>,
    },
    /// A request whose key is missing: answered with an error, the connection goes on.
    MissingKey {
        command: &'static str,
    },
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        any::<String>().prop_map(Field::Text),
        "[a-z:{}\"\\\\\n\t\u{0}\u{7f}]{0,8}".prop_map(Field::Text),
        any::<i64>().prop_map(Field::Number),
        vec(any::<u8>(), 0..16).prop_map(Field::Base64),
    ]
}

fn json_request() -> impl Strategy<Value = JsonRequest> {
    prop_oneof![
        (field(), field(), proptest::option::of(any::<i64>()))
            .prop_map(|(key, value, ttl)| JsonRequest::Set { key, value, ttl }),
        field().prop_map(|key| JsonRequest::Get { key }),
        (field(), select(vec!["DELETE", "DEL"]))
            .prop_map(|(key, name)| JsonRequest::Delete { key, name }),
        (field(), any::<i64>()).prop_map(|(key, ttl)| JsonRequest::Expire { key, ttl }),
        Just(JsonRequest::Stats),
        proptest::option::of(proptest::option::of(any::<String>()))
            .prop_map(|pattern| JsonRequest::Keys { pattern }),
        Just(JsonRequest::Ping),
        (
            "[a-z]{1,10}",
            vec(
                prop_oneof![
                    any::<String>().prop_map(Field::Text),
                    any::<i64>().prop_map(Field::Number),
                ],
                0..4
            )
        )
            .prop_map(|(command, args)| JsonRequest::Generic { command, args }),
        select(vec!["SET", "GET", "DELETE", "EXPIRE"])
            .prop_map(|command| JsonRequest::MissingKey { command }),
    ]
}

/// Writes `name` in a mix of upper and lower case (command names are case-insensitive).
fn mixed_case(name: &str, mask: u32) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 32) & 1 == 1 {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

impl JsonRequest {
    /// The wire object and what the decoder must make of it.
    fn render(&self, case_mask: u32, db: Option<i64>) -> (Value, Result<Request, String>) {
        let mut object = Map::new();
        let args: Vec<Vec<u8>> = match self {
            JsonRequest::Set { key, value, ttl } => {
                object.insert("command".into(), json!(mixed_case("set", case_mask)));
                key.put(&mut object, "key");
                value.put(&mut object, "value");
                let mut args = vec![b"SET".to_vec(), key.bytes(), value.bytes()];
                if let Some(ttl) = ttl {
                    object.insert("ttl".into(), json!(ttl));
                    args.push(b"EX".to_vec());
                    args.push(ttl.to_string().into_bytes());
                }
                args
            }
            JsonRequest::Get { key } => {
                object.insert("command".into(), json!(mixed_case("get", case_mask)));
                key.put(&mut object, "key");
                vec![b"GETWITHTTL".to_vec(), key.bytes()]
            }
            JsonRequest::Delete { key, name } => {
                object.insert("command".into(), json!(mixed_case(name, case_mask)));
                key.put(&mut object, "key");
                vec![b"DEL".to_vec(), key.bytes()]
            }
            JsonRequest::Expire { key, ttl } => {
                object.insert("command".into(), json!(mixed_case("expire", case_mask)));
                key.put(&mut object, "key");
                object.insert("ttl".into(), json!(ttl));
                vec![
                    b"EXPIRE".to_vec(),
                    key.bytes(),
                    ttl.to_string().into_bytes(),
                ]
            }
            JsonRequest::Stats => {
                object.insert("command".into(), json!(mixed_case("stats", case_mask)));
                vec![b"STATS".to_vec()]
            }
            JsonRequest::Keys { pattern } => {
                object.insert("command".into(), json!(mixed_case("keys", case_mask)));
                let sent = match pattern {
                    None => b"*".to_vec(),
                    Some(None) => {
                        object.insert("pattern".into(), Value::Null);
                        b"*".to_vec()
                    }
                    Some(Some(p)) => {
                        object.insert("pattern".into(), json!(p));
                        p.clone().into_bytes()
                    }
                };
                vec![b"KEYS".to_vec(), sent]
            }
            JsonRequest::Ping => {
                object.insert("command".into(), json!(mixed_case("ping", case_mask)));
                vec![b"PING".to_vec()]
            }
            JsonRequest::Generic { command, args } => {
                object.insert("command".into(), json!(mixed_case(command, case_mask)));
                let mut list = Vec::new();
                for arg in args {
                    let mut one = Map::new();
                    arg.put(&mut one, "x");
                    list.push(one.remove("x").expect("text or number"));
                }
                object.insert("args".into(), Value::Array(list));
                let mut all = vec![command.to_ascii_uppercase().into_bytes()];
                all.extend(args.iter().map(Field::bytes));
                all
            }
            JsonRequest::MissingKey { command } => {
                object.insert("command".into(), json!(mixed_case(command, case_mask)));
                if let Some(db) = db {
                    object.insert("db".into(), json!(db));
                }
                let missing = Err("missing field 'key'".into());
                return (Value::Object(object), missing);
            }
        };
        if let Some(db) = db {
            object.insert("db".into(), json!(db));
        }
        let mut request = Request::new(args);
        request.db = db;
        (Value::Object(object), Ok(request))
    }
}

proptest! {
    #[test]
    fn json_requests_decode_to_the_expected_request(
        requests in vec(
            (json_request(), any::<u32>(), proptest::option::of(-2i64..20), 0usize..4),
            1..6,
        ),
        sizes in vec(1usize..48, 1..6),
    ) {
        let separators: [&[u8]; 4] = [b"", b" ", b"\n", b"\r\n\t "];
        let mut input = Vec::new();
        let mut want = Vec::new();
        for (request, case_mask, db, separator) in &requests {
            let (object, expected) = request.render(*case_mask, *db);
            input.extend_from_slice(&serde_json::to_vec(&object).expect("serialisable"));
            input.extend_from_slice(separators[*separator]);
            want.push(expected);
        }
        let mut codec = JsonCodec::new(1, JsonLimits::default());
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut fed = 0;
        let mut sizes = sizes.iter().cycle();
        while fed < input.len() {
            let n = (*sizes.next().expect("non-empty")).clamp(1, input.len() - fed);
            buf.extend_from_slice(&input[fed..fed + n]);
            fed += n;
            while let Some(item) = codec
                .decode(&mut buf)
                .map_err(|e| TestCaseError::fail(format!("{e} on {}", String::from_utf8_lossy(&input))))?
            {
                // The reply shape is opaque; `tests/json.rs` checks the replies it shapes.
                got.push(match item {
                    Incoming::Request(request, _) => Ok(request),
                    Incoming::Invalid(message) => Err(message),
                    Incoming::CrossProtocol => Err("JSON never yields CrossProtocol".into()),
                });
            }
        }
        prop_assert_eq!(codec.decode_eof(&mut buf).map_err(|e| e.to_string()), Ok(None));
        prop_assert_eq!(got, want);
    }
}

// ---------------------------------------------------------------------------------------------
// The store against a HashMap model on a virtual clock
// ---------------------------------------------------------------------------------------------

/// Keys from a small set, so that operations often meet the same key.
const KEYS: [&[u8]; 8] = [b"", b"a", b"b", b"ab", b"ba", b"abc", b"c", b"bb"];

#[derive(Debug, Clone)]
enum StoreOp {
    /// `Shard::put` with a deadline `ttl_ms` from now (0 = already due).
    Put {
        key: &'static [u8],
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    },
    /// `Shard::insert`, which also returns the previous live entry.
    Insert {
        key: &'static [u8],
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    },
    Get(&'static [u8]),
    Value(&'static [u8]),
    Contains(&'static [u8]),
    Deadline(&'static [u8]),
    Remove(&'static [u8]),
    Delete(&'static [u8]),
    /// `Shard::set_deadline`; `None` is PERSIST.
    SetDeadline(&'static [u8], Option<u64>),
    Advance(u64),
    Purge,
    Counts,
    /// `Db::keys` with `*` or a one-letter prefix pattern like `a*`.
    Keys(Option<u8>),
    Export,
}

fn store_op() -> impl Strategy<Value = StoreOp> {
    let key = || select(KEYS.to_vec());
    let ttl = || proptest::option::of(prop_oneof![Just(0u64), 1u64..3000]);
    prop_oneof![
        4 => (key(), vec(any::<u8>(), 0..6), ttl())
            .prop_map(|(key, value, ttl_ms)| StoreOp::Put { key, value, ttl_ms }),
        2 => (key(), vec(any::<u8>(), 0..6), ttl())
            .prop_map(|(key, value, ttl_ms)| StoreOp::Insert { key, value, ttl_ms }),
        3 => key().prop_map(StoreOp::Get),
        1 => key().prop_map(StoreOp::Value),
        1 => key().prop_map(StoreOp::Contains),
        1 => key().prop_map(StoreOp::Deadline),
        1 => key().prop_map(StoreOp::Remove),
        1 => key().prop_map(StoreOp::Delete),
        2 => (key(), ttl()).prop_map(|(k, t)| StoreOp::SetDeadline(k, t)),
        3 => prop_oneof![Just(0u64), 1u64..1500].prop_map(StoreOp::Advance),
        1 => Just(StoreOp::Purge),
        1 => Just(StoreOp::Counts),
        1 => proptest::option::of(select(vec![b'a', b'b', b'c'])).prop_map(StoreOp::Keys),
        1 => Just(StoreOp::Export),
    ]
}

/// What the store holds, including entries that expired but were not removed yet: every
/// operation on a key removes it if it expired (lazy expiry), and purges and the whole-database
/// reads remove every expired entry. Deadlines are milliseconds on the virtual clock.
#[derive(Debug, Default)]
struct StoreModel {
    entries: HashMap<Vec<u8>, (Vec<u8>, Option<u64>)>,
    now_ms: u64,
}

impl StoreModel {
    fn expired(&self, deadline: Option<u64>) -> bool {
        deadline.is_some_and(|d| d <= self.now_ms)
    }

    /// The live entry of `key`, dropping an expired one as the store does on access.
    fn live(&mut self, key: &[u8]) -> Option<(Vec<u8>, Option<u64>)> {
        let entry = self.entries.get(key).cloned()?;
        if self.expired(entry.1) {
            self.entries.remove(key);
            return None;
        }
        Some(entry)
    }

    /// Drops every expired entry; returns how many.
    fn purge(&mut self) -> usize {
        let before = self.entries.len();
        let now = self.now_ms;
        self.entries.retain(|_, (_, d)| d.is_none_or(|d| d > now));
        before - self.entries.len()
    }

    fn deadline(&self, ttl_ms: Option<u64>) -> Option<u64> {
        ttl_ms.map(|t| self.now_ms + t)
    }
}

/// Compares an entry from the store with the model's (deadlines at microsecond precision,
/// the store's own).
fn same_entry(got: Option<Entry>, want: Option<(Vec<u8>, Option<u64>)>, base: Instant) -> bool {
    let micros = |d: Option<Instant>| d.map(clock::to_micros);
    match (got, want) {
        (None, None) => true,
        (Some(got), Some((value, deadline))) => {
            got.value == StoreValue::String(Bytes::from(value))
                && micros(got.deadline) == micros(deadline.map(|d| at(base, d)))
        }
        _ => false,
    }
}

/// The bytes of a string value (the model holds strings only).
fn string(value: StoreValue) -> Bytes {
    match value {
        StoreValue::String(s) => s,
        other => panic!(
            "the model stores strings only, found a {}",
            other.kind().name()
        ),
    }
}

fn at(base: Instant, ms: u64) -> Instant {
    base + Duration::from_millis(ms)
}

proptest! {
    #[test]
    fn store_matches_a_hashmap_model_with_deadlines(ops in vec(store_op(), 1..120)) {
        let store = Store::new(1, 4);
        let db = store.db(0).expect("db 0");
        // Every instant is base + a whole number of milliseconds; nothing sleeps.
        let base = Instant::now();
        let mut model = StoreModel::default();
        for op in ops {
            let now = at(base, model.now_ms);
            match op {
                StoreOp::Put { key, value, ttl_ms } => {
                    let deadline = model.deadline(ttl_ms);
                    let replaced = db.shard(key).put(key, &value, deadline.map(|d| at(base, d)), now);
                    prop_assert_eq!(replaced, model.live(key).is_some(), "put {:?}", key);
                    model.entries.insert(key.to_vec(), (value, deadline));
                }
                StoreOp::Insert { key, value, ttl_ms } => {
                    let deadline = model.deadline(ttl_ms);
                    let entry = Entry {
                        value: StoreValue::String(Bytes::from(value.clone())),
                        deadline: deadline.map(|d| at(base, d)),
                    };
                    let old = db.shard(key).insert(key, entry, now);
                    prop_assert!(same_entry(old, model.live(key), base), "insert {:?}", key);
                    model.entries.insert(key.to_vec(), (value, deadline));
                }
                StoreOp::Get(key) => {
                    let got = db.shard(key).get(key, now);
                    prop_assert!(same_entry(got, model.live(key), base), "get {:?}", key);
                }
                StoreOp::Value(key) => {
                    let got = db.shard(key).value(key, now).map(|v| string(v).to_vec());
                    prop_assert_eq!(got, model.live(key).map(|(v, _)| v), "value {:?}", key);
                }
                StoreOp::Contains(key) => {
                    let got = db.shard(key).contains(key, now);
                    prop_assert_eq!(got, model.live(key).is_some(), "contains {:?}", key);
                }
                StoreOp::Deadline(key) => {
                    let got = db.shard(key).deadline(key, now);
                    let got = got.map(|d| d.map(clock::to_micros));
                    let want = model.live(key).map(|(_, d)| d.map(|d| clock::to_micros(at(base, d))));
                    prop_assert_eq!(got, want, "deadline {:?}", key);
                }
                StoreOp::Remove(key) => {
                    let got = db.shard(key).remove(key, now);
                    prop_assert!(same_entry(got, model.live(key), base), "remove {:?}", key);
                    model.entries.remove(key);
                }
                StoreOp::Delete(key) => {
                    let got = db.shard(key).delete(key, now);
                    prop_assert_eq!(got, model.live(key).is_some(), "delete {:?}", key);
                    model.entries.remove(key);
                }
                StoreOp::SetDeadline(key, ttl_ms) => {
                    let deadline = model.deadline(ttl_ms);
                    let set = db.shard(key).set_deadline(key, deadline.map(|d| at(base, d)), now);
                    let live = model.live(key);
                    prop_assert_eq!(set, live.is_some(), "set_deadline {:?}", key);
                    if let Some((value, _)) = live {
                        model.entries.insert(key.to_vec(), (value, deadline));
                    }
                }
                StoreOp::Advance(ms) => model.now_ms += ms,
                StoreOp::Purge => {
                    prop_assert_eq!(db.purge_expired(now), model.purge(), "purge");
                }
                StoreOp::Counts => {
                    model.purge();
                    let with_ttl = model.entries.values().filter(|(_, d)| d.is_some()).count();
                    prop_assert_eq!(db.counts(now), (model.entries.len(), with_ttl), "counts");
                }
                StoreOp::Keys(prefix) => {
                    let pattern = match prefix {
                        None => b"*".to_vec(),
                        Some(c) => vec![c, b'*'],
                    };
                    let mut got: Vec<Vec<u8>> =
                        db.keys(&pattern, now).iter().map(|k| k.to_vec()).collect();
                    got.sort();
                    model.purge();
                    let mut want: Vec<Vec<u8>> = model
                        .entries
                        .keys()
                        .filter(|k| prefix.is_none_or(|c| k.first() == Some(&c)))
                        .cloned()
                        .collect();
                    want.sort();
                    prop_assert_eq!(got, want, "keys {:?}", prefix);
                }
                StoreOp::Export => {
                    let mut got: Vec<_> = db
                        .export(now)
                        .into_iter()
                        .map(|(k, e)| (k.to_vec(), string(e.value).to_vec(), e.deadline.map(clock::to_micros)))
                        .collect();
                    got.sort();
                    model.purge();
                    let mut want: Vec<_> = model
                        .entries
                        .iter()
                        .map(|(k, (v, d))| (k.clone(), v.clone(), d.map(|d| clock::to_micros(at(base, d)))))
                        .collect();
                    want.sort();
                    prop_assert_eq!(got, want, "export");
                }
            }
        }
        // Whatever happened, a final sweep far in the future leaves only keys without a TTL.
        let later = at(base, model.now_ms + 10_000);
        model.now_ms += 10_000;
        model.purge();
        prop_assert_eq!(db.counts(later), (model.entries.len(), 0));
    }
}

// ---------------------------------------------------------------------------------------------
// Commands through Session::execute against a model of Redis's semantics
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum CommandOp {
    Set(&'static [u8], Vec<u8>, Option<i64>),
    Get(&'static [u8]),
    Del(Vec<&'static [u8]>),
    Exists(Vec<&'static [u8]>),
    Incr(&'static [u8]),
    Append(&'static [u8], Vec<u8>),
    /// EXPIRE with either a large TTL (the key outlives the test, so no timing is involved)
    /// or a non-positive one (the key is deleted at once).
    Expire(&'static [u8], i64),
    Persist(&'static [u8]),
    Ttl(&'static [u8]),
}

/// Values that are integers, near-integers and junk, so INCR meets every case.
fn command_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        (-3i64..3).prop_map(|n| n.to_string().into_bytes()),
        select(vec![
            &b"9223372036854775807"[..],
            b"9223372036854775806",
            b"-9223372036854775808",
            b"9223372036854775808",
            b"01",
            b"-0",
            b"+1",
            b" 1",
            b"1 ",
            b"",
            b"1.5",
        ])
        .prop_map(<[u8]>::to_vec),
        vec(any::<u8>(), 0..6),
    ]
}

fn command_op() -> impl Strategy<Value = CommandOp> {
    let key = || select(KEYS[1..].to_vec());
    let expire = || prop_oneof![100i64..10_000_000, -5i64..=0];
    prop_oneof![
        3 => (key(), command_value(), proptest::option::of(100i64..10_000_000))
            .prop_map(|(k, v, ex)| CommandOp::Set(k, v, ex)),
        3 => key().prop_map(CommandOp::Get),
        1 => vec(key(), 1..4).prop_map(CommandOp::Del),
        1 => vec(key(), 1..4).prop_map(CommandOp::Exists),
        3 => key().prop_map(CommandOp::Incr),
        2 => (key(), vec(any::<u8>(), 0..4)).prop_map(|(k, v)| CommandOp::Append(k, v)),
        2 => (key(), expire()).prop_map(|(k, s)| CommandOp::Expire(k, s)),
        1 => key().prop_map(CommandOp::Persist),
        2 => key().prop_map(CommandOp::Ttl),
    ]
}

/// Redis's integer rule (`string2ll`): the value must be the canonical decimal text of an i64.
fn redis_int(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let n: i64 = text.parse().ok()?;
    (n.to_string() == text).then_some(n)
}

fn not_integer() -> Reply {
    Reply::error("ERR value is not an integer or out of range")
}

proptest! {
    #[test]
    fn commands_match_a_model_of_redis(ops in vec(command_op(), 1..60)) {
        let node = Node::new(NodeConfig::default());
        let mut session = session(&node);
        // key -> (value, TTL in seconds as last set); no deadline is ever reached in a run.
        let mut model: HashMap<Vec<u8>, (Vec<u8>, Option<i64>)> = HashMap::new();
        for op in ops {
            let (args, want): (Vec<Vec<u8>>, Reply) = match &op {
                CommandOp::Set(k, v, ex) => {
                    model.insert(k.to_vec(), (v.clone(), *ex));
                    let mut args = vec![b"SET".to_vec(), k.to_vec(), v.clone()];
                    if let Some(ex) = ex {
                        args.push(b"EX".to_vec());
                        args.push(ex.to_string().into_bytes());
                    }
                    (args, Reply::ok())
                }
                CommandOp::Get(k) => {
                    let want = model.get(*k).map_or(Reply::Nil, |(v, _)| Reply::bulk(v));
                    (vec![b"GET".to_vec(), k.to_vec()], want)
                }
                CommandOp::Del(keys) => {
                    let removed = keys.iter().filter(|k| model.remove(**k).is_some()).count();
                    let mut args = vec![b"DEL".to_vec()];
                    args.extend(keys.iter().map(|k| k.to_vec()));
                    (args, Reply::Int(removed as i64))
                }
                CommandOp::Exists(keys) => {
                    let found = keys.iter().filter(|k| model.contains_key(**k)).count();
                    let mut args = vec![b"EXISTS".to_vec()];
                    args.extend(keys.iter().map(|k| k.to_vec()));
                    (args, Reply::Int(found as i64))
                }
                CommandOp::Incr(k) => {
                    let want = match model.get(*k).cloned() {
                        None => {
                            model.insert(k.to_vec(), (b"1".to_vec(), None));
                            Reply::Int(1)
                        }
                        Some((v, ttl)) => match redis_int(&v) {
                            None => not_integer(),
                            Some(n) => match n.checked_add(1) {
                                None => Reply::error("ERR increment or decrement would overflow"),
                                Some(n) => {
                                    model.insert(k.to_vec(), (n.to_string().into_bytes(), ttl));
                                    Reply::Int(n)
                                }
                            },
                        },
                    };
                    (vec![b"INCR".to_vec(), k.to_vec()], want)
                }
                CommandOp::Append(k, suffix) => {
                    let entry = model.entry(k.to_vec()).or_insert((Vec::new(), None));
                    entry.0.extend_from_slice(suffix);
                    let len = entry.0.len() as i64;
                    (vec![b"APPEND".to_vec(), k.to_vec(), suffix.clone()], Reply::Int(len))
                }
                CommandOp::Expire(k, secs) => {
                    let exists = model.contains_key(*k);
                    if *secs <= 0 {
                        model.remove(*k);
                    } else if let Some(entry) = model.get_mut(*k) {
                        entry.1 = Some(*secs);
                    }
                    let args = vec![b"EXPIRE".to_vec(), k.to_vec(), secs.to_string().into_bytes()];
                    (args, Reply::Int(i64::from(exists)))
                }
                CommandOp::Persist(k) => {
                    let had_ttl = model.get_mut(*k).and_then(|e| e.1.take()).is_some();
                    (vec![b"PERSIST".to_vec(), k.to_vec()], Reply::Int(i64::from(had_ttl)))
                }
                CommandOp::Ttl(k) => {
                    let args = vec![b"TTL".to_vec(), k.to_vec()];
                    let got = session.execute(&node, &Request::new(args.clone()));
                    match model.get(*k) {
                        None => prop_assert_eq!(got, Some(Reply::Int(-2)), "{:?}", op),
                        Some((_, None)) => prop_assert_eq!(got, Some(Reply::Int(-1)), "{:?}", op),
                        Some((_, Some(secs))) => {
                            // Rounded to the nearest second by Redis; a test step is far
                            // shorter than the half second that could move it down by one.
                            let Some(Reply::Int(left)) = got else {
                                return Err(TestCaseError::fail(format!("{op:?} -> {got:?}")));
                            };
                            prop_assert!(*secs - 1 <= left && left <= *secs, "{:?} -> {}", op, left);
                        }
                    }
                    continue;
                }
            };
            let got = session.execute(&node, &Request::new(args));
            prop_assert_eq!(got, Some(want), "{:?}", op);
        }
        // The keyspace as a whole agrees too.
        let db = node.store.db(0).expect("db 0");
        let now = Instant::now();
        let with_ttl = model.values().filter(|(_, t)| t.is_some()).count();
        prop_assert_eq!(db.counts(now), (model.len(), with_ttl));
        let got: HashSet<Vec<u8>> = db.keys(b"*", now).iter().map(|k| k.to_vec()).collect();
        prop_assert_eq!(got, model.keys().cloned().collect::<HashSet<_>>());
    }
}

// ---------------------------------------------------------------------------------------------
// KEYS glob matching
// ---------------------------------------------------------------------------------------------

/// A textbook glob matcher for `*` and `?` (dynamic programming, no backtracking).
fn glob_reference(pattern: &[u8], text: &[u8]) -> bool {
    // matched[j]: the pattern so far matches text[..j].
    let mut matched = vec![false; text.len() + 1];
    matched[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            next[j] = match p {
                b'*' => matched[j] || (j > 0 && next[j - 1]),
                b'?' => j > 0 && matched[j - 1],
                c => j > 0 && matched[j - 1] && text[j - 1] == c,
            };
        }
        matched = next;
    }
    matched[text.len()]
}

proptest! {
    #[test]
    fn keys_patterns_match_like_a_textbook_glob(
        pattern in vec(select(vec![b'a', b'b', b'*', b'?']), 0..14),
        text in vec(select(vec![b'a', b'b']), 0..16),
    ) {
        prop_assert_eq!(
            pattern::matches(&pattern, &text),
            glob_reference(&pattern, &text),
            "{:?} vs {:?}",
            String::from_utf8_lossy(&pattern),
            String::from_utf8_lossy(&text)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions found by the fuzz targets and these properties
// ---------------------------------------------------------------------------------------------

/// `KEYS *a*a*a*a*a*a*a*a*a*a*b` against a key of `a`s took exponential time and held a shard
/// lock meanwhile (Redis's CVE-2022-36021); found while writing the `command` fuzz target.
#[test]
fn keys_with_a_hostile_pattern_answers_at_once() {
    let node = Node::new(NodeConfig::default());
    let mut session = session(&node);
    let key = vec![b'a'; 64];
    let set = Request::new([b"SET".to_vec(), key, b"v".to_vec()]);
    assert_eq!(session.execute(&node, &set), Some(Reply::ok()));
    let pattern = format!("{}*b", "*a".repeat(30));
    let started = std::time::Instant::now();
    let keys = Request::new([b"KEYS".to_vec(), pattern.into_bytes()]);
    assert_eq!(session.execute(&node, &keys), Some(Reply::Array(vec![])));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "KEYS took {:?}",
        started.elapsed()
    );
}
