//! Bitmap commands against a naive model: each key is a `Vec<bool>` of bits (bit 0 first, a
//! whole number of bytes), and every answer is computed from the definitions in Redis's
//! documentation, bit by bit, without any of the word-at-a-time arithmetic the node uses.
//!
//! - SETBIT, GETBIT, BITCOUNT (BYTE and BIT ranges, negative indices), BITPOS (with and
//!   without start and end), BITOP (AND, OR, XOR, NOT over missing and unequal keys) and GET
//!   run through `Session::execute` in random sequences and must match the model.
//! - BITFIELD SET/GET of random types at random offsets matches the model's bits.
//! - Offsets stop at the node's `proto-max-bulk-len`; keys of other types answer WRONGTYPE
//!   where Redis does.
//!
//! Replies compared byte for byte with a real Redis are in `tests/differential/bitmap.redis`.

mod common;

use std::collections::HashMap;

use common::session;
use minikv::node::Node;
use minikv::protocol::{Reply, Request};
use minikv::store::{List, Value as StoreValue};
use minikv::NodeConfig;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use tokio::time::Instant;

const KEYS: [&str; 3] = ["a", "b", "c"];

/// A range argument: `start end [BYTE|BIT]` (`unit` None: no unit word, meaning bytes).
#[derive(Debug, Clone)]
struct Span {
    start: i64,
    end: Option<i64>,
    unit: Option<bool>,
}

