//! `client-output-buffer-limit`: Redis's per-class output limits, in Redis's syntax, changed
//! at run time by CONFIG SET. Only the `pubsub` class is enforced (by [`super::PubSub`] on
//! every delivery); `normal` and `replica` are kept and reported so that CONFIG GET and SET
//! round-trip as in Redis.

use std::sync::atomic::{AtomicU64, Ordering};

/// One class's limits: a hard limit in bytes, a soft limit in bytes and how long a client may
/// stay above the soft one. 0 disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassLimit {
    /// Close the client as soon as its pending output passes this many bytes.
    pub hard: u64,
    /// Close the client once its pending output has stayed above this for `soft_seconds`.
    pub soft: u64,
    /// See `soft`.
    pub soft_seconds: u64,
}

/// The three classes' limits. Each value is an atomic of its own: a delivery reads the pubsub
/// class without a lock; a CONFIG SET racing with it may be seen half applied for that one
/// delivery, which is harmless.
#[derive(Debug)]
pub struct OutputLimits {
    classes: [[AtomicU64; 3]; 3],
}

/// Class order in [`OutputLimits`] and in CONFIG GET's text.
const CLASSES: [&str; 3] = ["normal", "slave", "pubsub"];

impl Default for OutputLimits {
    /// Redis's defaults: `normal 0 0 0 slave 256mb 64mb 60 pubsub 32mb 8mb 60`.
    fn default() -> Self {
        let class =
            |h: u64, s: u64, t: u64| [AtomicU64::new(h), AtomicU64::new(s), AtomicU64::new(t)];
        OutputLimits {
            classes: [
                class(0, 0, 0),
                class(256 << 20, 64 << 20, 60),
                class(32 << 20, 8 << 20, 60),
            ],
        }
    }
}

impl OutputLimits {
    /// The pubsub class's limits.
    pub fn pubsub(&self) -> ClassLimit {
        self.class(2)
    }

    /// CONFIG GET's text: `normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60`.
    pub fn render(&self) -> String {
        CLASSES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let c = self.class(i);
                format!("{name} {} {} {}", c.hard, c.soft, c.soft_seconds)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Applies CONFIG SET's value: any number of `class hard soft seconds` groups, classes
    /// `normal`, `replica` (or `slave`) and `pubsub` in any case, sizes with Redis's units
    /// (`k` 1000, `kb` 1024, `m`, `mb`, `g`, `gb`). Nothing changes unless all of it is valid.
    ///
    /// # Errors
    /// Redis's reason, as CONFIG SET words it after the argument's name.
    pub fn set(&self, value: &[u8]) -> Result<(), &'static str> {
        let words = crate::protocol::resp::split_args(value).ok_or(WRONG_ARGS)?;
        if !words.len().is_multiple_of(4) {
            return Err(WRONG_ARGS);
        }
        let mut parsed = Vec::new();
        for group in words.chunks(4) {
            let class = match group[0].to_ascii_lowercase().as_slice() {
                b"normal" => 0,
                b"slave" | b"replica" => 1,
                b"pubsub" => 2,
                _ => return Err("Invalid client class specified in buffer limit configuration."),
            };
            let bad = "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
            let hard = mem_to_u64(&group[1]).ok_or(bad)?;
            let soft = mem_to_u64(&group[2]).ok_or(bad)?;
            let soft_seconds = seconds(&group[3]).ok_or(bad)?;
            parsed.push((
                class,
                ClassLimit {
                    hard,
                    soft,
                    soft_seconds,
                },
            ));
        }
        for (class, limit) in parsed {
            let [h, s, t] = &self.classes[class];
            h.store(limit.hard, Ordering::Relaxed);
            s.store(limit.soft, Ordering::Relaxed);
            t.store(limit.soft_seconds, Ordering::Relaxed);
        }
        Ok(())
    }

    fn class(&self, i: usize) -> ClassLimit {
        let [h, s, t] = &self.classes[i];
        ClassLimit {
            hard: h.load(Ordering::Relaxed),
            soft: s.load(Ordering::Relaxed),
            soft_seconds: t.load(Ordering::Relaxed),
        }
    }
}

const WRONG_ARGS: &str = "Wrong number of arguments in buffer limit configuration.";

/// Redis's `memtoull`: digits, then an optional unit (`b`, `k`, `kb`, `m`, `mb`, `g`, `gb`,
/// any case). No sign, no fraction.
fn mem_to_u64(word: &[u8]) -> Option<u64> {
    let digits = word.iter().take_while(|c| c.is_ascii_digit()).count();
    let unit = word[digits..].to_ascii_lowercase();
    let multiplier: u64 = match unit.as_slice() {
        b"" | b"b" => 1,
        b"k" => 1000,
        b"kb" => 1024,
        b"m" => 1000 * 1000,
        b"mb" => 1024 * 1024,
        b"g" => 1000 * 1000 * 1000,
        b"gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    // Like `strtoull` on an empty buffer, no digits at all reads as 0.
    let number = if digits == 0 {
        0
    } else {
        std::str::from_utf8(&word[..digits])
            .ok()?
            .parse::<u64>()
            .ok()?
    };
    number.checked_mul(multiplier)
}

/// Seconds as `strtoll` reads them, then refused when negative.
fn seconds(word: &[u8]) -> Option<u64> {
    if word.is_empty() {
        return Some(0);
    }
    let n: i64 = std::str::from_utf8(word).ok()?.parse().ok()?;
    u64::try_from(n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_like_redis() {
        let limits = OutputLimits::default();
        assert_eq!(
            limits.render(),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        limits.set(b"PUBSUB 1K 512 5").expect("valid");
        assert_eq!(
            limits.pubsub(),
            ClassLimit {
                hard: 1000,
                soft: 512,
                soft_seconds: 5
            }
        );
        limits
            .set(b"normal 1mb 2gb 3 replica 10 20 30")
            .expect("valid");
        assert_eq!(
            limits.render(),
            "normal 1048576 2147483648 3 slave 10 20 30 pubsub 1000 512 5"
        );
        limits.set(b"").expect("nothing to change");
        for (bad, why) in [
            (&b"pubsub 1k 512"[..], WRONG_ARGS),
            (
                b"foo 1 2 3",
                "Invalid client class specified in buffer limit configuration.",
            ),
            (
                b"master 1 2 3",
                "Invalid client class specified in buffer limit configuration.",
            ),
            (
                b"pubsub x 2 3",
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
            ),
            (
                b"pubsub 1 2 -3",
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
            ),
            (
                b"pubsub 1.5k 2 3",
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
            ),
        ] {
            assert_eq!(
                limits.set(bad),
                Err(why),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A failed SET changes nothing, not even its valid groups.
        assert!(limits.set(b"pubsub 1 1 1 foo 1 1 1").is_err());
        assert_eq!(limits.pubsub().hard, 1000);
    }
}
