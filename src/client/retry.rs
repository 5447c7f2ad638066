//! The retry policy: how many times, how far apart, which errors are worth retrying, which
//! suggest a failover in a replicated cluster, and which commands may be sent twice.

use std::time::Duration;

use bytes::Bytes;

use super::ClientError;

/// The spec's policy by default: a request times out after 5 s and a failed node is retried
/// 3 times, 0.5 s apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt fails.
    pub retries: u32,
    /// Pause before each retry ([`Backoff::Fixed`]), or the base of the exponential backoff.
    pub delay: Duration,
    /// Limit for one attempt (connect, send and receive).
    pub timeout: Duration,
    /// How the pause grows from one retry to the next.
    pub backoff: Backoff,
}

/// How long to wait before each retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backoff {
    /// The spec's: the same `delay` before every retry.
    #[default]
    Fixed,
    /// Exponential backoff with full jitter (the AWS Architecture Blog's "full jitter"): retry
    /// `n` (from 1) waits a uniformly random time in `[0, min(max, delay * 2^(n-1))]`. Clients
    /// that failed together then retry at different moments instead of in lockstep, so a
    /// restarting node is not hit by every client at once.
    Exponential {
        /// The cap on the window the pause is drawn from.
        max: Duration,
    },
}

impl Backoff {
    /// Exponential backoff with full jitter, capped at [`DEFAULT_MAX_BACKOFF`].
    pub fn exponential() -> Backoff {
        Backoff::Exponential {
            max: DEFAULT_MAX_BACKOFF,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            delay: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
            backoff: Backoff::Fixed,
        }
    }
}

impl RetryPolicy {
    /// The spec's wording for the fixed policy, `3 retries with 0.5s delay`; for exponential
    /// backoff, `3 retries with exponential backoff (0.5s base, 5s cap, full jitter)`.
    pub fn describe(&self) -> String {
        match self.backoff {
            Backoff::Fixed => format!(
                "{} retries with {}s delay",
                self.retries,
                self.delay.as_secs_f64()
            ),
            Backoff::Exponential { max } => format!(
                "{} retries with exponential backoff ({}s base, {}s cap, full jitter)",
                self.retries,
                self.delay.as_secs_f64(),
                max.as_secs_f64()
            ),
        }
    }

    /// The pause before retry number `retry` (1 for the first retry).
    pub fn delay_before(&self, retry: u32) -> Duration {
        match self.backoff {
            Backoff::Fixed => self.delay,
            Backoff::Exponential { max } => {
                let window = self.backoff_window(retry, max);
                // Nanoseconds fit a u64 for any window under 584 years.
                let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(fastrand::u64(0..=nanos))
            }
        }
    }

    /// `min(max, delay * 2^(retry-1))`, without overflow: doubling stops at the cap, so the
    /// loop runs at most ~94 times (a `Duration` holds under 2^94 ns) whatever `retry` is.
    fn backoff_window(&self, retry: u32, max: Duration) -> Duration {
        let mut window = self.delay;
        for _ in 1..retry {
            if window >= max || window.is_zero() {
                break;
            }
            window = window.saturating_mul(2);
        }
        window.min(max)
    }
}

/// True when a failed attempt may succeed if tried again: the host did not resolve, the node
/// was unreachable, the connection or its TLS handshake broke, or the attempt timed out (a
/// node restarting shows all of these). An error *reply* is an answer, not a failure: never
/// retried, and neither is a refused password ([`ClientError::Auth`]).
pub fn is_retryable(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Resolve { .. }
            | ClientError::Io { .. }
            | ClientError::Timeout { .. }
            | ClientError::Tls { .. }
            | ClientError::Protocol(_)
    )
}

/// True when `error` suggests that a shard's leader changed or died, so the client should ask
/// the cluster who leads now before trying again: the node could not be reached or closed the
/// connection, the attempt timed out, or the node answered `CLUSTERDOWN` (the shard has no
/// leader yet) or `TRYAGAIN` (a leader change is under way).
pub fn suggests_failover(error: &ClientError) -> bool {
    match error {
        ClientError::Io { .. }
        | ClientError::Timeout { .. }
        | ClientError::OutcomeUnknown { .. } => true,
        ClientError::Server(text) => is_transient_reply(text),
        _ => false,
    }
}

/// True for the error replies a replicated cluster sends while a shard has no leader
/// (`CLUSTERDOWN ...`) or its leader is changing (`TRYAGAIN ...`): the command did not run and
/// may be sent again, to the leader the cluster names next.
pub fn is_transient_reply(text: &str) -> bool {
    let code = text.split_whitespace().next().unwrap_or("");
    code == "CLUSTERDOWN" || code == "TRYAGAIN"
}

