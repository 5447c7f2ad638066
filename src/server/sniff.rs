//! Protocol detection: the first byte a connection sends picks its codec for life.
//!
//! `{` (after optional whitespace) is the spec's JSON protocol; anything else is RESP, which
//! includes Redis inline commands typed into telnet (`PING\r\n`). The bytes are not consumed:
//! they stay in the buffer the chosen codec starts from.

/// The wire format of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The spec's JSON objects.
    Json,
    /// RESP2/RESP3, multibulk or inline.
    Resp,
}

/// Decides the protocol from the bytes received so far; `None` while they are all whitespace.
pub fn detect(received: &[u8]) -> Option<Protocol> {
    received
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .map(|&b| {
            if b == b'{' {
                Protocol::Json
            } else {
                Protocol::Resp
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_non_space_byte_decides() {
        assert_eq!(detect(b""), None);
        assert_eq!(detect(b" \r\n"), None);
        assert_eq!(detect(b"\n {\"command\""), Some(Protocol::Json));
        assert_eq!(detect(b"*1\r\n$4\r\nPING\r\n"), Some(Protocol::Resp));
        assert_eq!(detect(b"PING\r\n"), Some(Protocol::Resp));
    }
}
