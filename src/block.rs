//! Blocking commands (BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP): clients
//! waiting for a list or sorted set to receive elements.
//!
//! A blocking command that finds its keys empty registers a [`Waiter`] on each key *while it
//! still holds the keys' shard locks*, so a push cannot slip in between "empty" and
//! "waiting". The connection then stops executing its input and waits on the waiter (see
//! `server::conn`). Waiters of one key form a queue in arrival order, as in Redis.
//!
//! Serving: a write that adds elements to a list or sorted set (through
//! `cmd::capture::Writer::update`) checks one atomic counter and, when someone waits on that
//! key, hands elements to the waiters in queue order *inside the same command, under the same
//! lock*: each waiter's [`Serve`] pops what its command pops and the reply goes to the
//! waiting connection. The pops are part of the pushing command's effects, so the log and the
//! replicas see push and pops together, and no other command can run between them (as in
//! Redis, where a pushed element reaches the longest-waiting client before any other command
//! runs). A waiter whose command also writes another key (BLMOVE's destination) cannot be
//! served under the pusher's locks: it is woken instead and runs its command again (queueing
//! again, at the back, if another client took the elements first). Values that arrive whole (RENAME, MOVE, COPY, SWAPDB, STORE
//! results, replicated effects) wake every waiter of the key the same way.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::protocol::{Reply, Request};
use crate::store::Collection;

/// Parses a blocking command's timeout as Redis 7.0's `getTimeoutFromObjectOrReply` does:
/// seconds as a (long) double, truncated to milliseconds; 0 (or less than a millisecond)
/// waits forever (`None`).
///
/// # Errors
/// Redis's error text (with its `ERR` code).
pub fn parse_timeout(arg: &[u8]) -> Result<Option<std::time::Duration>, &'static str> {
    let secs = std::str::from_utf8(arg)
        .ok()
        .filter(|t| !t.starts_with(|c: char| c.is_ascii_whitespace()))
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|v| !v.is_nan())
        .ok_or("ERR timeout is not a float or out of range")?;
    let ms = (secs * 1000.0).trunc();
    if ms < 0.0 {
        return Err("ERR timeout is negative");
    }
    // Redis refuses a deadline past LLONG_MAX milliseconds; a year is plenty here.
    if ms >= i64::MAX as f64 {
        return Err("ERR timeout is out of range");
    }
    Ok((ms > 0.0).then(|| std::time::Duration::from_millis(ms as u64)))
}

/// The timeout of a blocking command request (`Some(None)`: forever), or `None` when it is
/// not one or its timeout does not parse. BLMPOP and BZMPOP take it first, the others last.
pub fn timeout_of(request: &Request) -> Option<Option<std::time::Duration>> {
    let name = request.args.first()?;
    let arg = if name.eq_ignore_ascii_case(b"blmpop") || name.eq_ignore_ascii_case(b"bzmpop") {
        request.args.get(1)?
    } else {
        request.args.last()?
    };
    parse_timeout(arg).ok()
}

/// What a waiter's command takes from a value that just received elements, under the
/// pusher's lock: `Some(reply)` when it took something (the reply its client gets), `None`
/// when the value had nothing for it (another kind, or emptied by an earlier waiter).
pub type ServeFn = Box<dyn FnMut(&[u8], &mut Collection) -> Option<Reply> + Send>;

/// How a waiter is served.
pub enum Serve {
    /// By the pusher, under its lock (pops from the key itself).
    Pop(ServeFn),
    /// By running its command again (it also writes keys the pusher does not hold).
    Retry,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Serve::Pop(_) => "Serve::Pop",
            Serve::Retry => "Serve::Retry",
        })
    }
}

/// Where a waiting client stands.
#[derive(Debug)]
pub enum Outcome {
    /// Still waiting.
    Waiting,
    /// A pusher served it: this is its reply.
    Served(Reply),
    /// Its keys may have elements now: run the command again.
    Retry,
    /// CLIENT UNBLOCK ... TIMEOUT: answer as if the timeout passed.
    TimedOut,
    /// CLIENT UNBLOCK ... ERROR: answer `-UNBLOCKED`.
    Unblocked,
    /// The connection gave up (deadline, disconnect): no longer servable.
    Gone,
}

/// One blocked client.
#[derive(Debug)]
pub struct Waiter {
    /// The client's id (CLIENT UNBLOCK, CLIENT LIST).
    pub client: u64,
    /// The keys it waits on, `(db, key)`.
    pub keys: Vec<(usize, Bytes)>,
    state: Mutex<(Outcome, Serve)>,
    notify: Notify,
}

impl Waiter {
    /// Takes the outcome, leaving [`Outcome::Gone`] if it was still waiting (the caller stops
    /// waiting: deadline or disconnect) so no pusher serves it afterwards.
    pub fn finish(&self) -> Outcome {
        let mut state = lock(&self.state);
        match std::mem::replace(&mut state.0, Outcome::Gone) {
            Outcome::Waiting => Outcome::Gone,
            other => other,
        }
    }