/// True when running `command` twice leaves the same state as running it once, so it may be
/// sent again after a connection closed without a reply (its outcome unknown). These are the
/// commands the client library issues itself (SET, GET, GETWITHTTL, DEL, EXPIRE, MGET, MSET,
/// KEYS, STATS, the CLUSTER queries; of the typed calls for the other types HSET, HDEL, SADD,
/// SREM, ZADD without INCR, ZREM) plus read-only ones (PING, DBSIZE, EXISTS, TTL, PTTL, TYPE,
/// STRLEN, INFO, and the reads of hashes, lists, sets, sorted sets and bitmaps, such as HGETALL,
/// LRANGE, SMEMBERS, ZRANGE, GETBIT). Anything else (INCR, APPEND, LPUSH, RPUSH, LPOP, RPOP,
/// HINCRBY, ZINCRBY, SPOP, PUBLISH, CLUSTER MOVESLOTS: sent twice, a move that happened is
/// refused as "not owned") is sent once: a lost reply is reported as
/// [`ClientError::OutcomeUnknown`], never retried. (A retried EXPIRE restarts its countdown a
/// moment later; a retried SET, DEL, HSET or ZADD may overwrite another client's write made in
/// between, which is the usual last-writer-wins of these commands; the count a repeated HSET,
/// SADD... answers is the second run's, 0 when the first one made the change.)
pub fn is_idempotent(command: &[Bytes]) -> bool {
    let Some(name) = command.first() else {
        return true;
    };
    // ZADD ... INCR adds to a score, as ZINCRBY does. Any argument spelled INCR counts (a
    // member of that name too): refusing a safe repeat costs less than allowing a double add.
    if name.eq_ignore_ascii_case(b"ZADD") {
        return !command[1..].iter().any(|a| a.eq_ignore_ascii_case(b"INCR"));
    }
    if name.eq_ignore_ascii_case(b"CLUSTER") {
        return command.get(1).is_some_and(|sub| {
            CLUSTER_QUERIES
                .iter()
                .any(|known| sub.eq_ignore_ascii_case(known.as_bytes()))
        });
    }
    IDEMPOTENT
        .iter()
        .any(|known| name.eq_ignore_ascii_case(known.as_bytes()))
}

/// Commands [`is_idempotent`] accepts.
const IDEMPOTENT: &[&str] = &[
    "SET",
    "GET",
    "GETWITHTTL",
    "DEL",
    "DELETE",
    "EXPIRE",
    "MGET",
    "MSET",
    "KEYS",
    "STATS",
    "ASKING",
    "PING",
    "DBSIZE",
    "EXISTS",
    "TTL",
    "PTTL",
    "TYPE",
    "STRLEN",
    "INFO",
    // Hashes: field writes that set or remove (last writer wins), and the reads.
    "HSET",
    "HMSET",
    "HDEL",
    "HGET",
    "HMGET",
    "HGETALL",
    "HKEYS",
    "HVALS",
    "HLEN",
    "HEXISTS",
    "HSTRLEN",
    // Lists: reads only (every list write but LSET moves or adds elements).
    "LRANGE",
    "LLEN",
    "LINDEX",
    "LPOS",
    // Sets: adding or removing members, and the reads.
    "SADD",
    "SREM",
    "SMEMBERS",
    "SISMEMBER",
    "SMISMEMBER",
    "SCARD",
    "SINTER",
    "SUNION",
    "SDIFF",
    "SINTERCARD",
    // Sorted sets: ZADD (without INCR, see above), ZREM, and the reads.
    "ZREM",
    "ZSCORE",
    "ZMSCORE",
    "ZCARD",
    "ZCOUNT",
    "ZLEXCOUNT",
    "ZRANK",
    "ZREVRANK",
    "ZRANGE",
    "ZREVRANGE",
    "ZRANGEBYSCORE",
    "ZREVRANGEBYSCORE",
    "ZRANGEBYLEX",
    "ZREVRANGEBYLEX",
    // Bitmaps: SETBIT sets a bit to a given value; the reads.
    "SETBIT",
    "GETBIT",
    "BITCOUNT",
    "BITPOS",
];

/// The CLUSTER subcommands [`is_idempotent`] accepts: the ones that only read.
const CLUSTER_QUERIES: &[&str] = &[
    "SHARDS",
    "SLOTS",
    "INFO",
    "NODES",
    "MYID",
    "KEYSLOT",
    "COUNTKEYSINSLOT",
    "GETKEYSINSLOT",
];

