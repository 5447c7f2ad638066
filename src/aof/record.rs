//! The log's file format: the header, record framing, and effects written as RESP commands.
//!
//! ```text
//! file    = magic base records
//! magic   = "MINIKV-AOF 3\n"            (versions 1 and 2: "MINIKV-AOF 1\n", "...2\n", still read)
//! base    = u64 little endian           absolute offset of the first record
//! record  = len:u32 crc32:u32 payload   both little endian; crc32 of the payload
//! payload = RESP multibulk commands, starting with SELECT db:
//!           SELECT db | SET key value [PXAT unix-ms] | DEL key | FLUSHDB | FLUSHALL
//!           | SWAPDB a b                                     (versions 1 and 2)
//!           | PEXPIREAT key unix-ms | PERSIST key           (version 2)
//!           | PUTV key type dump [PXAT unix-ms]            (version 3)
//!           | HSET key field value ... | HDEL key field ...   (version 3: element edits,
//!           | SADD key member ... | SREM key member ...      see `effect::Edit`)
//!           | ZADD key score member ... | ZREM key member ...
//! ```
//! A value record names its type by its command: `SET` stores a string, `PUTV` a list, hash,
//! set or sorted set (`type` as TYPE names it, `dump` its `store::value::dump` form). Version
//! 2 also writes deadline changes as such instead of rewriting the value; older files are
//! rewritten with the current header when the log is opened (their records are a subset).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};

use super::AofError;
use crate::effect::{Edit, Effect, Score};
use crate::protocol::resp::RespLimits;
use crate::protocol::{Incoming, RespCodec};
use crate::store::value::dump;
use crate::store::{Kind, Value};

/// The header of every log this build writes (followed by the 8-byte base offset).
pub const MAGIC: &[u8] = b"MINIKV-AOF 3\n";
/// The header of logs written before collections: still read.
pub const MAGIC_V2: &[u8] = b"MINIKV-AOF 2\n";
/// The header of logs written before values had types: still read.
pub const MAGIC_V1: &[u8] = b"MINIKV-AOF 1\n";
/// Bytes before the first record.
pub(super) const HEADER_LEN: u64 = MAGIC.len() as u64 + 8;
/// Bytes before a record's payload.
pub(super) const FRAME_LEN: usize = 8;

/// Appends the effects as one record's payload: every record starts with its own SELECT, so
/// a record never depends on the one before it (replay may start at any record).
pub(super) fn encode(effects: &[Effect], out: &mut BytesMut) {
    let mut selected = None;
    let mut n = itoa::Buffer::new();
    for effect in effects {
        if let Some(db) = effect.db() {
            if selected != Some(db) {
                command(out, &[b"SELECT", n.format(db).as_bytes()]);
                selected = Some(db);
            }
        }
        match effect {
            Effect::Put {
                key,
                value: Value::String(value),
                expires_at_ms,
                ..
            } => match expires_at_ms {
                Some(at) => command(
                    out,
                    &[b"SET", key, value, b"PXAT", n.format(*at).as_bytes()],
                ),
                None => command(out, &[b"SET", key, value]),
            },
            Effect::Put {
                key,
                value,
                expires_at_ms,
                ..
            } => {
                let mut data = Vec::new();
                dump::value(value.as_ref(), &mut data);
                let kind = value.kind().name().as_bytes();
                match expires_at_ms {
                    Some(at) => command(
                        out,
                        &[b"PUTV", key, kind, &data, b"PXAT", n.format(*at).as_bytes()],
                    ),
                    None => command(out, &[b"PUTV", key, kind, &data]),
                }
            }
            Effect::Del { key, .. } => command(out, &[b"DEL", key]),
            Effect::Expire {
                key,
                expires_at_ms: Some(at),
                ..
            } => command(out, &[b"PEXPIREAT", key, n.format(*at).as_bytes()]),
            Effect::Expire {
                key,
                expires_at_ms: None,
                ..
            } => command(out, &[b"PERSIST", key]),
            Effect::FlushDb { .. } => command(out, &[b"FLUSHDB"]),
            Effect::FlushAll => command(out, &[b"FLUSHALL"]),
            Effect::SwapDb { a, b } => {
                let mut m = itoa::Buffer::new();
                command(
                    out,
                    &[b"SWAPDB", m.format(*a).as_bytes(), n.format(*b).as_bytes()],
                );
            }
            Effect::Edit { key, edit, .. } => edit_command(out, key, edit),
            // Only replicated clusters move slots, and they keep no append-only log.
            Effect::Slots(_) => {}
        }
    }
}

