//! RESP (the Redis protocol) request decoding and reply encoding, RESP2 and RESP3.
//!
//! The decoder follows Redis's `processMultibulkBuffer`/`processInlineBuffer` in
//! `networking.c`: a buffer starting with `*` is a multibulk request of bulk strings, anything
//! else is an inline command line split with Redis's quoting rules. Protocol errors use Redis's
//! exact wording. This is hand-written rather than built on `redis_protocol::codec::Resp2`
//! because a server must accept what Redis accepts and reject what it rejects with the same
//! text: inline commands, `expected '$'` for non-bulk elements, and size limits checked
//! before anything is allocated. The client side and the tests use `redis_protocol`, which
//! keeps this encoder honest against an independent implementation.
//!
//! Like Redis (`securityWarningCommand`), the decoder recognises HTTP sent to the port, which
//! is how a web page attacks a Redis-like server through the browser (cross-protocol
//! scripting): a `POST` or `Host:` command, or an inline HTTP request line, is decoded as
//! [`Incoming::CrossProtocol`] instead of a request, and nothing after it is decoded.
//!
//! This module must not know about commands or the store.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{Incoming, ProtocolError, Reply, ReplyShape, Request};

/// Size limits applied while decoding, with Redis's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespLimits {
    /// Longest bulk string accepted (`proto-max-bulk-len`, 512 MB).
    pub max_bulk_len: usize,
    /// Most elements in one multibulk request (1,048,576).
    pub max_multibulk_len: usize,
    /// Longest inline command or header line without a newline (64 KB).
    pub max_inline_len: usize,
    /// Most unparsed input buffered for one connection before it is closed (Redis's
    /// `client-query-buffer-limit`, 1 GB). Enforced by the connection loop.
    pub max_query_buffer: usize,
}

impl Default for RespLimits {
    fn default() -> Self {
        RespLimits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
            max_query_buffer: 1 << 30,
        }
    }
}

/// Decodes RESP requests and encodes replies in the connection's RESP version.
#[derive(Debug, Default)]
pub struct RespCodec {
    /// The protocol version replies are encoded in: 2 (default) or 3 (after `HELLO 3`).
    pub version: u8,
    limits: RespLimits,
    /// The client has yet to AUTH on a node with a password: requests are held to
    /// 10 elements and bulks of 16 KB, as Redis since CVE-2021-32675. Stored
    /// negated so that a new (or `Default`) codec is unrestricted, as the log replay needs.
    pub(super) unauthenticated: bool,
    /// Progress through a multibulk request that has not fully arrived yet, so that a large
    /// request arriving in many reads is scanned once, not once per read.
    partial: Option<Partial>,
    /// The span list of the last request, kept (empty) for the next one: one allocation less
    /// per request. Dropped instead when a huge request grew it past `SPARE_SPANS_MAX`.
    spare_spans: Vec<(usize, usize)>,
}

#[derive(Debug)]
struct Partial {
    expected: usize,
    pos: usize,
    spans: Vec<(usize, usize)>,
}

impl RespCodec {
    /// A codec with the given limits, speaking RESP2 until told otherwise.
    pub fn new(limits: RespLimits) -> Self {
        RespCodec {
            version: 2,
            limits,
            unauthenticated: false,
            partial: None,
            spare_spans: Vec::new(),
        }
    }