    /// Waits until a pusher, a wake-up or CLIENT UNBLOCK changes the outcome.
    pub async fn changed(&self) {
        loop {
            let notified = self.notify.notified();
            if !matches!(lock(&self.state).0, Outcome::Waiting) {
                return;
            }
            notified.await;
        }
    }

    fn set(&self, outcome: Outcome) -> bool {
        let mut state = lock(&self.state);
        if !matches!(state.0, Outcome::Waiting) {
            return false;
        }
        state.0 = outcome;
        drop(state);
        self.notify.notify_one();
        true
    }
}

/// The node's blocked clients, by key.
#[derive(Debug, Default)]
pub struct Blocking {
    /// Blocked clients (INFO's `blocked_clients`); also the fast check writers make.
    count: AtomicUsize,
    queues: Mutex<Queues>,
}

#[derive(Debug, Default)]
struct Queues {
    by_key: HashMap<(usize, Bytes), VecDeque<Arc<Waiter>>>,
    by_client: HashMap<u64, Arc<Waiter>>,
}

impl Blocking {
    /// Registers a waiter for `client` on `keys`. Call while holding the keys' shard locks
    /// (see the module docs).
    pub fn register(&self, client: u64, keys: Vec<(usize, Bytes)>, serve: Serve) -> Arc<Waiter> {
        let waiter = Arc::new(Waiter {
            client,
            keys,
            state: Mutex::new((Outcome::Waiting, serve)),
            notify: Notify::new(),
        });
        let mut queues = lock(&self.queues);
        for key in &waiter.keys {
            queues
                .by_key
                .entry(key.clone())
                .or_default()
                .push_back(waiter.clone());
        }
        queues.by_client.insert(client, waiter.clone());
        self.count.fetch_add(1, Ordering::Relaxed);
        waiter
    }

