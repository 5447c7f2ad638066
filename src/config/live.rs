//! The settings CONFIG SET changes while a node runs, initialised from its [`NodeConfig`].
//!
//! The request path reads them on every command or connection, so each is an atomic; only
//! the password's text and the `save` rule sit behind locks, read when a client AUTHs or the
//! saver re-arms (the per-command check is [`Settings::has_password`], an atomic).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::NodeConfig;
use crate::aof::FsyncPolicy;

/// Redis's `save` rule: `<seconds> <changes>` pairs. minikv snapshots every `seconds` of the
/// smallest pair when anything changed (the change counts are kept and shown, not used);
/// no pair (`save ""`) turns periodic snapshots off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveRule {
    /// The pairs, as CONFIG GET shows them.
    pub pairs: Vec<(u64, u64)>,
    /// How often the saver runs: the smallest `seconds`, or the start interval (which may be
    /// a fraction of a second) until CONFIG SET changes it; `None` never.
    pub interval: Option<Duration>,
}

impl SaveRule {
    /// The rule of `--save-interval`: every `interval` once one key changed (`"<s> 1"`,
    /// whole seconds rounded up).
    pub fn every(interval: Duration) -> SaveRule {
        let seconds = interval.as_secs_f64().ceil().max(1.0) as u64;
        SaveRule {
            pairs: vec![(seconds, 1)],
            interval: Some(interval),
        }
    }

    /// Parses Redis's syntax: `""` (no pairs) or `<seconds> <changes> ...`, seconds at least 1,
    /// changes at least 0.
    ///
    /// # Errors
    /// Redis's reason, `Invalid save parameters`.
    pub fn parse(words: &[&[u8]]) -> Result<SaveRule, String> {
        const INVALID: &str = "Invalid save parameters";
        let words: Vec<&[u8]> = match words {
            [[]] => Vec::new(),
            _ => words.to_vec(),
        };
        if words.len() % 2 == 1 {
            return Err(INVALID.into());
        }
        let mut pairs = Vec::new();
        for pair in words.chunks(2) {
            let number = |w: &[u8]| std::str::from_utf8(w).ok()?.parse::<i64>().ok();
            match (number(pair[0]), number(pair[1])) {
                (Some(s), Some(c)) if s >= 1 && c >= 0 => pairs.push((s as u64, c as u64)),
                _ => return Err(INVALID.into()),
            }
        }
        let interval = pairs.iter().map(|p| p.0).min().map(Duration::from_secs);
        Ok(SaveRule { pairs, interval })
    }

    /// CONFIG GET's text: `"3600 1 300 100"`, empty when off.
    pub fn render(&self) -> String {
        let words: Vec<String> = self.pairs.iter().map(|(s, c)| format!("{s} {c}")).collect();
        words.join(" ")
    }
}

/// The run-time settings of one node (see the module doc).
#[derive(Debug)]
pub struct Settings {
    /// `timeout` in milliseconds; 0 never closes idle clients.
    idle_timeout_ms: AtomicU64,
    maxclients: AtomicUsize,
    has_password: AtomicBool,
    password: RwLock<Option<Arc<str>>>,
    protected_mode: AtomicBool,
    stop_writes_on_bgsave_error: AtomicBool,
    appendfsync: AtomicU8,
    save: watch::Sender<SaveRule>,
}

impl Settings {
    /// The settings `config` starts with.
    pub fn new(config: &NodeConfig) -> Settings {
        let settings = Settings {
            idle_timeout_ms: AtomicU64::new(0),
            maxclients: AtomicUsize::new(config.max_clients),
            has_password: AtomicBool::new(false),
            password: RwLock::new(None),
            protected_mode: AtomicBool::new(config.protected_mode),
            stop_writes_on_bgsave_error: AtomicBool::new(config.stop_writes_on_bgsave_error),
            appendfsync: AtomicU8::new(fsync_code(config.appendfsync)),
            save: watch::Sender::new(SaveRule::every(config.save_interval)),
        };
        settings.set_idle_timeout(config.idle_timeout);
        settings.set_password(config.requirepass.clone());
        settings
    }