    fn decode_multibulk(&mut self, src: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        let limits = self.limits;
        let mut state = match self.partial.take() {
            Some(state) => state,
            None => {
                let Some((line, next)) = line_at(src, 0, limits, "too big mbulk count string")?
                else {
                    return Ok(None);
                };
                let count = parse_int(&line[1..])
                    .filter(|n| *n <= limits.max_multibulk_len as i64)
                    .ok_or(ProtocolError::Resp("invalid multibulk length"))?;
                if self.unauthenticated && count > UNAUTHENTICATED_MAX_MULTIBULK_LEN {
                    return Err(ProtocolError::Resp("unauthenticated multibulk length"));
                }
                if count <= 0 {
                    // `*0` and `*-1` are answered with nothing, as Redis does.
                    let _ = src.split_to(next);
                    return Ok(Some(Request::default()));
                }
                let count = count as usize;
                let mut spans = std::mem::take(&mut self.spare_spans);
                // Reserve for what the header claims only up to a small bound: the claim is
                // untrusted until the bytes arrive.
                spans.reserve(count.min(64));
                Partial {
                    expected: count,
                    pos: next,
                    spans,
                }
            }
        };
        while state.spans.len() < state.expected {
            let pos = state.pos;
            if pos >= src.len() {
                self.partial = Some(state);
                return Ok(None);
            }
            if src[pos] != b'$' {
                return Err(ProtocolError::ExpectedBulk(src[pos] as char));
            }
            let Some((line, data_start)) = line_at(src, pos, limits, "too big bulk count string")?
            else {
                self.partial = Some(state);
                return Ok(None);
            };
            let len = parse_int(&line[1..])
                .filter(|n| *n >= 0 && *n <= limits.max_bulk_len as i64)
                .ok_or(ProtocolError::Resp("invalid bulk length"))?;
            if self.unauthenticated && len > UNAUTHENTICATED_MAX_BULK_LEN {
                return Err(ProtocolError::Resp("unauthenticated bulk length"));
            }
            let len = len as usize;
            let end = data_start + len;
            if src.len() < end + 2 {
                // Make room for the rest of this bulk in one allocation, but never more than
                // what has been claimed and a bounded step at a time.
                src.reserve((end + 2 - src.len()).min(1 << 20));
                self.partial = Some(state);
                return Ok(None);
            }
            state.spans.push((data_start, end));
            state.pos = end + 2;
        }
        let frame = src.split_to(state.pos).freeze();
        let args = state
            .spans
            .iter()
            .map(|&(s, e)| frame.slice(s..e))
            .collect();
        if state.spans.capacity() <= SPARE_SPANS_MAX {
            state.spans.clear();
            self.spare_spans = state.spans;
        }
        Ok(Some(Request {
            args,
            db: None,
            password: None,
        }))
    }

    fn decode_inline(&mut self, src: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        let Some(newline) = memchr(b'\n', src) else {
            if src.len() > self.limits.max_inline_len {
                return Err(ProtocolError::Resp("too big inline request"));
            }
            return Ok(None);
        };
        let line = src.split_to(newline + 1);
        let mut line = &line[..newline];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let args = split_args(line).ok_or(ProtocolError::Resp("unbalanced quotes in request"))?;
        Ok(Some(Request {
            args: args.into_iter().map(Bytes::from).collect(),
            db: None,
            password: None,
        }))
    }
}

impl Decoder for RespCodec {
    type Item = Incoming;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, ProtocolError> {
        // Empty requests (blank inline lines, `*0`) get no reply: skip them here.
        loop {
            if src.is_empty() {
                return Ok(None);
            }
            let inline = self.partial.is_none() && src[0] != b'*';
            let request = if inline {
                self.decode_inline(src)?
            } else {
                self.decode_multibulk(src)?
            };
            match request {
                None => return Ok(None),
                Some(r) if r.args.is_empty() => continue,
                Some(r) if is_http(&r.args, inline) => return Ok(Some(Incoming::CrossProtocol)),
                Some(r) => return Ok(Some(Incoming::Request(r, ReplyShape::generic()))),
            }
        }
    }
}

impl Encoder<&Reply> for RespCodec {
    type Error = ProtocolError;

    fn encode(&mut self, reply: &Reply, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        encode_reply(reply, self.version >= 3, dst);
        Ok(())
    }
}

impl Encoder<Reply> for RespCodec {
    type Error = ProtocolError;

    fn encode(&mut self, reply: Reply, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        encode_reply(&reply, self.version >= 3, dst);
        Ok(())
    }
}