    /// Removes a waiter from every queue (it was served, gave up or is retrying).
    pub fn deregister(&self, waiter: &Arc<Waiter>) {
        let mut queues = lock(&self.queues);
        let mut found = false;
        for key in &waiter.keys {
            if let Some(queue) = queues.by_key.get_mut(key) {
                let before = queue.len();
                queue.retain(|w| !Arc::ptr_eq(w, waiter));
                found |= queue.len() != before;
                if queue.is_empty() {
                    queues.by_key.remove(key);
                }
            }
        }
        if queues
            .by_client
            .get(&waiter.client)
            .is_some_and(|w| Arc::ptr_eq(w, waiter))
        {
            queues.by_client.remove(&waiter.client);
        }
        if found {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Number of blocked clients.
    pub fn blocked_clients(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether `client` is blocked (CLIENT LIST's `b` flag).
    pub fn is_blocked(&self, client: u64) -> bool {
        self.blocked_clients() > 0 && lock(&self.queues).by_client.contains_key(&client)
    }

    /// Hands elements of `value`, just grown under `key` in `db`, to the key's waiters in
    /// arrival order, while it has any; returns whether any took elements. Called by the
    /// writer under the key's lock; one atomic load when nobody waits.
    pub fn serve(&self, db: usize, key: &[u8], value: &mut Collection) -> bool {
        if self.blocked_clients() == 0 {
            return false;
        }
        let mut queues = lock(&self.queues);
        let Some(queue) = queues.by_key.get(&(db, Bytes::copy_from_slice(key))) else {
            return false;
        };
        let mut took = false;
        let mut done = Vec::new();
        for waiter in queue.iter() {
            if value.is_empty() {
                break;
            }
            let mut state = lock(&waiter.state);
            if !matches!(state.0, Outcome::Waiting) {
                continue;
            }
            let reply = match &mut state.1 {
                Serve::Pop(serve) => serve(key, value),
                Serve::Retry => {
                    // Woken to run its command again; the elements stay for it (or others).
                    state.0 = Outcome::Retry;
                    drop(state);
                    waiter.notify.notify_one();
                    done.push(waiter.clone());
                    continue;
                }
            };
            if let Some(reply) = reply {
                took = true;
                state.0 = Outcome::Served(reply);
                drop(state);
                waiter.notify.notify_one();
                done.push(waiter.clone());
            }
        }
        drop_served(&mut queues, &done, &self.count);
        took
    }

    /// Wakes every waiter of `key` in `db` to run its command again (a value arrived whole).
    pub fn wake(&self, db: usize, key: &[u8]) {
        if self.blocked_clients() == 0 {
            return;
        }
        let mut queues = lock(&self.queues);
        let Some(queue) = queues.by_key.get(&(db, Bytes::copy_from_slice(key))) else {
            return;
        };
        let done: Vec<_> = queue
            .iter()
            .filter(|w| w.set(Outcome::Retry))
            .cloned()
            .collect();
        drop_served(&mut queues, &done, &self.count);
    }

    /// Wakes every waiter (FLUSHALL, SWAPDB, a slot move: anything may have changed).
    pub fn wake_all(&self) {
        if self.blocked_clients() == 0 {
            return;
        }
        let mut queues = lock(&self.queues);
        let done: Vec<_> = queues
            .by_client
            .values()
            .filter(|w| w.set(Outcome::Retry))
            .cloned()
            .collect();
        drop_served(&mut queues, &done, &self.count);
    }

    /// CLIENT UNBLOCK: ends `client`'s wait as a timeout or with an error; false when it was
    /// not blocked.
    pub fn unblock(&self, client: u64, error: bool) -> bool {
        let mut queues = lock(&self.queues);
        let Some(waiter) = queues.by_client.get(&client).cloned() else {
            return false;
        };
        let outcome = if error {
            Outcome::Unblocked
        } else {
            Outcome::TimedOut
        };
        if !waiter.set(outcome) {
            return false;
        }
        drop_served(&mut queues, &[waiter], &self.count);
        true
    }
}

/// Takes waiters that are no longer waiting out of every queue.
fn drop_served(queues: &mut Queues, done: &[Arc<Waiter>], count: &AtomicUsize) {
    for waiter in done {
        for key in &waiter.keys {
            if let Some(queue) = queues.by_key.get_mut(key) {
                queue.retain(|w| !Arc::ptr_eq(w, waiter));
                if queue.is_empty() {
                    queues.by_key.remove(key);
                }
            }
        }
        if queues
            .by_client
            .get(&waiter.client)
            .is_some_and(|w| Arc::ptr_eq(w, waiter))
        {
            queues.by_client.remove(&waiter.client);
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Locks a mutex, going on after a panic elsewhere (the data is simple enough to stay valid).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::List;

    fn list(items: &[&[u8]]) -> Collection {
        let mut l = List::new();
        items.iter().for_each(|i| l.push_back(i));
        Collection::List(l)
    }

    fn pop_front() -> Serve {
        Serve::Pop(Box::new(|_key, v| {
            let Collection::List(l) = v else { return None };
            let mut items = Vec::new();
            l.for_each(|i| items.push(Bytes::copy_from_slice(i)));
            let first = items.first()?.clone();
            let mut rest = List::new();
            items[1..].iter().for_each(|i| rest.push_back(i));
            *l = rest;
            Some(Reply::Bulk(first))
        }))
    }

    #[test]
    fn timeouts_parse_as_redis_parses_them() {
        use std::time::Duration;
        assert_eq!(parse_timeout(b"0"), Ok(None));
        assert_eq!(
            parse_timeout(b"0.0001"),
            Ok(None),
            "under a millisecond: forever"
        );
        assert_eq!(parse_timeout(b"1.5"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(parse_timeout(b"-1"), Err("ERR timeout is negative"));
        for bad in [&b"abc"[..], b"", b" 1", b"nan", b"1x"] {
            assert_eq!(
                parse_timeout(bad),
                Err("ERR timeout is not a float or out of range"),
                "{bad:?}"
            );
        }
        assert_eq!(parse_timeout(b"inf"), Err("ERR timeout is out of range"));
    }

    #[test]
    fn waiters_are_served_in_arrival_order_while_elements_last() {
        let b = Blocking::default();
        let key = || vec![(0, Bytes::from_static(b"l"))];
        let first = b.register(1, key(), pop_front());
        let second = b.register(2, key(), pop_front());
        let third = b.register(3, key(), pop_front());
        assert_eq!(b.blocked_clients(), 3);
        assert!(b.is_blocked(2));
        let mut v = list(&[b"a", b"b"]);
        b.serve(0, b"l", &mut v);
        assert!(matches!(first.finish(), Outcome::Served(Reply::Bulk(x)) if x == "a"));
        assert!(matches!(second.finish(), Outcome::Served(Reply::Bulk(x)) if x == "b"));
        assert!(v.is_empty());
        assert_eq!(b.blocked_clients(), 1);
        // The third gives up: nobody serves it afterwards.
        assert!(matches!(third.finish(), Outcome::Gone));
        b.deregister(&third);
        assert_eq!(b.blocked_clients(), 0);
        let mut v = list(&[b"c"]);
        b.serve(0, b"l", &mut v);
        assert!(!v.is_empty());
    }

    #[test]
    fn retry_waiters_are_woken_and_unblock_ends_a_wait() {
        let b = Blocking::default();
        let mover = b.register(1, vec![(0, Bytes::from_static(b"l"))], Serve::Retry);
        let popper = b.register(2, vec![(0, Bytes::from_static(b"l"))], pop_front());
        let mut v = list(&[b"a"]);
        b.serve(0, b"l", &mut v);
        assert!(matches!(mover.finish(), Outcome::Retry));
        assert!(matches!(popper.finish(), Outcome::Served(_)));
        let waiter = b.register(3, vec![(1, Bytes::from_static(b"z"))], pop_front());
        assert!(!b.unblock(99, false));
        assert!(b.unblock(3, true));
        assert!(!b.unblock(3, true), "only once");
        assert!(matches!(waiter.finish(), Outcome::Unblocked));
        assert_eq!(b.blocked_clients(), 0);
        let other = b.register(4, vec![(0, Bytes::from_static(b"x"))], pop_front());
        b.wake_all();
        assert!(matches!(other.finish(), Outcome::Retry));
        assert_eq!(b.blocked_clients(), 0);
    }
}
