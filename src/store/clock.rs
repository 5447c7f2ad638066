//! Maps between the monotonic clock that deadlines use (`tokio::time::Instant`, so paused-time
//! tests work) and Unix milliseconds (EXPIREAT, EXPIRETIME, snapshots).
//!
//! Both directions go through one base pair taken once per process, so a deadline set with
//! PEXPIREAT reads back with PEXPIRETIME to the exact millisecond. Wall-clock adjustments after
//! start are not followed: a deadline is a point on the monotonic clock.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

static BASE: OnceLock<(Instant, i64)> = OnceLock::new();

fn base() -> (Instant, i64) {
    *BASE.get_or_init(|| (Instant::now(), unix_ms()))
}

/// Milliseconds since the Unix epoch, read from the wall clock now (0 if it is set before
/// 1970).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Fixes the base pair now if it is not yet fixed. The store calls it on creation so every
/// deadline it will hold is at or after the base.
pub fn init() {
    base();
}

/// `t` as microseconds after the base (0 for earlier instants, which are all in the past).
/// Microseconds, not nanoseconds: a u64 of them spans far more than the Unix-millisecond range
/// EXPIREAT accepts.
pub fn to_micros(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(base().0).as_micros()).unwrap_or(u64::MAX)
}

/// The instant `micros` after the base (saturating far in the future).
pub fn from_micros(micros: u64) -> Instant {
    let base = base().0;
    base.checked_add(Duration::from_micros(micros))
        .unwrap_or_else(|| base + Duration::from_secs(u64::from(u32::MAX)) * 1000)
}

/// The Unix time, in milliseconds, of `t`.
pub fn unix_ms_at(t: Instant) -> i64 {
    let (base_instant, base_ms) = base();
    if t >= base_instant {
        base_ms.saturating_add((t - base_instant).as_millis() as i64)
    } else {
        base_ms.saturating_sub((base_instant - t).as_millis() as i64)
    }
}

/// The instant of Unix time `ms`; `None` when it is too far in the future to represent. A
/// time before the process started maps to the process start (already past).
pub fn instant_at_unix_ms(ms: i64) -> Option<Instant> {
    let (base_instant, base_ms) = base();
    if ms >= base_ms {
        base_instant.checked_add(Duration::from_millis(ms.checked_sub(base_ms)? as u64))
    } else {
        Some(base_instant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_round_trip_exactly() {
        let now = unix_ms_at(Instant::now());
        for ms in [now, now + 1, now + 123_456_789, 99_999_999_999_000] {
            let t = instant_at_unix_ms(ms).expect("representable");
            assert_eq!(unix_ms_at(t), ms);
        }
        assert!(instant_at_unix_ms(0).expect("past") <= Instant::now());
        let t = instant_at_unix_ms(now + 1500).expect("representable");
        assert_eq!(from_micros(to_micros(t)), t);
        let far = instant_at_unix_ms(99_999_999_999_000).expect("representable");
        assert_eq!(unix_ms_at(from_micros(to_micros(far))), 99_999_999_999_000);
    }
}