/// Appends `reply` to `dst` as RESP3 when `resp3` is set, else as RESP2.
pub fn encode_reply(reply: &Reply, resp3: bool, dst: &mut BytesMut) {
    match reply {
        Reply::Simple(s) => line(dst, b'+', s.as_bytes()),
        Reply::Error(e) => {
            // A newline inside an error would break framing; Redis replaces them too.
            if e.contains(['\r', '\n']) {
                line(dst, b'-', e.replace(['\r', '\n'], " ").as_bytes());
            } else {
                line(dst, b'-', e.as_bytes());
            }
        }
        Reply::Int(n) => header(dst, b':', *n),
        Reply::Bulk(b) => bulk(dst, b),
        Reply::Nil if resp3 => dst.put_slice(b"_\r\n"),
        Reply::Nil => dst.put_slice(b"$-1\r\n"),
        Reply::NilArray if resp3 => dst.put_slice(b"_\r\n"),
        Reply::NilArray => dst.put_slice(b"*-1\r\n"),
        Reply::Array(items) => {
            header(dst, b'*', items.len() as i64);
            items.iter().for_each(|r| encode_reply(r, resp3, dst));
        }
        Reply::Set(items) => {
            header(dst, if resp3 { b'~' } else { b'*' }, items.len() as i64);
            items.iter().for_each(|r| encode_reply(r, resp3, dst));
        }
        Reply::Map(pairs) => {
            if resp3 {
                header(dst, b'%', pairs.len() as i64);
            } else {
                header(dst, b'*', pairs.len() as i64 * 2);
            }
            for (k, v) in pairs {
                encode_reply(k, resp3, dst);
                encode_reply(v, resp3, dst);
            }
        }
        Reply::Double(d) => {
            let text = format_double(*d);
            if resp3 {
                line(dst, b',', text.as_bytes());
            } else {
                bulk(dst, text.as_bytes());
            }
        }
        Reply::Bool(b) if resp3 => dst.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Reply::Bool(b) => header(dst, b':', i64::from(*b)),
        Reply::Verbatim(text) if resp3 => {
            header(dst, b'=', text.len() as i64 + 4);
            dst.put_slice(b"txt:");
            dst.put_slice(text);
            dst.put_slice(b"\r\n");
        }
        Reply::Verbatim(text) => bulk(dst, text),
        Reply::Push(items) => {
            header(dst, if resp3 { b'>' } else { b'*' }, items.len() as i64);
            items.iter().for_each(|r| encode_reply(r, resp3, dst));
        }
        Reply::Strings(strings) => {
            header(dst, b'*', strings.len() as i64);
            strings.iter().for_each(|s| bulk(dst, s));
        }
    }
}

/// Formats a double the way Redis 7.0 replies with one (`addReplyDouble`: C's `%.17g`):
/// `inf`, `-inf`, `nan`, `-0`, else 17 significant digits without trailing zeros, in
/// exponent form (`1e+20`, `1.0000000000000001e-05`) below 1e-4 or from 1e17 on. So
/// `ZADD z 1.1 m` then `ZSCORE z m` is `1.1000000000000001`, as in Redis 7.0 (7.2 switched
/// to the shortest form).
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if d.is_nan() {
        return "nan".to_string();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // `%e` with 16 digits after the point is the rounding `%.17g` starts from; its exponent
    // picks the form.
    let sci = format!("{d:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..17).contains(&exp) {
        let fixed = format!("{d:.prec$}", prec = (16 - exp) as usize);
        strip_fraction_zeros(&fixed).to_string()
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            strip_fraction_zeros(mantissa),
            exp.unsigned_abs()
        )
    }
}

/// `1.500` -> `1.5`, `2.000` -> `2` (`%g` drops a fraction's trailing zeros).
fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Splits an inline command line like Redis's `sdssplitargs`: whitespace separates arguments,
/// `"..."` supports `\n`, `\r`, `\t`, `\b`, `\a`, `\xHH` and `\<char>` escapes, `'...'`
/// supports `\'`, and a closing quote must be followed by whitespace or the end.
/// Returns `None` for unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut arg = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            if in_double {
                let c = *line.get(i)?;
                if c == b'\\'
                    && i + 3 < line.len()
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    arg.push(hex_val(line[i + 2]) * 16 + hex_val(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < line.len() {
                    i += 1;
                    arg.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < line.len() && !is_space(line[i + 1]) {
                        return None;
                    }
                    in_double = false;
                    i += 1;
                    break;
                } else {
                    arg.push(c);
                }
            } else if in_single {
                let c = *line.get(i)?;
                if c == b'\\' && i + 1 < line.len() && line[i + 1] == b'\'' {
                    i += 1;
                    arg.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < line.len() && !is_space(line[i + 1]) {
                        return None;
                    }
                    in_single = false;
                    i += 1;
                    break;
                } else {
                    arg.push(c);
                }
            } else {
                match line.get(i) {
                    None => break,
                    Some(&c) if is_space(c) => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(&c) => arg.push(c),
                }
            }
            i += 1;
        }
        if in_double || in_single {
            return None;
        }
        args.push(arg);
    }
}

