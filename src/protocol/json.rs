//! The spec's JSON protocol: one JSON object per request, one JSON object plus `\n` per reply.
//!
//! Requests may follow each other with or without whitespace or newlines between them, so the
//! decoder finds where an object ends with an incremental depth scanner (strings and escapes
//! aware, bounded size and nesting) and only then parses the complete object with serde_json.
//! Each request is mapped to the shared [`Request`] type plus a [`ReplyShape`] naming the spec
//! command it was; the connection hands that shape back with the request's own reply, so the
//! encoder can lay the reply out the way the spec shows it
//! (`{"status": "success", "message": "Key set successfully", ...}`). The codec keeps no
//! record of requests in flight: a request that gets no reply (`CLIENT REPLY OFF`/`SKIP`)
//! drops its shape, and a reply that answers no request (a MONITOR line) is generic.
//!
//! This module must not know about the store: it maps wire objects to requests and replies.

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Map, Value};
use tokio_util::codec::Decoder;

use super::{Incoming, ProtocolError, Reply, ReplyShape, Request};

/// Limits for untrusted JSON input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Largest request object in bytes (512 MB, like Redis's bulk limit).
    pub max_object_len: usize,
    /// Deepest nesting of objects and arrays accepted.
    pub max_depth: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits {
            max_object_len: 512 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// The JSON protocol codec of one connection.
#[derive(Debug)]
pub struct JsonCodec {
    server_id: u64,
    limits: JsonLimits,
    /// The client has yet to authenticate on a node with a password: objects are held to
    /// `UNAUTHENTICATED_MAX_OBJECT_LEN`, as Redis holds RESP requests before AUTH.
    pub(super) unauthenticated: bool,
    scan: Scan,
}

/// How to render the reply of one request: which of the spec's commands it was, with the
/// fields its reply echoes. Wrapped in the opaque [`ReplyShape`] outside this module.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) enum Shape {
    Set {
        key: Bytes,
        ttl: Option<i64>,
    },
    Get {
        key: Bytes,
    },
    Delete {
        key: Bytes,
    },
    Expire {
        key: Bytes,
        ttl: i64,
    },
    Stats,
    Keys,
    Ping,
    /// Any other reply: `"result"` holds it as JSON (errors: `"message"`).
    #[default]
    Generic,
}

#[derive(Debug, Default)]
struct Scan {
    pos: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    started: bool,
}

impl JsonCodec {
    /// A codec for the node with this id (every reply carries it as `server_id`).
    pub fn new(server_id: u64, limits: JsonLimits) -> Self {
        JsonCodec {
            server_id,
            limits,
            unauthenticated: false,
            scan: Scan::default(),
        }
    }

    /// Advances the scanner; returns the length of the first complete object in `src`.
    fn scan(&mut self, src: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let unauthenticated = self.unauthenticated;
        let max = if unauthenticated {
            self.limits
                .max_object_len
                .min(UNAUTHENTICATED_MAX_OBJECT_LEN)
        } else {
            self.limits.max_object_len
        };
        let s = &mut self.scan;
        while s.pos < src.len() {
            let c = src[s.pos];
            s.pos += 1;
            if !s.started {
                match c {
                    b' ' | b'\t' | b'\r' | b'\n' => continue,
                    b'{' => {
                        s.started = true;
                        s.depth = 1;
                        continue;
                    }
                    other => {
                        return Err(ProtocolError::Json(format!(
                            "expected '{{' to start a request object, got {:?}",
                            other as char
                        )))
                    }
                }
            }
            if s.in_string {
                if s.escaped {
                    s.escaped = false;
                } else if c == b'\\' {
                    s.escaped = true;
                } else if c == b'"' {
                    s.in_string = false;
                }
                continue;
            }
            match c {
                b'"' => s.in_string = true,
                b'{' | b'[' => {
                    s.depth += 1;
                    if s.depth > self.limits.max_depth {
                        return Err(ProtocolError::Json(format!(
                            "nesting deeper than {} levels",
                            self.limits.max_depth
                        )));
                    }
                }
                b'}' | b']' => {
                    s.depth -= 1;
                    if s.depth == 0 {
                        let end = s.pos;
                        // The limit holds for an object that arrived whole in one read, too.
                        if end > max {
                            return Err(too_large(max, unauthenticated));
                        }
                        *s = Scan::default();
                        return Ok(Some(end));
                    }
                }
                _ => {}
            }
        }
        if s.pos > max {
            return Err(too_large(max, unauthenticated));
        }
        Ok(None)
    }