/// Reads one record's payload back into effects (versions 1 to 3).
pub(super) fn decode(payload: &[u8]) -> Result<Vec<Effect>, String> {
    let mut codec = RespCodec::new(RespLimits::default());
    let mut buf = BytesMut::from(payload);
    let mut db = 0usize;
    let mut effects = Vec::new();
    while !buf.is_empty() {
        let request = match tokio_util::codec::Decoder::decode(&mut codec, &mut buf) {
            Ok(Some(Incoming::Request(r, _))) => r,
            Ok(Some(Incoming::CrossProtocol)) => return Err("a POST or Host: command".into()),
            Ok(_) => return Err("a command cut short inside a record".into()),
            Err(e) => return Err(e.to_string()),
        };
        let args = request.args;
        let name = args
            .first()
            .map(|a| a.to_ascii_uppercase())
            .unwrap_or_default();
        let key = || args[1].clone();
        let effect = match (name.as_slice(), args.len()) {
            (b"SELECT", 2) => {
                db = parse(&args[1])?;
                continue;
            }
            (b"SET", 3) => Effect::Put {
                db,
                key: key(),
                value: Value::String(args[2].clone()),
                expires_at_ms: None,
            },
            (b"SET", 5) if args[3].eq_ignore_ascii_case(b"PXAT") => Effect::Put {
                db,
                key: key(),
                value: Value::String(args[2].clone()),
                expires_at_ms: Some(parse(&args[4])?),
            },
            (b"PUTV", 4 | 6) => {
                let kind = Kind::from_name(&args[2])
                    .filter(|k| *k != Kind::String)
                    .ok_or_else(|| {
                        format!(
                            "PUTV of the unknown type \"{}\"",
                            String::from_utf8_lossy(&args[2]).escape_debug()
                        )
                    })?;
                let expires_at_ms = match args.get(3..) {
                    Some([_, word, at]) if word.eq_ignore_ascii_case(b"PXAT") => Some(parse(at)?),
                    Some([_]) => None,
                    _ => return Err("PUTV with an unknown option".into()),
                };
                Effect::Put {
                    db,
                    key: key(),
                    value: dump::load(kind, &args[3]).map_err(|e| e.to_string())?,
                    expires_at_ms,
                }
            }
            (b"HSET" | b"HDEL" | b"SADD" | b"SREM" | b"ZADD" | b"ZREM", n) if n >= 3 => {
                Effect::Edit {
                    db,
                    key: key(),
                    edit: parse_edit(&name, &args[2..])?,
                }
            }
            (b"DEL", 2) => Effect::Del { db, key: key() },
            (b"PEXPIREAT", 3) => Effect::Expire {
                db,
                key: key(),
                expires_at_ms: Some(parse(&args[2])?),
            },
            (b"PERSIST", 2) => Effect::Expire {
                db,
                key: key(),
                expires_at_ms: None,
            },
            // Version 1 logged FLUSHDB and FLUSHALL with their (ignored) ASYNC/SYNC option.
            (b"FLUSHDB", _) => Effect::FlushDb { db },
            (b"FLUSHALL", _) => Effect::FlushAll,
            (b"SWAPDB", 3) => Effect::SwapDb {
                a: parse(&args[1])?,
                b: parse(&args[2])?,
            },
            _ => {
                return Err(format!(
                    "a command the log never writes: {} with {} arguments",
                    String::from_utf8_lossy(&name).escape_debug(),
                    args.len().saturating_sub(1)
                ))
            }
        };
        effects.push(effect);
    }
    Ok(effects)
}

/// Frames a payload as a record: length, checksum, payload.
pub(super) fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads the header: returns the format version (1 to 3) and the base offset.
pub(super) fn read_header(file: &mut File, path: &Path) -> Result<(u32, u64), AofError> {
    let mut header = [0u8; HEADER_LEN as usize];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_exact(&mut header))
        .map_err(|cause| match cause.kind() {
            std::io::ErrorKind::UnexpectedEof => AofError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("it is shorter than a log header ({HEADER_LEN} bytes)"),
            },
            _ => AofError::Io {
                action: "read the header of",
                path: path.to_path_buf(),
                cause,
            },
        })?;
    let version = match &header[..MAGIC.len()] {
        m if m == MAGIC => 3,
        m if m == MAGIC_V2 => 2,
        m if m == MAGIC_V1 => 1,
        _ => {
            return Err(AofError::Corrupt {
                path: path.to_path_buf(),
                reason: "it does not start with a minikv append-only log header".into(),
            })
        }
    };
    let mut base = [0u8; 8];
    base.copy_from_slice(&header[MAGIC.len()..]);
    Ok((version, u64::from_le_bytes(base)))
}

fn parse<T: std::str::FromStr>(arg: &Bytes) -> Result<T, String> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            format!(
                "\"{}\" where a number belongs",
                String::from_utf8_lossy(arg).escape_debug()
            )
        })
}

