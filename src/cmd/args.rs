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

/// A SCAN-family cursor (SCAN, HSCAN, SSCAN, ZSCAN) as Redis's `parseScanCursorOrReply` reads
/// it with `strtoul`: no leading space, an optional sign (a negative cursor wraps around),
/// decimal digits up to the end (or a NUL byte, where the C string ends), no overflow; the
/// empty string is cursor 0.
///
/// # Errors
/// `ERR invalid cursor`.
pub fn scan_cursor(arg: &[u8]) -> Result<u64, CommandError> {
    let invalid = || CommandError::Other("ERR invalid cursor".into());
    let text = arg.split(|&b| b == 0).next().unwrap_or_default();
    if text.first().is_some_and(|b| b" \t\n\x0b\x0c\r".contains(b)) {
        return Err(invalid());
    }
    if text.is_empty() {
        return Ok(0);
    }
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let n = digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    let n = n.ok_or_else(invalid)?;
    Ok(if negative { n.wrapping_neg() } else { n })
}

/// The argument as lossy text, for error messages.
pub fn text(arg: &Bytes) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_cursors_read_as_strtoul() {
        assert_eq!(scan_cursor(b"").ok(), Some(0));
        assert_eq!(scan_cursor(b"17").ok(), Some(17));
        assert_eq!(scan_cursor(b"+5").ok(), Some(5));
        assert_eq!(scan_cursor(b"-1").ok(), Some(u64::MAX));
        assert_eq!(scan_cursor(b"18446744073709551615").ok(), Some(u64::MAX));
        assert_eq!(scan_cursor(b"7\x00junk").ok(), Some(7));
        for bad in [
            &b" 1"[..],
            b"1 ",
            b"18446744073709551616",
            b"1x",
            b"1.0",
            b"-",
            b"+",
            b"0x1",
        ] {
            assert!(scan_cursor(bad).is_err(), "{bad:?}");
        }
    }

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
