//! Protocol-neutral request and reply types, and the two wire codecs that map to them.
//!
//! Every codec decodes bytes into [`Incoming`] values (one [`Request`] each, with the
//! [`ReplyShape`] its reply is to be encoded in) and encodes [`Reply`] values back into bytes.
//! This module knows bytes and wire types only; it never touches the store.

pub mod json;
pub mod resp;

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

pub use json::JsonCodec;
pub use resp::RespCodec;

/// One command as it arrived: the command name followed by its arguments, binary-safe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// `args[0]` is the command name (any case); the rest are its arguments.
    pub args: Vec<Bytes>,
    /// Run in this database instead of the connection's selected one (the JSON protocol's
    /// optional `"db"` field); the selection itself is not changed.
    pub db: Option<i64>,
    /// Authenticate with this password before running (the JSON protocol's optional
    /// `"password"` field); a wrong one fails the request with AUTH's error.
    pub password: Option<Bytes>,
}

impl Request {
    /// Builds a request from anything that turns into byte strings.
    pub fn new<I, A>(args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<Bytes>,
    {
        Request {
            args: args.into_iter().map(Into::into).collect(),
            db: None,
            password: None,
        }
    }
}

/// What a decoder produced: a request to execute, or input it rejected without losing the
/// connection (the JSON protocol answers a missing field with an error object and goes on).
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A well-formed request, and the shape its reply is to be encoded in (hand both back to
    /// [`Codec::encode`] with that request's reply).
    Request(Request, ReplyShape),
    /// A request the codec could frame but not map to a command; answered with this error,
    /// in the generic shape.
    Invalid(String),
    /// HTTP sent to the port (RESP only): a `POST` or `Host:` command, or an HTTP request
    /// line. Most likely a web page made a browser send it to attack the node (cross-protocol
    /// scripting), with commands hidden in the body. Not answered: the connection closes at
    /// once, and nothing after it is run, as Redis does.
    CrossProtocol,
}

/// How the codec that decoded a request wants that request's reply laid out. For the JSON
/// protocol it names the spec command the request was (a SET is answered
/// `"message": "Key set successfully"` and echoes its key); for RESP it is always
/// [`ReplyShape::generic`], which costs nothing to make or drop.
///
/// Opaque outside `protocol`: the connection keeps it beside its request and gives it back to
/// [`Codec::encode`] with that request's reply, and nothing else looks inside. Because the
/// shape travels with its request instead of waiting in a queue in the codec, a request that
/// gets no reply (CLIENT REPLY OFF or SKIP) simply drops its shape, and a reply that answers no
/// request (a MONITOR line) is encoded generic: replies cannot fall out of step with requests.
///
/// Boxed, and absent for the generic layout: RESP requests (the hot path) carry one pointer
/// that is never allocated, so a decoded request stays small.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplyShape(Option<Box<json::Shape>>);

impl ReplyShape {
    /// The layout of a reply that is rendered as itself: every RESP reply, the JSON
    /// protocol's `"result"` replies, and replies that answer no request of their own
    /// (MONITOR lines, protocol errors, [`Incoming::Invalid`]).
    pub const fn generic() -> ReplyShape {
        ReplyShape(None)
    }