    /// `timeout`: how long a client may stay idle (`None`: forever).
    #[inline]
    pub fn idle_timeout(&self) -> Option<Duration> {
        match self.idle_timeout_ms.load(Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Sets `timeout` (`None` or zero: never).
    pub fn set_idle_timeout(&self, timeout: Option<Duration>) {
        let ms = timeout.filter(|t| !t.is_zero()).map_or(0, |t| {
            u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        self.idle_timeout_ms.store(ms, Relaxed);
    }

    /// `maxclients`.
    #[inline]
    pub fn maxclients(&self) -> usize {
        self.maxclients.load(Relaxed)
    }

    /// Sets `maxclients` (clients already connected stay).
    pub fn set_maxclients(&self, n: usize) {
        self.maxclients.store(n, Relaxed);
    }

    /// Whether `requirepass` is set: checked on every command of a connection that has not
    /// authenticated.
    #[inline]
    pub fn has_password(&self) -> bool {
        self.has_password.load(Relaxed)
    }

    /// `requirepass`, if set.
    pub fn password(&self) -> Option<Arc<str>> {
        self.password
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sets `requirepass`; `None` or an empty one removes it. Connections open at the time
    /// keep their state: those opened without a password stay usable, as in Redis.
    pub fn set_password(&self, password: Option<String>) {
        let password: Option<Arc<str>> = password.filter(|p| !p.is_empty()).map(Arc::from);
        let set = password.is_some();
        *self
            .password
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = password;
        self.has_password.store(set, Relaxed);
    }

    /// `protected-mode`.
    #[inline]
    pub fn protected_mode(&self) -> bool {
        self.protected_mode.load(Relaxed)
    }

    /// Sets `protected-mode`.
    pub fn set_protected_mode(&self, on: bool) {
        self.protected_mode.store(on, Relaxed);
    }

    /// `stop-writes-on-bgsave-error`.
    #[inline]
    pub fn stop_writes_on_bgsave_error(&self) -> bool {
        self.stop_writes_on_bgsave_error.load(Relaxed)
    }

    /// Sets `stop-writes-on-bgsave-error`.
    pub fn set_stop_writes_on_bgsave_error(&self, on: bool) {
        self.stop_writes_on_bgsave_error.store(on, Relaxed);
    }

    /// `appendfsync` (what the log uses when it is on; see [`crate::aof::Aof::set_policy`]).
    pub fn appendfsync(&self) -> FsyncPolicy {
        fsync_from(self.appendfsync.load(Relaxed))
    }

    /// Records `appendfsync` (the caller passes it on to the log).
    pub fn set_appendfsync(&self, policy: FsyncPolicy) {
        self.appendfsync.store(fsync_code(policy), Relaxed);
    }

    /// The `save` rule.
    pub fn save(&self) -> SaveRule {
        self.save.borrow().clone()
    }

    /// Sets the `save` rule; the saver re-arms at once.
    pub fn set_save(&self, rule: SaveRule) {
        self.save.send_replace(rule);
    }

    /// A receiver of the `save` rule, for the saver task.
    pub fn watch_save(&self) -> watch::Receiver<SaveRule> {
        self.save.subscribe()
    }
}

/// [`FsyncPolicy`] as a byte, for atomics.
pub(crate) fn fsync_code(policy: FsyncPolicy) -> u8 {
    match policy {
        FsyncPolicy::Always => 0,
        FsyncPolicy::EverySec => 1,
        FsyncPolicy::No => 2,
    }
}

/// The inverse of [`fsync_code`].
pub(crate) fn fsync_from(code: u8) -> FsyncPolicy {
    match code {
        0 => FsyncPolicy::Always,
        1 => FsyncPolicy::EverySec,
        _ => FsyncPolicy::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_rules_parse_as_redis_does() {
        let rule = SaveRule::parse(&[b"3600", b"1", b"300", b"100"]).expect("valid");
        assert_eq!(rule.pairs, [(3600, 1), (300, 100)]);
        assert_eq!(rule.interval, Some(Duration::from_secs(300)));
        assert_eq!(rule.render(), "3600 1 300 100");
        let off = SaveRule::parse(&[b""]).expect("empty is off");
        assert_eq!((off.interval, off.render()), (None, String::new()));
        for bad in [
            &[&b"1"[..]][..],
            &[b"0", b"1"],
            &[b"1", b"-1"],
            &[b"x", b"1"],
        ] {
            assert!(SaveRule::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            SaveRule::every(Duration::from_millis(50)).render(),
            "1 1",
            "a fraction of a second shows as one"
        );
    }

    #[test]
    fn the_password_flag_follows_the_password() {
        let settings = Settings::new(&NodeConfig::default());
        assert!(!settings.has_password());
        settings.set_password(Some("pw".into()));
        assert!(settings.has_password());
        assert_eq!(settings.password().as_deref(), Some("pw"));
        settings.set_password(Some(String::new()));
        assert!(!settings.has_password() && settings.password().is_none());
        settings.set_idle_timeout(Some(Duration::ZERO));
        assert_eq!(settings.idle_timeout(), None, "timeout 0 is none");
    }
}
