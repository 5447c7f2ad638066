//! [`Contacts`]: how this node's last exchange with each peer's bus went, shared by every
//! group's network and the node's calls, so that `CLUSTER SHARDS` can say a peer has failed
//! from any member's traffic (a follower of one shard usually leads another and talks to the
//! same peers there). It also logs a peer becoming unreachable, with the cause (a refused
//! password, an untrusted certificate, a refused connection), once per change rather than once
//! per heartbeat. It sends nothing itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The last outcome per peer bus address; clones share the table.
#[derive(Clone, Default)]
pub struct Contacts {
    peers: Arc<Mutex<HashMap<String, Contact>>>,
}

/// What the last exchange with one peer did.
#[derive(Debug, Clone)]
struct Contact {
    /// When it ended.
    at: Instant,
    /// `None` when it succeeded, else why it failed.
    error: Option<String>,
}

impl std::fmt::Debug for Contacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contacts")
            .field("peers", &self.lock().len())
            .finish()
    }
}

impl Contacts {
    /// Notes that an exchange with the bus at `addr` succeeded (the peer answered, whatever it
    /// answered).
    pub fn reached(&self, addr: &str) {
        let previous = self.lock().insert(
            addr.to_string(),
            Contact {
                at: Instant::now(),
                error: None,
            },
        );
        if previous.is_some_and(|c| c.error.is_some()) {
            tracing::info!(peer = addr, "cluster bus peer reachable again");
        }
    }

    /// Notes that an exchange with the bus at `addr` failed because of `error`; logs it when
    /// the peer was reachable before or failed for another reason.
    pub fn failed(&self, addr: &str, error: &dyn std::fmt::Display) {
        let error = error.to_string();
        let previous = self.lock().insert(
            addr.to_string(),
            Contact {
                at: Instant::now(),
                error: Some(error.clone()),
            },
        );
        let same_as_before = previous.is_some_and(|c| c.error.as_deref() == Some(error.as_str()));
        if !same_as_before {
            tracing::warn!(peer = addr, %error, "cluster bus peer unreachable");
        }
    }

    /// Whether the last exchange with `addr`, if it ended within `within`, succeeded. `None`
    /// when there was none that recent (nothing is known).
    pub fn reachable(&self, addr: &str, within: Duration) -> Option<bool> {
        let peers = self.lock();
        let contact = peers.get(addr)?;
        (contact.at.elapsed() <= within).then_some(contact.error.is_none())
    }

    /// A std mutex held only to read or replace one entry, never across an `.await`.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Contact>> {
        self.peers.lock().expect("bus contacts lock poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_recent_outcome_counts() {
        let contacts = Contacts::default();
        let day = Duration::from_secs(86_400);
        assert_eq!(contacts.reachable("a:1", day), None);
        contacts.reached("a:1");
        assert_eq!(contacts.reachable("a:1", day), Some(true));
        contacts.failed("a:1", &"authentication failed");
        assert_eq!(contacts.reachable("a:1", day), Some(false));
        assert_eq!(contacts.reachable("b:2", day), None);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(contacts.reachable("a:1", Duration::from_millis(1)), None);
    }
}
