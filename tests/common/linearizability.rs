//! A linearizability checker for histories of a key-value store where each key is a register:
//! `GET -> value or nil`, `SET value -> OK`, `INCR -> new value` (a missing key counts as 0) and
//! `DEL -> count`. It owns the model and the search; it does not run anything: the nemesis
//! harness ([`super::nemesis`]) records histories, this module judges them.
//!
//! The search is Wing & Gong's, with Lowe's memoisation, as Porcupine implements it: walk the
//! time-ordered list of call and return events, linearize a pending call whenever the model
//! allows it, backtrack when a return is reached whose operation is not yet linearized, and
//! never explore the same (set of linearized operations, register state) pair twice. Keys are
//! independent registers, so each key's sub-history is checked alone (P-compositionality).
//!
//! Indeterminate operations (a timeout or a lost connection after the request was sent;
//! Jepsen's `:info`) have no completion and no output: they may take effect at any point after
//! their invocation, or never. They are given a completion after every other event, and the
//! model accepts any output from them; "never" is then the same as "last", where nothing reads
//! the effect. Indeterminate reads have no effect at all and are dropped. Failed operations
//! (definitely not applied) are dropped too.
//!
//! Public crates were considered first: `stateright`'s `LinearizabilityTester` records
//! histories from its own actor model checker, and `todc-utils`' `WGLChecker` has neither
//! indeterminate operations nor per-key decomposition; neither fits histories recorded from
//! real processes over sockets.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// An operation's input: the command sent for its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Call {
    /// `GET key`.
    Get,
    /// `SET key value`.
    Set(String),
    /// `INCR key`.
    Incr,
    /// `DEL key`.
    Del,
}

/// An operation's output, as the store acknowledged it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `GET`'s reply: the value, or `None` for nil.
    Value(Option<String>),
    /// `SET`'s `+OK`.
    Ok,
    /// `INCR`'s new value.
    Int(i64),
    /// `DEL`'s count of removed keys.
    Count(u64),
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged at `at` (nanoseconds on the history's clock) with `ret`.
    Done {
        /// Completion time.
        at: u64,
        /// The reply.
        ret: Ret,
    },
    /// Definitely not applied (an error before sending, a refused connection): ignored.
    Failed,
    /// Indeterminate: sent, but no reply came (timeout, lost connection).
    Unknown,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The client (worker) that issued it, for explanations only.
    pub client: usize,
    /// The key it touched.
    pub key: String,
    /// What it asked for.
    pub call: Call,
    /// Invocation time: nanoseconds on the history's clock, taken before sending.
    pub invoke: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// Why a history is not linearizable: one key's operations that could not be ordered.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The key whose sub-history has no linearization.
    pub key: String,
    /// The longest order found that the model accepts, ending in `state`.
    pub longest: Vec<Operation>,
    /// The register's value after `longest`.
    pub state: Option<String>,
    /// Operations not in `longest` that could have come next (invoked before the first
    /// return still outstanding), none of which the model accepts in `state`.
    pub stuck: Vec<Operation>,
}

