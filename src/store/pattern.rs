//! Redis glob-style pattern matching for KEYS and SCAN MATCH.
//!
//! A port of Redis's `stringmatchlen` (util.c): `*`, `?`, `[abc]`, `[^a-z]`, and `\` escapes,
//! byte-wise. Written out rather than taken from a glob crate because path-oriented globs
//! treat `/` specially and differ on `[^...]` and escapes; KEYS must match what Redis matches.

/// True when `text` matches the Redis glob `pattern`.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    if pattern == b"*" {
        return true;
    }
    match_from(pattern, text, 0, &mut false)
}

/// `skip_longer` is Redis's `skipLongerMatches` (its fix for CVE-2022-36021): set once a `*`
/// has tried every suffix of its text and failed. A `*` further left then stops trying longer
/// matches of its own, since those would only hand the failed `*` a shorter suffix. Without it
/// a pattern like `*a*a*a*a*a*a*a*a*a*a*b` takes exponential time on a key of `a`s, and KEYS
/// or SCAN MATCH holds a shard lock meanwhile.
fn match_from(mut p: &[u8], mut s: &[u8], depth: usize, skip_longer: &mut bool) -> bool {
    // Bound recursion on hostile patterns like `*a*a*a*...`; Redis does the same.
    if depth > 1000 {
        return false;
    }
    while let Some(&c) = p.first() {
        match c {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                for i in 0..=s.len() {
                    if match_from(&p[1..], &s[i..], depth + 1, skip_longer) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                }
                *skip_longer = true;
                return false;
            }
            b'?' => {
                if s.is_empty() {
                    return false;
                }
                s = &s[1..];
            }
            b'[' => {
                let Some(&sc) = s.first() else {
                    return false;
                };
                p = &p[1..];
                let negate = p.first() == Some(&b'^');
                if negate {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    match p {
                        [] => break,
                        [b']', ..] => break,
                        [b'\\', esc, ..] => {
                            if *esc == sc {
                                matched = true;
                            }
                            p = &p[2..];
                        }
                        [lo, b'-', hi, ..] if *hi != b']' => {
                            let (lo, hi) = if lo > hi { (*hi, *lo) } else { (*lo, *hi) };
                            if (lo..=hi).contains(&sc) {
                                matched = true;
                            }
                            p = &p[3..];
                        }
                        [one, ..] => {
                            if *one == sc {
                                matched = true;
                            }
                            p = &p[1..];
                        }
                    }
                }
                if matched == negate {
                    return false;
                }
                s = &s[1..];
                if p.is_empty() {
                    // Unterminated class: Redis treats the end of the pattern as its end.
                    return s.is_empty();
                }
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if s.first() != Some(&p[0]) {
                    return false;
                }
                s = &s[1..];
            }
            _ => {
                if s.first() != Some(&c) {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
    }
    s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn matches_like_redis() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "anything", true),
            ("user:*", "user:1", true),
            ("user:*", "session:1", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("*a*b", "xxaxxb", true),
            ("*a*b", "xxaxxc", false),
            ("", "", true),
            ("a", "", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(matches(p.as_bytes(), s.as_bytes()), *want, "{p} vs {s}");
        }
    }

    #[test]
    fn hostile_star_patterns_fail_in_linear_time() {
        // Exponential before `skip_longer`: `*a` x 10 + `*b` on a 30-byte key took 20 s (fuzz
        // build); this one would never have finished.
        let key = vec![b'a'; 4096];
        let pattern = format!("{}*b", "*a".repeat(500));
        let started = std::time::Instant::now();
        assert!(!matches(pattern.as_bytes(), &key));
        assert!(matches(pattern.replace("*b", "*").as_bytes(), &key));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