    /// Appends `reply` as one JSON object and `\n`, laid out for `shape`.
    pub(super) fn encode_shaped(
        &self,
        reply: &Reply,
        shape: &Shape,
        dst: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        let value = self.render(shape, reply);
        let mut writer = dst.writer();
        serde_json::to_writer(&mut writer, &value)
            .map_err(|e| ProtocolError::Json(format!("encoding reply: {e}")))?;
        writer.into_inner().put_u8(b'\n');
        Ok(())
    }

    fn render(&self, shape: &Shape, reply: &Reply) -> Value {
        if let Reply::Push(items) = reply {
            return render_push(items);
        }
        let mut out = Map::new();
        let key = match shape {
            Shape::Set { key, .. }
            | Shape::Get { key }
            | Shape::Delete { key }
            | Shape::Expire { key, .. } => Some(key.clone()),
            _ => None,
        };
        if let Reply::Error(e) = reply {
            out.insert("status".into(), json!("error"));
            out.insert("message".into(), json!(e.strip_prefix("ERR ").unwrap_or(e)));
        } else {
            let not_found = matches!(
                (shape, reply),
                (Shape::Get { .. }, Reply::Nil)
                    | (Shape::Delete { .. } | Shape::Expire { .. }, Reply::Int(0))
            );
            if not_found {
                out.insert("status".into(), json!("error"));
                out.insert("message".into(), json!("Key not found"));
                out.insert("value".into(), Value::Null);
            } else {
                out.insert("status".into(), json!("success"));
                self.render_success(shape, reply, &mut out);
            }
        }
        if let Some(key) = key {
            // `"key"` for text, `"key_base64"` for binary keys, like values.
            insert_bytes(&mut out, "key", &Reply::Bulk(key));
        }
        out.insert("server_id".into(), json!(self.server_id));
        Value::Object(out)
    }

    fn render_success(&self, shape: &Shape, reply: &Reply, out: &mut Map<String, Value>) {
        match (shape, reply) {
            (Shape::Set { ttl, .. }, _) => {
                out.insert("message".into(), json!("Key set successfully"));
                if let Some(ttl) = ttl {
                    out.insert("ttl".into(), json!(ttl));
                }
            }
            (Shape::Get { .. }, Reply::Array(parts)) if parts.len() == 2 => {
                insert_bytes(out, "value", &parts[0]);
                out.insert("ttl".into(), to_json(&parts[1]));
            }
            (Shape::Delete { .. }, _) => {
                out.insert("message".into(), json!("Key deleted successfully"));
            }
            (Shape::Expire { ttl, .. }, _) => {
                out.insert("message".into(), json!("Expiration set successfully"));
                out.insert("ttl".into(), json!(ttl));
            }
            (Shape::Stats, reply) => {
                out.insert("stats".into(), to_json(reply));
            }
            (Shape::Keys, Reply::Array(keys)) => {
                out.insert("count".into(), json!(keys.len()));
                out.insert(
                    "keys".into(),
                    Value::Array(keys.iter().map(to_json).collect()),
                );
            }
            (Shape::Ping, _) => {
                out.insert("message".into(), json!("PONG"));
            }
            (_, reply) => {
                out.insert("result".into(), to_json(reply));
            }
        }
    }
}