/// The default cap of [`Backoff::exponential`]: as long as the spec's request timeout.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_specs_policy() {
        let p = RetryPolicy::default();
        assert_eq!(p.describe(), "3 retries with 0.5s delay");
        assert!(is_retryable(&ClientError::Timeout {
            addr: "x".into(),
            after: Duration::from_secs(5)
        }));
        assert!(!is_retryable(&ClientError::Server("ERR x".into())));
        assert!(!is_retryable(&ClientError::Auth {
            addr: "x".into(),
            reply: "WRONGPASS".into()
        }));
        assert_eq!(p.backoff, Backoff::Fixed);
        assert!((1..=5).all(|n| p.delay_before(n) == Duration::from_millis(500)));
    }

    #[test]
    fn only_commands_safe_to_repeat_are_idempotent() {
        let cmd = |words: &[&str]| -> Vec<Bytes> {
            words
                .iter()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect()
        };
        for safe in [
            &["SET", "k", "v"][..],
            &["get", "k"],
            &["MSET", "a", "1"],
            &["del", "k"],
            &["CLUSTER", "SHARDS"],
            &["cluster", "info"],
            &["HSET", "h", "f", "v"],
            &["hdel", "h", "f"],
            &["SADD", "s", "m"],
            &["SREM", "s", "m"],
            &["ZADD", "z", "1", "m"],
            &["ZADD", "z", "GT", "CH", "2", "m"],
            &["ZREM", "z", "m"],
            &["HGETALL", "h"],
            &["LRANGE", "l", "0", "-1"],
            &["SMEMBERS", "s"],
            &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        ] {
            assert!(is_idempotent(&cmd(safe)), "{safe:?}");
        }
        for unsafe_ in [
            &["INCR", "k"][..],
            &["incrby", "k", "2"],
            &["APPEND", "k", "v"],
            &["CLUSTER", "MOVESLOTS", "1", "2", "0-9"],
            &["CLUSTER", "REMOVENODE", "3"],
            &["CLUSTER"],
            &["LPUSH", "l", "a"],
            &["rpush", "l", "a"],
            &["LPOP", "l"],
            &["RPOP", "l", "2"],
            &["HINCRBY", "h", "f", "1"],
            &["ZINCRBY", "z", "1", "m"],
            &["ZADD", "z", "INCR", "1", "m"],
            &["zadd", "z", "xx", "incr", "1", "m"],
            &["SPOP", "s"],
            &["PUBLISH", "c", "m"],
        ] {
            assert!(!is_idempotent(&cmd(unsafe_)), "{unsafe_:?}");
        }
    }

    #[test]
    fn cluster_down_and_try_again_suggest_a_failover_other_replies_do_not() {
        let reply = |t: &str| ClientError::Server(t.into());
        assert!(suggests_failover(&reply(
            "CLUSTERDOWN The cluster is down: shard 2"
        )));
        assert!(suggests_failover(&reply("TRYAGAIN leader changing")));
        assert!(!suggests_failover(&reply("ERR unknown command 'CLUSTER'")));
        assert!(!suggests_failover(&reply("CLUSTERDOWNISH")));
        assert!(suggests_failover(&ClientError::Io {
            addr: "x".into(),
            cause: std::io::ErrorKind::ConnectionRefused.into()
        }));
        assert!(!suggests_failover(&ClientError::Auth {
            addr: "x".into(),
            reply: "WRONGPASS".into()
        }));
    }

    #[test]
    fn exponential_backoff_draws_from_a_doubling_window_up_to_the_cap() {
        let p = RetryPolicy {
            delay: Duration::from_millis(100),
            backoff: Backoff::Exponential {
                max: Duration::from_millis(700),
            },
            ..RetryPolicy::default()
        };
        assert_eq!(
            p.describe(),
            "3 retries with exponential backoff (0.1s base, 0.7s cap, full jitter)"
        );
        // Windows: 100, 200, 400, then capped at 700 ms, whatever the retry number.
        let windows = [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 700),
            (5, 700),
            (1000, 700),
        ];
        for (retry, window_ms) in windows {
            let window = Duration::from_millis(window_ms);
            let draws: Vec<Duration> = (0..2000).map(|_| p.delay_before(retry)).collect();
            assert!(
                draws.iter().all(|d| *d <= window),
                "retry {retry}: a draw above {window:?}"
            );
            // Full jitter spreads over the whole window: 2000 uniform draws all landing in
            // one half has probability 2^-1999.
            assert!(draws.iter().any(|d| *d < window / 2), "retry {retry}");
            assert!(draws.iter().any(|d| *d > window / 2), "retry {retry}");
        }
    }

    #[test]
    fn exponential_backoff_never_overflows() {
        let p = RetryPolicy {
            delay: Duration::from_secs(u64::MAX / 2),
            backoff: Backoff::exponential(),
            ..RetryPolicy::default()
        };
        for retry in [0, 1, 2, 64, u32::MAX] {
            assert!(p.delay_before(retry) <= DEFAULT_MAX_BACKOFF);
        }
        let zero = RetryPolicy {
            delay: Duration::ZERO,
            ..p
        };
        assert_eq!(zero.delay_before(10), Duration::ZERO);
    }
}