/// Checks that `history` is linearizable, key by key.
///
/// # Errors
/// The first key (in key order) whose operations cannot be linearized, with an explanation.
///
/// # Panics
/// If an operation's output does not match its input (`GET` answered with `Ret::Ok`): the
/// history itself is malformed.
pub fn check(history: &[Operation]) -> Result<(), Box<Violation>> {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in history {
        validate(op);
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    for (key, ops) in by_key {
        check_key(key, &ops)?;
    }
    Ok(())
}

/// The register model: the state after applying `call` with reply `ret` (`None` when
/// indeterminate) to `state`, or `None` if the model could not have produced `ret`.
pub fn step(state: &Option<String>, call: &Call, ret: Option<&Ret>) -> Option<Option<String>> {
    match (call, ret) {
        (Call::Get, None) => Some(state.clone()),
        (Call::Get, Some(Ret::Value(v))) => (v == state).then(|| state.clone()),
        (Call::Set(v), None | Some(Ret::Ok)) => Some(Some(v.clone())),
        (Call::Incr, ret) => {
            let current = match state {
                None => Some(0i64),
                Some(text) => text.parse::<i64>().ok(),
            };
            match (current.and_then(|c| c.checked_add(1)), ret) {
                (Some(next), None) => Some(Some(next.to_string())),
                (Some(next), Some(Ret::Int(n))) => (next == *n).then(|| Some(next.to_string())),
                // Not an integer (or overflow): Redis replies with an error and changes
                // nothing, so only an indeterminate INCR fits, with no effect.
                (None, None) => Some(state.clone()),
                _ => None,
            }
        }
        (Call::Del, None) => Some(None),
        (Call::Del, Some(Ret::Count(c))) => (*c == u64::from(state.is_some())).then_some(None),
        _ => None,
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = match &self.call {
            Call::Get => "GET".to_string(),
            Call::Set(v) => format!("SET {v:?}"),
            Call::Incr => "INCR".to_string(),
            Call::Del => "DEL".to_string(),
        };
        let ms = |ns: u64| ns as f64 / 1e6;
        match &self.outcome {
            Outcome::Done { at, ret } => {
                let ret = match ret {
                    Ret::Value(Some(v)) => format!("{v:?}"),
                    Ret::Value(None) => "nil".to_string(),
                    Ret::Ok => "OK".to_string(),
                    Ret::Int(n) => n.to_string(),
                    Ret::Count(n) => n.to_string(),
                };
                write!(
                    f,
                    "client {} {call} {} -> {ret} [{:.3}ms .. {:.3}ms]",
                    self.client,
                    self.key,
                    ms(self.invoke),
                    ms(*at)
                )
            }
            Outcome::Failed => write!(
                f,
                "client {} {call} {} -> failed [{:.3}ms ..]",
                self.client,
                self.key,
                ms(self.invoke)
            ),
            Outcome::Unknown => write!(
                f,
                "client {} {call} {} -> ? (indeterminate) [{:.3}ms .. ?]",
                self.client,
                self.key,
                ms(self.invoke)
            ),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key {:?} is not linearizable.", self.key)?;
        let shown = self.longest.len().min(MAX_SHOWN);
        writeln!(
            f,
            "longest valid order ({} operations, last {shown}):",
            self.longest.len()
        )?;
        for op in &self.longest[self.longest.len() - shown..] {
            writeln!(f, "  {op}")?;
        }
        writeln!(
            f,
            "register then holds {:?}; none of these fits next:",
            self.state
        )?;
        for op in &self.stuck {
            writeln!(f, "  {op}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

/// Panics unless `op`'s output is one its input can produce.
fn validate(op: &Operation) {
    if let Outcome::Done { at, ret } = &op.outcome {
        let fits = matches!(
            (&op.call, ret),
            (Call::Get, Ret::Value(_))
                | (Call::Set(_), Ret::Ok)
                | (Call::Incr, Ret::Int(_))
                | (Call::Del, Ret::Count(_))
        );
        assert!(fits, "malformed history: {op}");
        assert!(
            *at >= op.invoke,
            "malformed history: completes before invoked: {op}"
        );
    }
}

/// One event of the time-ordered list the search walks.
#[derive(Debug, Clone, Copy)]
struct Event {
    /// Index into the key's operations.
    op: usize,
    is_call: bool,
    /// Index of the matching event (the call's return, the return's call).
    partner: usize,
}

/// Wing & Gong with memoisation over one key's operations.
fn check_key(key: &str, all: &[&Operation]) -> Result<(), Box<Violation>> {
    // Failed operations never happened; indeterminate reads changed nothing.
    let ops: Vec<&Operation> = all
        .iter()
        .copied()
        .filter(|op| match op.outcome {
            Outcome::Failed => false,
            Outcome::Unknown => op.call != Call::Get,
            Outcome::Done { .. } => true,
        })
        .collect();
    let n = ops.len();
    if n == 0 {
        return Ok(());
    }
    // Events sorted by time; a call sorts before a return at the same instant, so operations
    // that touch in time count as concurrent (the lenient reading of a coarse clock).
    // Indeterminate operations return after everything else.
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.invoke, false, i));
        let end = match op.outcome {
            Outcome::Done { at, .. } => at,
            _ => u64::MAX,
        };
        order.push((end, true, i));
    }
    order.sort_unstable();
    let mut events: Vec<Event> = Vec::with_capacity(2 * n);
    let mut call_at = vec![0; n];
    let mut return_at = vec![0; n];
    for (pos, &(_, is_return, op)) in order.iter().enumerate() {
        if is_return {
            return_at[op] = pos;
        } else {
            call_at[op] = pos;
        }
        events.push(Event {
            op,
            is_call: !is_return,
            partner: 0,
        });
    }
    for e in events.iter_mut() {
        e.partner = if e.is_call {
            return_at[e.op]
        } else {
            call_at[e.op]
        };
    }

    // A doubly linked list over the events; HEAD is a sentinel before the first one.
    let head = events.len();
    let mut next: Vec<usize> = (1..=events.len()).collect();
    next.push(0);
    let mut prev: Vec<usize> = Vec::with_capacity(events.len() + 1);
    prev.push(head);
    prev.extend(0..events.len() - 1);
    prev.push(NIL);
    if let Some(last) = next.get_mut(events.len() - 1) {
        *last = NIL;
    }

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut state: Option<String> = None;
    let mut seen: HashSet<(Vec<u64>, Option<String>)> = HashSet::new();
    // (call event linearized, state before it)
    let mut stack: Vec<(usize, Option<String>)> = Vec::new();
    let mut best: (Vec<usize>, Option<String>) = (Vec::new(), None);
    let mut entry = next[head];
    while next[head] != NIL {
        let e = if entry == NIL {
            None
        } else {
            Some(events[entry])
        };
        match e {
            Some(event) if event.is_call => {
                let op = ops[event.op];
                let ret = match &op.outcome {
                    Outcome::Done { ret, .. } => Some(ret),
                    _ => None,
                };
                let advanced = step(&state, &op.call, ret).and_then(|after| {
                    let mut with = linearized.clone();
                    with[event.op / 64] |= 1 << (event.op % 64);
                    seen.insert((with.clone(), after.clone()))
                        .then_some((with, after))
                });
                if let Some((with, after)) = advanced {
                    stack.push((entry, std::mem::replace(&mut state, after)));
                    linearized = with;
                    lift(&mut prev, &mut next, entry, event.partner);
                    if stack.len() > best.0.len() {
                        best = (
                            stack.iter().map(|&(e, _)| events[e].op).collect(),
                            state.clone(),
                        );
                    }
                    entry = next[head];
                } else {
                    entry = next[entry];
                }
            }
            // A return whose operation is not linearized yet (or, defensively, the end of
            // the list): undo the latest choice and try the next candidate after it.
            _ => {
                let Some((call, before)) = stack.pop() else {
                    return Err(Box::new(explain(key, &ops, &best)));
                };
                let event = events[call];
                state = before;
                linearized[event.op / 64] &= !(1 << (event.op % 64));
                unlift(&mut prev, &mut next, call, event.partner);
                entry = next[call];
            }
        }
    }
    Ok(())
}

/// Removes a call event and its return from the list (they keep their own links, so
/// [`unlift`] can put them back in stack order).
fn lift(prev: &mut [usize], next: &mut [usize], call: usize, ret: usize) {
    for e in [call, ret] {
        let (p, n) = (prev[e], next[e]);
        next[p] = n;
        if n != NIL {
            prev[n] = p;
        }
    }
}

/// Puts back what [`lift`] removed, in reverse order.
fn unlift(prev: &mut [usize], next: &mut [usize], call: usize, ret: usize) {
    for e in [ret, call] {
        let (p, n) = (prev[e], next[e]);
        next[p] = e;
        if n != NIL {
            prev[n] = e;
        }
    }
}

/// The explanation for a failed key: the longest accepted order and the operations that
/// could have come after it.
fn explain(key: &str, ops: &[&Operation], best: &(Vec<usize>, Option<String>)) -> Violation {
    let done: HashSet<usize> = best.0.iter().copied().collect();
    let completes = |op: &Operation| match op.outcome {
        Outcome::Done { at, .. } => at,
        _ => u64::MAX,
    };
    let first_return = (0..ops.len())
        .filter(|i| !done.contains(i))
        .map(|i| completes(ops[i]))
        .min()
        .unwrap_or(u64::MAX);
    let mut stuck: Vec<Operation> = (0..ops.len())
        .filter(|i| !done.contains(i) && ops[*i].invoke <= first_return)
        .map(|i| ops[i].clone())
        .collect();
    stuck.sort_by_key(|op| op.invoke);
    Violation {
        key: key.to_string(),
        longest: best.0.iter().map(|&i| ops[i].clone()).collect(),
        state: best.1.clone(),
        stuck,
    }
}

/// The end of the event list.
const NIL: usize = usize::MAX;
/// How many operations of the longest order a [`Violation`] prints.
const MAX_SHOWN: usize = 12;