    /// The JSON shape of one request (the generic one is not allocated).
    fn json(shape: json::Shape) -> ReplyShape {
        match shape {
            json::Shape::Generic => ReplyShape(None),
            other => ReplyShape(Some(Box::new(other))),
        }
    }
}

/// A reply, shaped like Redis's RESP3 types so that both RESP versions and JSON can render it.
/// Serde carries replies of commands forwarded to another node over the cluster bus.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Reply {
    /// A status line such as `OK` or `PONG` (`+OK`).
    Simple(Cow<'static, str>),
    /// An error whose text starts with its code, as Redis sends it: `ERR syntax error`.
    Error(Cow<'static, str>),
    /// An integer (`:1`).
    Int(i64),
    /// A binary-safe string (`$3\r\nfoo`).
    Bulk(Bytes),
    /// The null value: `$-1` in RESP2, `_` in RESP3.
    Nil,
    /// The null array: `*-1` in RESP2, `_` in RESP3 (EXEC after an aborted WATCH).
    NilArray,
    /// An ordered list of replies.
    Array(Vec<Reply>),
    /// Key/value pairs in order: a flat array in RESP2, `%` in RESP3.
    Map(Vec<(Reply, Reply)>),
    /// An unordered collection: an array in RESP2, `~` in RESP3.
    Set(Vec<Reply>),
    /// A floating point number: a bulk string in RESP2, `,` in RESP3.
    Double(f64),
    /// A boolean: the integer 1/0 in RESP2, `#t`/`#f` in RESP3.
    Bool(bool),
    /// Text meant for humans (INFO): a bulk string in RESP2, `=` with `txt` in RESP3.
    Verbatim(Bytes),
    /// Out-of-band data (a pub/sub message or subscription confirmation): an array in RESP2,
    /// `>` in RESP3; the JSON protocol renders it as a `{"push": ...}` object.
    Push(Vec<Reply>),
    /// An array of bulk strings packed in one buffer, sent exactly as an [`Reply::Array`] of
    /// [`Reply::Bulk`]s would be: a range of a list (LRANGE) without a `Reply`, an allocation
    /// or a reference count per element.
    Strings(Strings),
}

/// Byte strings packed one after another in one buffer (see [`Reply::Strings`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Strings {
    data: Vec<u8>,
    /// Where each string ends in `data`.
    ends: Vec<usize>,
}

impl Strings {
    /// Room for `count` strings of `bytes` bytes in all.
    pub fn with_capacity(count: usize, bytes: usize) -> Strings {
        Strings {
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(count),
        }
    }

    /// Appends a string.
    #[inline]
    pub fn push(&mut self, s: &[u8]) {
        self.data.extend_from_slice(s);
        self.ends.push(self.data.len());
    }

    /// How many strings there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The strings in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(from, to)| &self.data[from..to])
    }

    /// The same strings as one [`Reply::Bulk`] each.
    pub fn to_replies(&self) -> Vec<Reply> {
        self.iter()
            .map(|s| Reply::Bulk(Bytes::copy_from_slice(s)))
            .collect()
    }
}

impl Reply {
    /// The `+OK` reply.
    pub const fn ok() -> Reply {
        Reply::Simple(Cow::Borrowed("OK"))
    }

    /// An array of status lines: what every `... HELP` subcommand answers.
    pub fn status_lines(lines: &[&'static str]) -> Reply {
        Reply::Array(
            lines
                .iter()
                .map(|l| Reply::Simple(Cow::Borrowed(l)))
                .collect(),
        )
    }

    /// A bulk reply of static text, with no copy.
    pub fn text(s: &'static str) -> Reply {
        Reply::Bulk(Bytes::from_static(s.as_bytes()))
    }

    /// A bulk reply copied from a byte slice.
    pub fn bulk(data: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(data.as_ref()))
    }

    /// An error reply with the given full text (code first, e.g. `ERR ...`).
    pub fn error(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error(text.into())
    }