/// Appends one RESP multibulk command.
/// An element edit as its record (see the module docs).
fn edit_command(out: &mut BytesMut, key: &Bytes, edit: &Edit) {
    let (name, items): (&[u8], Vec<Vec<u8>>) = match edit {
        Edit::HashSet(pairs) => (
            b"HSET",
            pairs
                .iter()
                .flat_map(|(f, v)| [f.to_vec(), v.to_vec()])
                .collect(),
        ),
        Edit::HashDel(fields) => (b"HDEL", fields.iter().map(|f| f.to_vec()).collect()),
        Edit::SetAdd(members) => (b"SADD", members.iter().map(|m| m.to_vec()).collect()),
        Edit::SetRem(members) => (b"SREM", members.iter().map(|m| m.to_vec()).collect()),
        // `{}` prints the shortest text that parses back to the same double (and `inf`).
        Edit::ZSetPut(pairs) => (
            b"ZADD",
            pairs
                .iter()
                .flat_map(|(m, s)| [s.get().to_string().into_bytes(), m.to_vec()])
                .collect(),
        ),
        Edit::ZSetRem(members) => (b"ZREM", members.iter().map(|m| m.to_vec()).collect()),
    };
    let mut parts: Vec<&[u8]> = Vec::with_capacity(items.len() + 2);
    parts.push(name);
    parts.push(key);
    parts.extend(items.iter().map(Vec::as_slice));
    command(out, &parts);
}

/// The edit of an `HSET`/`HDEL`/`SADD`/`SREM`/`ZADD`/`ZREM` record, from its elements.
fn parse_edit(name: &[u8], items: &[Bytes]) -> Result<Edit, String> {
    let pairs = |what: &str| {
        if items.len().is_multiple_of(2) {
            Ok(items.chunks(2))
        } else {
            Err(format!("{what} with an odd number of elements"))
        }
    };
    Ok(match name {
        b"HSET" => Edit::HashSet(
            pairs("HSET")?
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect(),
        ),
        b"HDEL" => Edit::HashDel(items.to_vec()),
        b"SADD" => Edit::SetAdd(items.to_vec()),
        b"SREM" => Edit::SetRem(items.to_vec()),
        b"ZADD" => Edit::ZSetPut(
            pairs("ZADD")?
                .map(|p| {
                    let score: f64 = parse(&p[0])?;
                    if score.is_nan() {
                        return Err("a NaN score".to_string());
                    }
                    Ok((p[1].clone(), Score::new(score)))
                })
                .collect::<Result<_, String>>()?,
        ),
        _ => Edit::ZSetRem(items.to_vec()),
    })
}

pub(super) fn command(out: &mut BytesMut, parts: &[&[u8]]) {
    let mut n = itoa::Buffer::new();
    out.reserve(16 + parts.iter().map(|p| p.len() + 16).sum::<usize>());
    out.put_u8(b'*');
    out.put_slice(n.format(parts.len()).as_bytes());
    out.put_slice(b"\r\n");
    for part in parts {
        out.put_u8(b'$');
        out.put_slice(n.format(part.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(part);
        out.put_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_effect_round_trips_through_a_record() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let effects = vec![
            Effect::Put {
                db: 3,
                key: b("k"),
                value: Value::String(b("v\r\n")),
                expires_at_ms: Some(4_102_444_800_123),
            },
            Effect::Put {
                db: 3,
                key: b(""),
                value: Value::String(b("")),
                expires_at_ms: None,
            },
            Effect::Put {
                db: 1,
                key: b("h"),
                value: {
                    let mut h = crate::store::Hash::new();
                    h.insert(b"f", b"\r\n");
                    Value::Hash(h)
                },
                expires_at_ms: Some(7),
            },
            Effect::Put {
                db: 1,
                key: b("z"),
                value: {
                    let mut z = crate::store::ZSet::new();
                    z.insert(b"m", f64::NEG_INFINITY);
                    Value::ZSet(z)
                },
                expires_at_ms: None,
            },
            Effect::Edit {
                db: 1,
                key: b("h"),
                edit: Edit::HashSet(vec![(b("f"), b("v")), (b(""), b("\r\n"))]),
            },
            Effect::Edit {
                db: 1,
                key: b("h"),
                edit: Edit::HashDel(vec![b("f")]),
            },
            Effect::Edit {
                db: 1,
                key: b("s"),
                edit: Edit::SetAdd(vec![b("1"), b("x")]),
            },
            Effect::Edit {
                db: 1,
                key: b("s"),
                edit: Edit::SetRem(vec![b("x")]),
            },
            Effect::Edit {
                db: 1,
                key: b("z"),
                edit: Edit::ZSetPut(vec![
                    (b("m"), Score::new(0.1 + 0.2)),
                    (b("n"), Score::new(f64::NEG_INFINITY)),
                    (b("o"), Score::new(1e300)),
                ]),
            },
            Effect::Edit {
                db: 1,
                key: b("z"),
                edit: Edit::ZSetRem(vec![b("m")]),
            },
            Effect::Del { db: 0, key: b("d") },
            Effect::Expire {
                db: 0,
                key: b("e"),
                expires_at_ms: Some(1),
            },
            Effect::Expire {
                db: 0,
                key: b("p"),
                expires_at_ms: None,
            },
            Effect::FlushDb { db: 15 },
            Effect::FlushAll,
            Effect::SwapDb { a: 1, b: 2 },
        ];
        let mut out = BytesMut::new();
        encode(&effects, &mut out);
        assert_eq!(decode(&out).expect("decodes"), effects);
        assert!(decode(b"*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n")
            .expect_err("not an effect")
            .contains("INCR"));
    }
}
