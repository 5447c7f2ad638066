//! Keys and values as the page shows them: user data, so always as text for `textContent`,
//! binary bytes escaped, long ones cut with their size kept; and the replies of the nodes read
//! defensively (any shape may come back from a misbehaving node).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use serde::Serialize;

use crate::protocol::Reply;

/// Bytes shown on the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// The text to show: the bytes as UTF-8, or escaped (`\xff`, `\n`...) when they are not
    /// UTF-8; at most the limit it was made with.
    pub text: String,
    /// True when the bytes are not UTF-8 text (so `text` is escaped).
    pub binary: bool,
    /// The whole value's size in bytes.
    pub size: u64,
    /// True when `text` shows only the start of the value.
    pub truncated: bool,
}

impl Shown {
    /// `bytes` (the first bytes of a value of `size` bytes) shown in at most `limit` bytes.
    pub fn new(bytes: &[u8], size: u64, limit: usize) -> Shown {
        let cut = &bytes[..bytes.len().min(limit)];
        let truncated = (cut.len() as u64) < size;
        match std::str::from_utf8(cut) {
            Ok(text) => Shown {
                text: text.to_string(),
                binary: false,
                size,
                truncated,
            },
            // A cut in the middle of a UTF-8 character is still text.
            Err(e) if truncated && e.error_len().is_none() => Shown {
                text: String::from_utf8_lossy(&cut[..e.valid_up_to()]).into_owned(),
                binary: false,
                size,
                truncated,
            },
            Err(_) => Shown {
                text: escape(cut),
                binary: true,
                size,
                truncated,
            },
        }
    }

    /// A whole value, cut at `limit`.
    pub fn of(bytes: &[u8], limit: usize) -> Shown {
        Shown::new(bytes, bytes.len() as u64, limit)
    }
}

/// Binary bytes as redis-cli prints them: printable ASCII kept, `\n` `\r` `\t` `\"` `\\`
/// named, anything else `\xHH`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// A key as the page gets it: shown, and its bytes as URL-safe base64 (`id`) for asking about
/// it again (keys need not be UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRef {
    /// The key's bytes, URL-safe base64 without padding.
    pub id: String,
    /// The key shown.
    pub shown: Shown,
}

/// Longest key shown in full.
pub const KEY_LIMIT: usize = 1024;

impl KeyRef {
    /// `key` for the page.
    pub fn new(key: &[u8]) -> KeyRef {
        KeyRef {
            id: URL_SAFE_NO_PAD.encode(key),
            shown: Shown::of(key, KEY_LIMIT),
        }
    }
}

/// The key bytes of an `id` from the page.
pub fn key_of(id: &str) -> Option<Bytes> {
    URL_SAFE_NO_PAD.decode(id.trim()).ok().map(Bytes::from)
}

/// The bytes of a bulk or status reply.
pub fn bytes_of(reply: &Reply) -> Option<&[u8]> {
    match reply {
        Reply::Bulk(b) | Reply::Verbatim(b) => Some(b),
        Reply::Simple(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// The text of a bulk or status reply, lossy.
pub fn text_of(reply: &Reply) -> Option<String> {
    bytes_of(reply).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// An integer reply (or a bulk holding one, as some nodes send).
pub fn int_of(reply: &Reply) -> Option<i64> {
    match reply {
        Reply::Int(n) => Some(*n),
        other => text_of(other).and_then(|t| t.trim().parse().ok()),
    }
}

/// The items of an array reply (or a set, or a push).
pub fn items_of(reply: &Reply) -> Option<&[Reply]> {
    match reply {
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => Some(items),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stays_text_and_binary_is_escaped() {
        let s = Shown::of(b"<b>hi</b>", 100);
        assert_eq!(s.text, "<b>hi</b>");
        assert!(!s.binary && !s.truncated);
        let b = Shown::of(b"a\x00\xff\n\"", 100);
        assert!(b.binary);
        assert_eq!(b.text, "a\\x00\\xff\\n\\\"");
    }

    #[test]
    fn long_values_are_cut_with_their_size() {
        let s = Shown::new("héllo".as_bytes(), 1000, 2);
        assert!(s.truncated && !s.binary);
        assert_eq!(s.text, "h");
        assert_eq!(s.size, 1000);
        let whole = Shown::of(b"abc", 3);
        assert!(!whole.truncated);
    }

    #[test]
    fn keys_round_trip_through_their_id() {
        let key = b"user:\xff\x00/1";
        let r = KeyRef::new(key);
        assert_eq!(key_of(&r.id).as_deref(), Some(&key[..]));
        assert!(key_of("***").is_none());
    }
}