impl Decoder for JsonCodec {
    type Item = Incoming;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, ProtocolError> {
        let Some(end) = self.scan(src)? else {
            return Ok(None);
        };
        let object = src.split_to(end);
        let value: Value =
            serde_json::from_slice(&object).map_err(|e| ProtocolError::Json(format!("{e}")))?;
        let Value::Object(fields) = value else {
            return Err(ProtocolError::Json("request is not an object".into()));
        };
        Ok(Some(match map_request(&fields) {
            Ok((request, shape)) => Incoming::Request(request, ReplyShape::json(shape)),
            Err(message) => Incoming::Invalid(message),
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, ProtocolError> {
        match self.decode(src)? {
            Some(item) => Ok(Some(item)),
            None if src.iter().all(u8::is_ascii_whitespace) => Ok(None),
            None => Err(ProtocolError::Json(
                "connection closed inside a request".into(),
            )),
        }
    }
}

/// The error for a request object over the size limit.
fn too_large(max: usize, unauthenticated: bool) -> ProtocolError {
    let who = if unauthenticated {
        "unauthenticated "
    } else {
        ""
    };
    ProtocolError::Json(format!("{who}request object larger than {max} bytes"))
}

/// Maps one request object to a [`Request`] and the shape of its reply.
fn map_request(fields: &Map<String, Value>) -> Result<(Request, Shape), String> {
    let command = match fields.get("command") {
        Some(Value::String(c)) => c.to_ascii_uppercase(),
        Some(_) => return Err("field 'command' must be a string".into()),
        None => return Err("missing field 'command'".into()),
    };
    let mut password = match fields.get("password") {
        None | Some(Value::Null) => None,
        Some(v) => Some(scalar_bytes(v).ok_or("field 'password' must be a string")?),
    };
    if let Some(args) = fields.get("args") {
        let Value::Array(items) = args else {
            return Err("field 'args' must be an array of strings".into());
        };
        let mut all = vec![Bytes::from(command.into_bytes())];
        for item in items {
            all.push(scalar_bytes(item).ok_or("field 'args' must be an array of strings")?);
        }
        return Ok((
            Request {
                args: all,
                db: db(fields)?,
                password,
            },
            Shape::Generic,
        ));
    }
    let key = || -> Result<Bytes, String> {
        match fields.get("key") {
            Some(v) => scalar_bytes(v).ok_or_else(|| "field 'key' must be a string".into()),
            None => {
                bytes_field(fields, "key_base64")?.ok_or_else(|| "missing field 'key'".to_string())
            }
        }
    };
    let ttl = |required: bool| -> Result<Option<i64>, String> {
        match fields.get("ttl") {
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| "field 'ttl' must be an integer number of seconds".into()),
            Some(Value::Null) | None if !required => Ok(None),
            Some(_) => Err("field 'ttl' must be an integer number of seconds".into()),
            None => Err("missing field 'ttl'".into()),
        }
    };
    let (args, shape) = match command.as_str() {
        "SET" => {
            let key = key()?;
            let value = match fields.get("value") {
                Some(v) => scalar_bytes(v).ok_or("field 'value' must be a string")?,
                None => bytes_field(fields, "value_base64")?.ok_or("missing field 'value'")?,
            };
            let ttl = ttl(false)?;
            let shape = Shape::Set {
                key: key.clone(),
                ttl,
            };
            let mut args = vec![Bytes::from_static(b"SET"), key, value];
            if let Some(ttl) = ttl {
                args.push(Bytes::from_static(b"EX"));
                args.push(Bytes::from(ttl.to_string()));
            }
            (args, shape)
        }
        "GET" => {
            let key = key()?;
            let shape = Shape::Get { key: key.clone() };
            (vec![Bytes::from_static(b"GETWITHTTL"), key], shape)
        }
        "DELETE" | "DEL" => {
            let key = key()?;
            let shape = Shape::Delete { key: key.clone() };
            (vec![Bytes::from_static(b"DEL"), key], shape)
        }
        "EXPIRE" => {
            let key = key()?;
            let ttl = ttl(true)?.unwrap_or_default();
            let shape = Shape::Expire {
                key: key.clone(),
                ttl,
            };
            let args = vec![Bytes::from_static(b"EXPIRE"), key, ttl.to_string().into()];
            (args, shape)
        }
        "STATS" => (vec![Bytes::from_static(b"STATS")], Shape::Stats),
        "KEYS" => {
            let pattern = match fields.get("pattern") {
                None | Some(Value::Null) => Bytes::from_static(b"*"),
                Some(v) => scalar_bytes(v).ok_or("field 'pattern' must be a string")?,
            };
            (vec![Bytes::from_static(b"KEYS"), pattern], Shape::Keys)
        }
        "PING" => (vec![Bytes::from_static(b"PING")], Shape::Ping),
        "AUTH" => {
            // The password is this command's argument, not a credential to check first.
            let password = password.take().ok_or("missing field 'password'")?;
            let mut args = vec![Bytes::from_static(b"AUTH")];
            if let Some(user) = fields.get("username").filter(|v| !v.is_null()) {
                args.push(scalar_bytes(user).ok_or("field 'username' must be a string")?);
            }
            args.push(password);
            (args, Shape::Generic)
        }
        _ => {
            // Any other command in the short form: the command, then key and value if given.
            let mut args = vec![Bytes::from(command.into_bytes())];
            if fields.contains_key("key") || fields.contains_key("key_base64") {
                args.push(key()?);
            }
            if let Some(v) = fields.get("value") {
                args.push(scalar_bytes(v).ok_or("field 'value' must be a string")?);
            }
            (args, Shape::Generic)
        }
    };
    Ok((
        Request {
            args,
            db: db(fields)?,
            password,
        },
        shape,
    ))
}

/// The optional `"db"` field: an integer database index.
fn db(fields: &Map<String, Value>) -> Result<Option<i64>, String> {
    match fields.get("db") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| "field 'db' must be an integer".to_string()),
        Some(_) => Err("field 'db' must be an integer".into()),
    }
}

/// Strings as their UTF-8 bytes; numbers as their decimal text (as Redis clients send them).
fn scalar_bytes(v: &Value) -> Option<Bytes> {
    match v {
        Value::String(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
        Value::Number(n) => Some(Bytes::from(n.to_string())),
        _ => None,
    }
}

fn bytes_field(fields: &Map<String, Value>, name: &str) -> Result<Option<Bytes>, String> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|b| Some(Bytes::from(b)))
            .map_err(|e| format!("field '{name}' is not valid base64: {e}")),
        Some(_) => Err(format!("field '{name}' must be a base64 string")),
    }
}

