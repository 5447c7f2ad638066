//! Argument parsing helpers shared by the commands, with Redis's error texts.

use bytes::Bytes;

use super::CommandError;
use crate::protocol::resp::parse_int;

/// Parses an integer argument the way Redis does (strict decimal, 64-bit).
///
/// # Errors
/// `ERR value is not an integer or out of range`.
pub fn int(arg: &[u8]) -> Result<i64, CommandError> {
    parse_int(arg).ok_or(CommandError::NotInteger)
}

/// Parses a float argument (INCRBYFLOAT): decimal or exponent notation, `inf` rejected.
///
/// # Errors
/// `ERR value is not a valid float`.
pub fn float(arg: &[u8]) -> Result<f64, CommandError> {
    std::str::from_utf8(arg)
        .ok()
        .filter(|s| !s.is_empty() && !s.starts_with(char::is_whitespace))
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|f| !f.is_nan())
        .ok_or(CommandError::NotFloat)
}

/// True when `arg` equals `word` ignoring ASCII case.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// The argument as lossy text, for error messages.
pub fn text(arg: &Bytes) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_and_float_follow_redis() {
        assert_eq!(int(b"42").ok(), Some(42));
        assert!(int(b"4.2").is_err());
        assert!(int(b" 4").is_err());
        assert_eq!(float(b"1.5e2").ok(), Some(150.0));
        assert!(float(b"abc").is_err());
        assert!(is(b"ex", "EX"));
    }
}