/// True for a request that is really HTTP. As Redis checks: the command is `POST` or `Host:`,
/// in any case and either framing; no Redis command has those names and every browser request
/// has one of them (its request line or its Host header). Beyond Redis, an inline line shaped
/// like an HTTP request line, `METHOD target HTTP/x.y`, is caught at once too: `GET / HTTP/1.1`
/// would otherwise be answered as a wrong-arity GET, and a page's custom method (`fetch` with
/// `method: "SET"`) would run as a command. A standard method counts with any target, any
/// other word only with an origin-form target (`/...`) or `*`, so that an inline
/// `SET key HTTP/1.1` typed into telnet stays a SET.
fn is_http(args: &[Bytes], inline: bool) -> bool {
    let Some(name) = args.first() else {
        return false;
    };
    // `eq_ignore_ascii_case` compares lengths first: GET, SET and the like cost two compares.
    if name.eq_ignore_ascii_case(b"POST") || name.eq_ignore_ascii_case(b"HOST:") {
        return true;
    }
    let [method, target, version] = args else {
        return false;
    };
    // Multibulk requests come from Redis clients, not browsers: only the names above count.
    inline
        && is_http_version(version)
        && is_token(method)
        && (HTTP_METHODS.contains(&method.as_ref())
            || target.starts_with(b"/")
            || target.as_ref() == b"*")
}

/// `HTTP/1.1`, `HTTP/1.0`, `HTTP/2`: the version at the end of an HTTP request line.
fn is_http_version(word: &[u8]) -> bool {
    match word.strip_prefix(b"HTTP/") {
        Some([major]) => major.is_ascii_digit(),
        Some([major, b'.', minor]) => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

/// An HTTP method: one or more of RFC 9110's token characters.
fn is_token(word: &[u8]) -> bool {
    !word.is_empty()
        && word
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// Parses a RESP integer strictly, as Redis's `string2ll` does: optional `-`, digits, no
/// leading zeros, no `+`, no spaces.
pub fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') || (neg && digits == b"0") {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(d - b'0');
        n = if neg {
            n.checked_mul(10)?.checked_sub(digit)?
        } else {
            n.checked_mul(10)?.checked_add(digit)?
        };
    }
    Some(n)
}

/// Finds the `\r\n`-terminated line starting at `start`: returns the line without its
/// terminator and the offset after it, or `None` if the terminator has not arrived yet.
fn line_at<'a>(
    src: &'a [u8],
    start: usize,
    limits: RespLimits,
    too_big: &'static str,
) -> Result<Option<(&'a [u8], usize)>, ProtocolError> {
    match memchr(b'\r', &src[start..]) {
        Some(off) if start + off + 1 < src.len() => {
            Ok(Some((&src[start..start + off], start + off + 2)))
        }
        Some(_) => Ok(None),
        None if src.len() - start > limits.max_inline_len => Err(ProtocolError::Resp(too_big)),
        None => Ok(None),
    }
}

/// Largest span list a codec keeps for reuse (16 KiB); a bigger one is freed after its
/// request.
const SPARE_SPANS_MAX: usize = 1024;
/// Most elements in one request before AUTH, as Redis allows (CVE-2021-32675).
const UNAUTHENTICATED_MAX_MULTIBULK_LEN: i64 = 10;
/// Longest bulk string before AUTH, as Redis allows (CVE-2021-32675).
const UNAUTHENTICATED_MAX_BULK_LEN: i64 = 16 * 1024;
/// The methods of RFC 9110 and RFC 5789, and HTTP/2's connection preface (`PRI * HTTP/2.0`).
const HTTP_METHODS: &[&[u8]] = &[
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH", b"PRI",
];

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

fn line(dst: &mut BytesMut, prefix: u8, text: &[u8]) {
    dst.reserve(text.len() + 3);
    dst.put_u8(prefix);
    dst.put_slice(text);
    dst.put_slice(b"\r\n");
}

fn header(dst: &mut BytesMut, prefix: u8, n: i64) {
    let mut buf = itoa::Buffer::new();
    line(dst, prefix, buf.format(n).as_bytes());
}

/// A bulk string's header alone, for a string of `len` bytes written after it (followed by
/// `\r\n`) from a buffer of its own.
pub(super) fn bulk_header(dst: &mut BytesMut, len: usize) {
    header(dst, b'$', len as i64);
}

fn bulk(dst: &mut BytesMut, data: &[u8]) {
    dst.reserve(data.len() + 16);
    header(dst, b'$', data.len() as i64);
    dst.put_slice(data);
    dst.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests;
