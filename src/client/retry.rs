//! The retry policy: how many times, how far apart, and which errors are worth retrying.

use std::time::Duration;

use super::ClientError;

/// The spec's policy by default: a request times out after 5 s and a failed node is retried
/// 3 times, 0.5 s apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt fails.
    pub retries: u32,
    /// Pause before each retry.
    pub delay: Duration,
    /// Limit for one attempt (connect, send and receive).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            delay: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The spec's wording: `3 retries with 0.5s delay`.
    pub fn describe(&self) -> String {
        format!(
            "{} retries with {}s delay",
            self.retries,
            self.delay.as_secs_f64()
        )
    }
}

/// True when a failed attempt may succeed if tried again: the node was unreachable, the
/// connection broke or timed out. An error *reply* is an answer, not a failure: never retried.
pub fn is_retryable(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Io { .. } | ClientError::Timeout { .. } | ClientError::Protocol(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_specs_policy() {
        let p = RetryPolicy::default();
        assert_eq!(p.describe(), "3 retries with 0.5s delay");
        assert!(is_retryable(&ClientError::Timeout { addr: "x".into() }));
        assert!(!is_retryable(&ClientError::Server("ERR x".into())));
    }
}