#[derive(Debug, Clone)]
enum Op {
    SetBit(&'static str, u64, bool),
    GetBit(&'static str, u64),
    Count(&'static str, Option<Span>),
    Pos(&'static str, bool, Option<Span>),
    Combine(&'static str, &'static str, Vec<&'static str>),
    Get(&'static str),
}

fn span(with_end: bool) -> impl Strategy<Value = Span> {
    let index = || prop_oneof![-20i64..20, -200i64..200];
    // BITCOUNT takes both ends or neither; BITPOS may stop after the start.
    let end = if with_end {
        index().prop_map(Some).boxed()
    } else {
        proptest::option::weighted(0.7, index()).boxed()
    };
    (index(), end, proptest::option::of(any::<bool>())).prop_map(|(start, end, unit)| Span {
        start,
        // A unit word needs an end before it.
        unit: end.and(unit),
        end,
    })
}

fn op() -> impl Strategy<Value = Op> {
    let key = || select(KEYS.to_vec());
    let offset = || prop_oneof![0u64..24, 0u64..200];
    prop_oneof![
        5 => (key(), offset(), any::<bool>()).prop_map(|(k, o, b)| Op::SetBit(k, o, b)),
        2 => (key(), offset()).prop_map(|(k, o)| Op::GetBit(k, o)),
        3 => (key(), proptest::option::of(span(true))).prop_map(|(k, s)| Op::Count(k, s)),
        3 => (key(), any::<bool>(), proptest::option::of(span(false)))
            .prop_map(|(k, b, s)| Op::Pos(k, b, s)),
        2 => (
            select(vec!["AND", "OR", "XOR", "NOT"]),
            key(),
            vec(select(vec!["a", "b", "c", "missing"]), 1..4),
        )
            .prop_map(|(op, dest, mut srcs)| {
                if op == "NOT" {
                    srcs.truncate(1);
                }
                Op::Combine(op, dest, srcs)
            }),
        1 => key().prop_map(Op::Get),
    ]
}

/// The model's strings: bits, a multiple of 8 long.
#[derive(Default)]
struct Model {
    keys: HashMap<&'static str, Vec<bool>>,
}

impl Model {
    fn bits(&self, key: &str) -> Option<&Vec<bool>> {
        self.keys.get(key)
    }

    fn bytes(bits: &[bool]) -> Vec<u8> {
        bits.chunks(8)
            .map(|byte| {
                byte.iter()
                    .fold(0u8, |acc, &bit| (acc << 1) | u8::from(bit))
            })
            .collect()
    }

    /// Redis's range rule over `n` units: negative indices from the end, then clamping.
    /// `None` for an empty range.
    fn clamp(n: i64, start: i64, end: i64) -> Option<(i64, i64)> {
        let start = if start < 0 { start + n } else { start }.max(0);
        let end = if end < 0 { end + n } else { end }.max(0).min(n - 1);
        (start <= end).then_some((start, end))
    }

    fn apply(&mut self, op: &Op) -> Reply {
        match op {
            Op::SetBit(key, offset, on) => {
                let bits = self.keys.entry(key).or_default();
                let index = *offset as usize;
                if bits.len() <= index {
                    bits.resize((index / 8 + 1) * 8, false);
                }
                let was = std::mem::replace(&mut bits[index], *on);
                Reply::Int(i64::from(was))
            }
            Op::GetBit(key, offset) => {
                let set = self
                    .bits(key)
                    .and_then(|b| b.get(*offset as usize).copied())
                    .unwrap_or(false);
                Reply::Int(i64::from(set))
            }
            Op::Count(key, span) => {
                let Some(bits) = self.bits(key) else {
                    return Reply::Int(0);
                };
                let (unit, start, end) = match span {
                    None => (8, 0, bits.len() as i64 / 8 - 1),
                    Some(Span { start, end, unit }) => {
                        let end = end.unwrap_or(-1);
                        if *start < 0 && end < 0 && *start > end {
                            return Reply::Int(0);
                        }
                        let unit = if unit == &Some(true) { 1 } else { 8 };
                        match Self::clamp(bits.len() as i64 / unit, *start, end) {
                            Some((s, e)) => (unit, s, e),
                            None => return Reply::Int(0),
                        }
                    }
                };
                let range = (start * unit) as usize..((end + 1) * unit) as usize;
                Reply::Int(bits[range].iter().filter(|b| **b).count() as i64)
            }
            Op::Pos(key, bit, span) => {
                let Some(bits) = self.bits(key) else {
                    return Reply::Int(if *bit { -1 } else { 0 });
                };
                let (unit, start, end, end_given) = match span {
                    None => (8, 0, -1, false),
                    Some(Span { start, end, unit }) => {
                        let unit = if unit == &Some(true) { 1 } else { 8 };
                        (unit, *start, end.unwrap_or(-1), end.is_some())
                    }
                };
                let Some((start, end)) = Self::clamp(bits.len() as i64 / unit, start, end) else {
                    return Reply::Int(-1);
                };
                let range = (start * unit) as usize..((end + 1) * unit) as usize;
                let found = range.clone().find(|&i| bits[i] == *bit);
                Reply::Int(match found {
                    Some(i) => i as i64,
                    // Past the end of the string, bits read as zeros; past an explicit
                    // end, nothing is known.
                    None if *bit || end_given => -1,
                    None => range.end as i64,
                })
            }
            Op::Combine(op, dest, srcs) => {
                let sources: Vec<Vec<bool>> = srcs
                    .iter()
                    .map(|k| self.bits(k).cloned().unwrap_or_default())
                    .collect();
                let len = sources.iter().map(Vec::len).max().unwrap_or(0);
                let at = |s: &Vec<bool>, i: usize| s.get(i).copied().unwrap_or(false);
                let result: Vec<bool> = (0..len)
                    .map(|i| {
                        let mut values = sources.iter().map(|s| at(s, i));
                        match *op {
                            "AND" => values.all(|b| b),
                            "OR" => values.any(|b| b),
                            "XOR" => values.filter(|b| *b).count() % 2 == 1,
                            _ => !at(&sources[0], i),
                        }
                    })
                    .collect();
                let bytes = result.len() / 8;
                if result.is_empty() {
                    self.keys.remove(dest);
                } else {
                    self.keys.insert(dest, result);
                }
                Reply::Int(bytes as i64)
            }
            Op::Get(key) => self
                .bits(key)
                .map_or(Reply::Nil, |bits| Reply::bulk(Self::bytes(bits))),
        }
    }
}

fn args(op: &Op) -> Vec<Vec<u8>> {
    let text = |s: &str| s.as_bytes().to_vec();
    let num = |n: i64| n.to_string().into_bytes();
    let span_args = |span: &Option<Span>| {
        let mut out = Vec::new();
        if let Some(Span { start, end, unit }) = span {
            out.push(num(*start));
            if let Some(end) = end {
                out.push(num(*end));
            }
            if let Some(bit) = unit {
                out.push(text(if *bit { "BIT" } else { "byte" }));
            }
        }
        out
    };
    match op {
        Op::SetBit(k, o, b) => vec![text("SETBIT"), text(k), num(*o as i64), num(i64::from(*b))],
        Op::GetBit(k, o) => vec![text("GETBIT"), text(k), num(*o as i64)],
        Op::Count(k, span) => {
            let mut out = vec![text("BITCOUNT"), text(k)];
            out.extend(span_args(span));
            out
        }
        Op::Pos(k, bit, span) => {
            let mut out = vec![text("BITPOS"), text(k), num(i64::from(*bit))];
            out.extend(span_args(span));
            out
        }
        Op::Combine(op, dest, srcs) => {
            let mut out = vec![text("BITOP"), text(op), text(dest)];
            out.extend(srcs.iter().map(|s| text(s)));
            out
        }
        Op::Get(k) => vec![text("GET"), text(k)],
    }
}

proptest! {
    #[test]
    fn bit_commands_match_a_bit_vector_model(ops in vec(op(), 1..80)) {
        let node = Node::new(NodeConfig::default());
        let mut session = session(&node);
        let mut model = Model::default();
        for op in &ops {
            let want = model.apply(op);
            let got = session.execute(&node, &Request::new(args(op)));
            prop_assert_eq!(got, Some(want), "{:?}", op);
        }
    }

    #[test]
    fn bitfield_set_then_get_reads_the_bits_back(
        fields in vec((any::<bool>(), 1u32..=64, 0u64..100, any::<i64>()), 1..20),
    ) {
        let node = Node::new(NodeConfig::default());
        let mut session = session(&node);
        let mut bits = vec![false; 0];
        for (signed, width, offset, value) in fields {
            let width = if signed { width } else { width.min(63) };
            let ty = format!("{}{width}", if signed { 'i' } else { 'u' });
            let (offset_arg, value_arg) = (offset.to_string(), value.to_string());
            let request = Request::new(vec![
                "BITFIELD", "key", "SET", &ty, &offset_arg, &value_arg, "GET", &ty, &offset_arg,
            ]
            .into_iter()
            .map(|s| s.as_bytes().to_vec()));
            // The model: the old field, then the low `width` bits of the value written.
            let end = (offset + u64::from(width)) as usize;
            if bits.len() < end {
                bits.resize(end.div_ceil(8) * 8, false);
            }
            let field = &mut bits[offset as usize..end];
            let read = |field: &[bool]| {
                let raw = field.iter().fold(0u64, |acc, &b| (acc << 1) | u64::from(b));
                if signed && width < 64 && field[0] {
                    (raw | (u64::MAX << width)) as i64
                } else {
                    raw as i64
                }
            };
            let old = read(field);
            for (i, bit) in field.iter_mut().enumerate() {
                *bit = (value as u64 >> (width as usize - 1 - i)) & 1 == 1;
            }
            let new = read(field);
            let got = session.execute(&node, &request);
            prop_assert_eq!(
                got,
                Some(Reply::Array(vec![Reply::Int(old), Reply::Int(new)])),
                "{} at {} = {}", ty, offset, value
            );
        }
        let get = Request::new([b"GET".to_vec(), b"key".to_vec()]);
        prop_assert_eq!(session.execute(&node, &get), Some(Reply::bulk(Model::bytes(&bits))));
    }
}

#[test]
fn offsets_stop_at_proto_max_bulk_len() {
    let mut config = NodeConfig::default();
    config.resp_limits.max_bulk_len = 1024;
    let node = Node::new(config);
    let mut session = session(&node);
    let mut call = |args: &[&str]| {
        session.execute(
            &node,
            &Request::new(args.iter().map(|a| a.as_bytes().to_vec())),
        )
    };
    let refused = Some(Reply::error(
        "ERR bit offset is not an integer or out of range",
    ));
    assert_eq!(call(&["SETBIT", "k", "8191", "1"]), Some(Reply::Int(0)));
    assert_eq!(call(&["STRLEN", "k"]), Some(Reply::Int(1024)));
    assert_eq!(call(&["SETBIT", "k", "8192", "1"]), refused);
    assert_eq!(call(&["GETBIT", "k", "8192"]), refused);
    assert_eq!(call(&["BITFIELD", "k", "GET", "u8", "8192"]), refused);
    assert_eq!(
        call(&["BITFIELD", "k", "GET", "u8", "#1023"]),
        Some(Reply::Array(vec![Reply::Int(1)]))
    );
    assert_eq!(call(&["BITFIELD", "k", "GET", "u8", "#1024"]), refused);
    // A field starting at the last bit grows the string past the limit by its width, as in
    // Redis (the check is on the offset).
    assert_eq!(
        call(&["BITFIELD", "k", "SET", "i64", "8191", "0"]),
        Some(Reply::Array(vec![Reply::Int(i64::MIN)]))
    );
    assert_eq!(call(&["STRLEN", "k"]), Some(Reply::Int(1032)));
    // LCS's table is held to the same limit: 17 x 17 cells of 4 bytes is 1156 bytes.
    assert_eq!(call(&["SET", "x", "0123456789abcdef"]), Some(Reply::ok()));
    assert_eq!(
        call(&["LCS", "x", "x", "LEN"]),
        Some(Reply::error(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
        ))
    );
    assert_eq!(call(&["SET", "y", "0123456789abcde"]), Some(Reply::ok()));
    assert_eq!(call(&["LCS", "y", "y", "LEN"]), Some(Reply::Int(15)));
}

/// Where Redis answers WRONGTYPE (or LCS's own text), and where a bitmap command writes over a
/// key of another type (BITOP's destination) instead.
#[test]
fn other_types_are_refused_where_redis_refuses_them() {
    let node = Node::new(NodeConfig::default());
    let mut list = List::new();
    list.push_back(b"x");
    node.store.db(0).expect("db 0").shard(b"list").put_value(
        b"list",
        &StoreValue::List(list),
        None,
        Instant::now(),
    );
    let mut session = session(&node);
    let mut call = |args: &[&str]| {
        session.execute(
            &node,
            &Request::new(args.iter().map(|a| a.as_bytes().to_vec())),
        )
    };
    let wrong = Some(Reply::error(
        "WRONGTYPE Operation against a key holding the wrong kind of value",
    ));
    for args in [
        &["SETBIT", "list", "0", "1"][..],
        &["GETBIT", "list", "0"],
        &["BITCOUNT", "list"],
        // The type is checked before the arguments, as in Redis.
        &["BITCOUNT", "list", "0"],
        &["BITPOS", "list", "1", "x"],
        &["BITOP", "AND", "dest", "list"],
        &["BITOP", "OR", "dest", "missing", "list"],
        &["BITFIELD", "list", "GET", "u8", "0"],
        &["BITFIELD", "list", "SET", "u8", "0", "1"],
        &["BITFIELD_RO", "list", "GET", "u8", "0"],
    ] {
        assert_eq!(call(args), wrong, "{args:?}");
    }
    // Arguments checked before the key come first.
    assert_eq!(
        call(&["BITPOS", "list", "2"]),
        Some(Reply::error("ERR The bit argument must be 1 or 0."))
    );
    assert_eq!(
        call(&["GETBIT", "list", "x"]),
        Some(Reply::error(
            "ERR bit offset is not an integer or out of range"
        ))
    );
    assert_eq!(
        call(&["BITFIELD_RO", "list", "SET", "u8", "0", "1"]),
        Some(Reply::error(
            "ERR BITFIELD_RO only supports the GET subcommand"
        ))
    );
    let not_strings = Some(Reply::error(
        "ERR The specified keys must contain string values",
    ));
    assert_eq!(call(&["LCS", "list", "missing"]), not_strings);
    assert_eq!(call(&["LCS", "missing", "list", "IDX", "LEN"]), not_strings);
    assert_eq!(call(&["EXISTS", "dest"]), Some(Reply::Int(0)));
    // BITOP replaces its destination whatever it held.
    assert_eq!(call(&["SET", "a", "x"]), Some(Reply::ok()));
    assert_eq!(call(&["BITOP", "OR", "list", "a"]), Some(Reply::Int(1)));
    assert_eq!(
        call(&["TYPE", "list"]),
        Some(Reply::Simple("string".into()))
    );
    assert_eq!(call(&["GET", "list"]), Some(Reply::bulk("x")));
}