/// Puts a bulk reply under `name`, or under `name_base64` when it is not valid UTF-8.
fn insert_bytes(out: &mut Map<String, Value>, name: &str, reply: &Reply) {
    match reply {
        Reply::Bulk(b) => match std::str::from_utf8(b) {
            Ok(s) => {
                out.insert(name.into(), json!(s));
            }
            Err(_) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(b);
                out.insert(format!("{name}_base64"), json!(encoded));
            }
        },
        other => {
            out.insert(name.into(), to_json(other));
        }
    }
}

/// A push (pub/sub) as one object named by its kind: `{"push": "message", "channel": ...,
/// "message": ...}`, `{"push": "pmessage", "pattern": ..., "channel": ..., "message": ...}`,
/// `{"push": "subscribe", "channel": ..., "count": n}` (`"pattern"` for the `p` kinds). Binary
/// fields are `<name>_base64`, as keys and values are; an UNSUBSCRIBE with nothing to leave has
/// `"channel": null`. Any other push keeps its items as `"data"`.
fn render_push(items: &[Reply]) -> Value {
    let mut out = Map::new();
    let kind = match items.first() {
        Some(Reply::Bulk(k)) => String::from_utf8_lossy(k).into_owned(),
        _ => String::new(),
    };
    out.insert("push".into(), json!(kind));
    match (kind.as_str(), items) {
        ("message", [_, channel, message]) => {
            insert_bytes(&mut out, "channel", channel);
            insert_bytes(&mut out, "message", message);
        }
        ("pmessage", [_, pattern, channel, message]) => {
            insert_bytes(&mut out, "pattern", pattern);
            insert_bytes(&mut out, "channel", channel);
            insert_bytes(&mut out, "message", message);
        }
        ("subscribe" | "unsubscribe", [_, channel, count]) => {
            insert_bytes(&mut out, "channel", channel);
            out.insert("count".into(), to_json(count));
        }
        ("psubscribe" | "punsubscribe", [_, pattern, count]) => {
            insert_bytes(&mut out, "pattern", pattern);
            out.insert("count".into(), to_json(count));
        }
        (_, items) => {
            let data = items.iter().skip(1).map(to_json).collect();
            out.insert("data".into(), Value::Array(data));
        }
    }
    Value::Object(out)
}

/// Maps any reply to a JSON value: maps become objects, binary strings `{"base64": ...}`.
fn to_json(reply: &Reply) -> Value {
    match reply {
        Reply::Simple(s) => json!(s),
        Reply::Error(e) => json!({ "error": e }),
        Reply::Int(n) => json!(n),
        Reply::Bulk(b) | Reply::Verbatim(b) => match std::str::from_utf8(b) {
            Ok(s) => json!(s),
            Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) }),
        },
        Reply::Nil | Reply::NilArray => Value::Null,
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
            Value::Array(items.iter().map(to_json).collect())
        }
        Reply::Strings(strings) => Value::Array(strings.to_replies().iter().map(to_json).collect()),
        Reply::Map(pairs) => {
            let mut map = Map::new();
            for (k, v) in pairs {
                let key = match k {
                    Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                    Reply::Simple(s) => s.to_string(),
                    other => to_json(other).to_string(),
                };
                map.insert(key, to_json(v));
            }
            Value::Object(map)
        }
        // JSON has no infinities: `"inf"` / `"-inf"` / `"nan"`, as Redis spells them.
        Reply::Double(d) if !d.is_finite() => json!(crate::protocol::resp::format_double(*d)),
        Reply::Double(d) => json!(d),
        Reply::Bool(b) => json!(b),
    }
}

/// Largest request object before the client authenticates on a node with a password: about
/// what Redis lets such a client send in one RESP request (10 bulks of 16 KB).
const UNAUTHENTICATED_MAX_OBJECT_LEN: usize = 10 * 16 * 1024;

#[cfg(test)]
mod tests;
