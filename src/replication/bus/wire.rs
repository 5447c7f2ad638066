//! The bus's frames: a 4-byte big-endian length (tokio-util's [`LengthDelimitedCodec`], at most
//! [`MAX_FRAME_BYTES`]), then one tag byte saying what the frame holds ([`REQUEST_TAG`] or
//! [`RESPONSE_TAG`]), then the message in `postcard`'s compact binary serde encoding (varint
//! integers, byte strings as a length and the raw bytes). It owns encoding and decoding and
//! the stream type every connection is framed over, plain or TLS; never what a message means.
//!
//! A frame that does not decode as what its reader expects is an error ([`BusError::Decode`],
//! [`BusError::Tag`]) that closes the connection; it never panics. The tag makes a response
//! sent where a request belongs (or a frame of some other protocol) fail on its first byte
//! instead of possibly decoding as something else, and changes with the format, so a peer of an
//! older format (JSON frames start with `{`) is refused cleanly.

use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::{BusError, Request, Response, MAX_FRAME_BYTES};

/// What the bus frames: a plain TCP stream or a TLS stream over one, boxed so both sides of
/// the bus handle one connection type.
pub(super) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One bus connection, either side.
pub(super) type Connection = Framed<Box<dyn Io>, LengthDelimitedCodec>;

/// A message that travels in a bus frame: [`Request`] or [`Response`].
pub trait Message: Serialize + DeserializeOwned {
    /// The first byte of each frame holding this kind of message.
    const TAG: u8;
    /// What this kind is called in errors.
    const NAME: &'static str;
}

impl Message for Request {
    const TAG: u8 = REQUEST_TAG;
    const NAME: &'static str = "request";
}

impl Message for Response {
    const TAG: u8 = RESPONSE_TAG;
    const NAME: &'static str = "response";
}

/// The payload of one frame holding `message`: its tag, then its encoding.
///
/// # Errors
/// [`BusError::Encode`] if serde refuses the value (a sequence of unknown length); the bus's
/// own types never are (the tests round-trip every one).
pub fn encode<T: Message>(message: &T) -> Result<Vec<u8>, BusError> {
    postcard::to_extend(message, vec![T::TAG]).map_err(BusError::Encode)
}

/// The message in one frame's payload.
///
/// # Errors
/// [`BusError::Tag`] when the first byte is not `T`'s tag (another kind of message, another
/// format or another protocol); [`BusError::Decode`] when the rest is not exactly one `T`.
pub fn decode<T: Message>(frame: &[u8]) -> Result<T, BusError> {
    match frame.split_first() {
        Some((&tag, body)) if tag == T::TAG => {
            let (message, rest) = postcard::take_from_bytes(body)?;
            if rest.is_empty() {
                Ok(message)
            } else {
                Err(BusError::Decode(postcard::Error::DeserializeBadEncoding))
            }
        }
        first => Err(BusError::Tag {
            expected: T::NAME,
            found: first.map(|(tag, _)| *tag),
        }),
    }
}

/// Frames `stream` with the bus's codec.
pub(super) fn framed(stream: Box<dyn Io>) -> Connection {
    Framed::new(stream, codec())
}

/// The bus's framing: 4-byte big-endian length prefix, at most [`MAX_FRAME_BYTES`].
pub(super) fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// Encodes `message` as one frame and sends it.
pub(super) async fn send<T: Message>(
    connection: &mut Connection,
    message: &T,
) -> Result<(), BusError> {
    let bytes = encode(message)?;
    connection.send(bytes::Bytes::from(bytes)).await?;
    shrink(connection.write_buffer_mut());
    Ok(())
}

/// An empty connection buffer larger than this is given back after the frame that grew it:
/// a connection that once carried a big batch would otherwise keep its size for good.
const SHRINK_ABOVE: usize = 256 * 1024;

fn shrink(buffer: &mut bytes::BytesMut) {
    if buffer.is_empty() && buffer.capacity() > SHRINK_ABOVE {
        *buffer = bytes::BytesMut::new();
    }
}

/// The next frame decoded, or `None` when the peer closed the connection.
pub(super) async fn receive<T: Message>(
    connection: &mut Connection,
) -> Result<Option<T>, BusError> {
    match connection.next().await {
        Some(frame) => {
            let frame = frame?;
            shrink(connection.read_buffer_mut());
            Ok(Some(decode(&frame)?))
        }
        None => Ok(None),
    }
}

/// The tag of frames holding a [`Request`] (format 1; the JSON frames before it had none).
pub const REQUEST_TAG: u8 = 0xB1;

/// The tag of frames holding a [`Response`] (format 1).
pub const RESPONSE_TAG: u8 = 0xA1;

#[cfg(test)]
mod tests;