    /// True when this reply is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// A request stream that cannot be parsed any further. Fatal to that connection only: the
/// connection answers with the error text once and closes, since it cannot re-synchronise.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The RESP input broke the protocol; the text is Redis's own wording after
    /// `Protocol error: `, e.g. `invalid multibulk length`.
    #[error("Protocol error: {0}")]
    Resp(&'static str),
    /// The RESP input had a bulk header other than `$`.
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// The JSON input was not a JSON object or exceeded a limit.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// Reading from or writing to the socket failed.
    #[error("connection i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// How many ways codecs encode a [`Reply::Push`]: RESP2 (an array), RESP3 (a push frame) and
/// JSON (one object per line); see [`Codec::push_encoding`].
pub const PUSH_ENCODINGS: usize = 3;

/// A connection's codec: decodes requests, encodes replies, and knows how to answer a protocol
/// error before the connection closes.
pub trait Codec: tokio_util::codec::Decoder<Item = Incoming, Error = ProtocolError> + Send {
    /// Appends `reply` to `dst`, laid out as `shape` says: the shape this codec decoded with
    /// the request `reply` answers, or [`ReplyShape::generic`] for a reply that answers no
    /// request of its own. Every decoded request gets at most one call, with its own shape.
    ///
    /// # Errors
    /// The reply could not be rendered (JSON serialisation; no reply a command makes fails).
    fn encode(
        &mut self,
        reply: &Reply,
        shape: &ReplyShape,
        dst: &mut BytesMut,
    ) -> Result<(), ProtocolError>;

    /// When `reply` is a single string of at least `min` bytes and this codec sends it as it
    /// is (RESP's bulk string), appends the reply's header to `dst` and returns the string:
    /// the caller writes it, then `\r\n`, from where it lies instead of copying it. Else
    /// `None`, and the caller encodes the reply as usual.
    fn encode_large(&mut self, _reply: &Reply, _min: usize, _dst: &mut BytesMut) -> Option<Bytes> {
        None
    }

    /// Switches the RESP version replies are encoded in (no-op for JSON).
    fn set_resp_version(&mut self, _version: u8) {}

    /// Which way this codec encodes a [`Reply::Push`] now, below [`PUSH_ENCODINGS`]: two
    /// codecs that answer the same number encode every push to the same bytes (so a pub/sub
    /// message is encoded once per way and its bytes shared).
    fn push_encoding(&self) -> usize;

    /// Tells the decoder whether the connection may send full-size requests: until a client
    /// authenticates on a node with a password, codecs accept only small ones (Redis's fix
    /// for CVE-2021-32675). Codecs start out authenticated.
    fn set_authenticated(&mut self, authenticated: bool);

    /// Encodes the last words for a stream that broke the protocol.
    fn encode_protocol_error(&mut self, error: &ProtocolError, dst: &mut BytesMut);
}

impl Codec for RespCodec {
    fn encode(
        &mut self,
        reply: &Reply,
        _shape: &ReplyShape,
        dst: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        // RESP has one layout: every request it decodes carries the generic shape.
        resp::encode_reply(reply, self.version >= 3, dst);
        Ok(())
    }

    fn encode_large(&mut self, reply: &Reply, min: usize, dst: &mut BytesMut) -> Option<Bytes> {
        match reply {
            Reply::Bulk(value) if value.len() >= min => {
                resp::bulk_header(dst, value.len());
                Some(value.clone())
            }
            _ => None,
        }
    }

    fn set_resp_version(&mut self, version: u8) {
        self.version = version;
    }

    fn push_encoding(&self) -> usize {
        usize::from(self.version >= 3)
    }

    fn set_authenticated(&mut self, authenticated: bool) {
        self.unauthenticated = !authenticated;
    }

    fn encode_protocol_error(&mut self, error: &ProtocolError, dst: &mut BytesMut) {
        resp::encode_reply(&Reply::Error(format!("ERR {error}").into()), false, dst);
    }
}

impl Codec for JsonCodec {
    fn encode(
        &mut self,
        reply: &Reply,
        shape: &ReplyShape,
        dst: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        self.encode_shaped(
            reply,
            shape.0.as_deref().unwrap_or(&json::Shape::Generic),
            dst,
        )
    }

    fn push_encoding(&self) -> usize {
        // A push renders the same whatever the shape and the node (no `server_id` in it).
        2
    }

    fn set_authenticated(&mut self, authenticated: bool) {
        self.unauthenticated = !authenticated;
    }

    fn encode_protocol_error(&mut self, error: &ProtocolError, dst: &mut BytesMut) {
        // Rendering an error object cannot fail; if it somehow did, the connection closes
        // without last words, which is all a protocol error promises anyway.
        let reply = Reply::Error(error.to_string().into());
        let _ = self.encode_shaped(&reply, &json::Shape::Generic, dst);
    }
}
