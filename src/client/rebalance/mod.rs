//! Slot moves for the operator commands `minikv rebalance` and `minikv remove-node`: read who
//! owns which slots (`CLUSTER SHARDS`), plan the moves (`plan.rs`), run them one
//! `CLUSTER MOVESLOTS from to start-end ...` call at a time, and report each
//! (`progress.rs`). It speaks RESP through [`super::node`] connections, like the rest of the
//! client, and knows nothing of how a node copies the keys.
//!
//! Any server of the list will do: every node answers these commands, forwarding them as
//! needed. When one cannot be reached, the next one is used. After anything that may have
//! interrupted a move (`TRYAGAIN`, `CLUSTERDOWN`, a broken connection, a timeout) the driver
//! pauses, reads `CLUSTER SHARDS` again and plans again from what it says: it never assumes
//! that a call did or did not happen, so a run killed half-way is continued by running the
//! command again. Any other error reply (`ERR ...`) ends the run. After
//! [`Options::stall_limit`] (60 s) without a move completing, it gives up.
//!
//! # Output
//!
//! [`Printer`] writes these lines; their format is stable (scripts and tests parse them).
//! On standard output, in order:
//!
//! ```text
//! plan: move 3072 slots in 12 calls (shards: 1=4096 2=4096 3=4096 4=0)
//! plan: move 3072 slots of shard 4 in 12 calls (shards: 1=3072 2=3072 3=3072 4=3072)
//! already balanced: 4 shards with 3072 slots each
//! moved 256 slots 3 -> 4: keys=20833 bytes=1234567 wire=345678 (512/3072 slots, 00:03 left)
//! removed: node 4
//! done: slots=3072 keys=250000 bytes=18874368 wire=5242880 seconds=12.34 keys/s=20259
//! ```
//!
//! - `plan:` (the second form for remove-node) or `already balanced:` comes first; then one
//!   `moved` line per call, unless standard error is a terminal, where one bar line is redrawn
//!   there instead; `removed:` after remove-node's `CLUSTER REMOVENODE`; `done:` last.
//! - `moved N slots FROM -> TO`: shard ids; `keys`, `bytes` (raw key and value bytes) and
//!   `wire` (bytes sent between the nodes) of that call; then slots moved so far out of the
//!   run's total, and the time left at the pace so far (`mm:ss`, or `h:mm:ss`).
//! - `done:` totals of the run; `seconds` has two decimals, `keys/s` is a whole number. A call
//!   whose reply was lost counts in `slots` once `CLUSTER SHARDS` shows the slots moved, but
//!   its keys and bytes are unknown and not counted.
//! - Retries go to standard error: `retry: REASON (again in 0.5 s)`.

mod plan;
mod progress;

pub use plan::{apply, count, counts, plan_rebalance, plan_removal, Move, Ownership, ShardId};
pub use progress::{
    bar_line, start_line, step_line, summary_line, MoveStats, Printer, Progress, Start, Step,
    Summary, Totals,
};

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::node::NodePool;
use super::router::SLOTS;
use super::topology::{field, fields, parse_shard_list};
use super::{retry, ClientError};
use crate::protocol::Reply;
use crate::tls::TlsClientConfig;

/// How to reach the cluster and how hard to try.
#[derive(Debug, Clone)]
pub struct Options {
    /// `host:port` of the nodes to ask, in the order they are tried.
    pub servers: Vec<String>,
    /// Most slots per `CLUSTER MOVESLOTS` call (0 counts as 1).
    pub batch: usize,
    /// Sent with AUTH on every new connection.
    pub password: Option<String>,
    /// Connect with TLS when set.
    pub tls: Option<Arc<TlsClientConfig>>,
    /// Limit for one `CLUSTER MOVESLOTS` call (the node copies the keys meanwhile).
    pub move_timeout: Duration,
    /// Limit for one `CLUSTER SHARDS` or `CLUSTER REMOVENODE` call.
    pub query_timeout: Duration,
    /// Pause before retrying after a failure.
    pub pause: Duration,
    /// Give up after this long without a move (or the removal) completing.
    pub stall_limit: Duration,
}

impl Options {
    /// The defaults for `servers`: batches of [`DEFAULT_BATCH`] slots, 60 s per move, 5 s per
    /// query, 0.5 s between retries, giving up after 60 s without progress.
    pub fn new(servers: Vec<String>) -> Self {
        Options {
            servers,
            batch: DEFAULT_BATCH,
            password: None,
            tls: None,
            move_timeout: Duration::from_secs(60),
            query_timeout: Duration::from_secs(5),
            pause: Duration::from_millis(500),
            stall_limit: Duration::from_secs(60),
        }
    }
}

/// Why a rebalance or a removal stopped.
#[derive(Debug, thiserror::Error)]
pub enum RebalanceError {
    /// No server of the list could be reached at the start (all down, or a wrong list).
    #[error("no server of the list answered CLUSTER SHARDS; the last failure: {last}")]
    Unreachable {
        /// The last server's failure.
        last: String,
    },
    /// A node refused `CLUSTER SHARDS`: a plain cluster (nodes started without `--cluster`)
    /// has no slots to move.
    #[error(
        "{addr} answered CLUSTER SHARDS with '{reply}': slots move only in a replicated \
         cluster (nodes started with --cluster)"
    )]
    NotReplicated {
        /// The node.
        addr: String,
        /// Its error reply.
        reply: String,
    },
    /// The `CLUSTER SHARDS` reply is not shaped as expected, or does not give every slot to
    /// exactly one shard (a node without slot support?).
    #[error("unusable CLUSTER SHARDS reply from {addr}: {reason}")]
    Shards {
        /// The node.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// remove-node named a shard id that `CLUSTER SHARDS` does not list.
    #[error("no shard {id} in the cluster (its shards: {})", list(known))]
    UnknownShard {
        /// The id asked for.
        id: ShardId,
        /// The ids the cluster has.
        known: Vec<ShardId>,
    },
    /// remove-node named the only shard: its slots would have nowhere to go.
    #[error("shard {0} is the only shard: its slots have nowhere to go")]
    LastShard(ShardId),
    /// A node answered a command with an error that retrying will not fix (bad arguments,
    /// slots not owned by the giver, a shard not emptied): the run stops.
    #[error("{command} refused by {addr}: {reply}")]
    Refused {
        /// The command, abridged.
        command: String,
        /// The node.
        addr: String,
        /// Its error reply.
        reply: String,
    },
    /// A node answered `CLUSTER MOVESLOTS` with something else than its counts.
    #[error("{addr} answered {command} with an unexpected reply: {reply}")]
    BadReply {
        /// The command, abridged.
        command: String,
        /// The node.
        addr: String,
        /// The reply, as debug text.
        reply: String,
    },
    /// Nothing completed for [`Options::stall_limit`]: the cluster kept answering `TRYAGAIN`
    /// or `CLUSTERDOWN`, or could not be reached. Running the command again continues.
    #[error("gave up after {} s without progress; the last failure: {last}", after.as_secs())]
    Stalled {
        /// The limit that ran out.
        after: Duration,
        /// The last failure.
        last: String,
    },
    /// A failure that retrying cannot fix, e.g. a refused password.
    #[error(transparent)]
    Client(ClientError),
}

/// Moves slots until every shard owns the floor or the ceiling of 12288 over the number of
/// shards, reporting to `progress`. Returns the totals (also given to
/// [`Progress::finish`]); a balanced cluster returns at once with zero totals.
///
/// # Errors
/// See [`RebalanceError`]: unreachable servers at the start, a plain cluster, an error reply
/// other than `TRYAGAIN`/`CLUSTERDOWN`, or no progress for [`Options::stall_limit`].
pub async fn rebalance(
    options: &Options,
    progress: &mut (dyn Progress + Send),
) -> Result<Summary, RebalanceError> {
    Driver::new(options).run(Goal::Rebalance, progress).await
}

/// Moves every slot of shard `id` to the other shards, each receiving about the same number,
/// then sends `CLUSTER REMOVENODE id`. Returns the totals.
///
/// # Errors
/// As [`rebalance`]; also [`RebalanceError::UnknownShard`] when the cluster has no shard
/// `id`, and [`RebalanceError::LastShard`] when it has no other.
pub async fn remove_node(
    options: &Options,
    id: ShardId,
    progress: &mut (dyn Progress + Send),
) -> Result<Summary, RebalanceError> {
    Driver::new(options).run(Goal::Remove(id), progress).await
}

/// What a run is for.
#[derive(Debug, Clone, Copy)]
enum Goal {
    Rebalance,
    Remove(ShardId),
}

impl Goal {
    fn plan(self, owners: &Ownership, batch: usize) -> Result<Vec<Move>, RebalanceError> {
        match self {
            Goal::Rebalance => Ok(plan_rebalance(owners, batch)),
            Goal::Remove(id) => plan_removal(owners, id, batch),
        }
    }
}

/// How one call went wrong.
enum Failure {
    /// Not worth retrying: the run ends with this error.
    Fatal(RebalanceError),
    /// Worth retrying after a pause and a fresh `CLUSTER SHARDS`; the text says what happened.
    Retry(String),
    /// No server could be reached at all (only from reading `CLUSTER SHARDS`): fatal before
    /// the first successful read, retried after it.
    Unreachable(String),
}

/// One run: the connections, the server in use, and when something last completed.
struct Driver<'a> {
    options: &'a Options,
    pools: Vec<NodePool>,
    /// Index of the server to ask next.
    current: usize,
    last_progress: Instant,
}

impl<'a> Driver<'a> {
    fn new(options: &'a Options) -> Self {
        let pools = options
            .servers
            .iter()
            .map(|addr| {
                NodePool::new(addr.clone(), 1)
                    .password(options.password.clone())
                    .tls(options.tls.clone())
            })
            .collect();
        Driver {
            options,
            pools,
            current: 0,
            last_progress: Instant::now(),
        }
    }

    async fn run(
        &mut self,
        goal: Goal,
        progress: &mut (dyn Progress + Send),
    ) -> Result<Summary, RebalanceError> {
        let started = Instant::now();
        self.last_progress = started;
        let batch = self.options.batch;
        let mut owners = self.first_read().await?;
        let mut queue: VecDeque<Move> = goal.plan(&owners, batch)?.into();
        progress.start(&Start {
            shards: counts(&owners),
            slots: queue.iter().map(Move::slots).sum(),
            calls: queue.len(),
            removing: match goal {
                Goal::Remove(id) => Some(id),
                Goal::Rebalance => None,
            },
        });
        let mut totals = Totals::default();
        let mut total_slots = remaining(&queue);
        // The call whose outcome is unknown until `CLUSTER SHARDS` is read again.
        let mut pending: Option<Move> = None;
        let mut stale = false;
        loop {
            if stale {
                match self.read_shards().await {
                    Ok(fresh) => {
                        if let Some(mv) = pending.take() {
                            let arrived = arrived(&fresh, &mv);
                            if arrived > 0 {
                                totals.slots += arrived;
                                self.last_progress = Instant::now();
                            }
                        }
                        owners = fresh;
                        queue = goal.plan(&owners, batch)?.into();
                        total_slots = totals.slots + remaining(&queue);
                        stale = false;
                    }
                    Err(Failure::Fatal(e)) => return Err(e),
                    Err(Failure::Retry(reason) | Failure::Unreachable(reason)) => {
                        self.pause(&reason, progress).await?;
                        continue;
                    }
                }
            }
            let Some(mv) = queue.front().cloned() else {
                break;
            };
            match self.move_slots(&mv).await {
                Ok(mut stats) => {
                    queue.pop_front();
                    apply(&mut owners, &mv);
                    self.last_progress = Instant::now();
                    if stats.slots == 0 {
                        stats.slots = mv.slots() as u64;
                    }
                    totals.slots += mv.slots() as u64;
                    totals.keys += stats.keys;
                    totals.bytes += stats.bytes;
                    totals.wire_bytes += stats.wire_bytes;
                    progress.step(&Step {
                        from: mv.from,
                        to: mv.to,
                        stats,
                        totals,
                        total_slots,
                        elapsed: started.elapsed(),
                    });
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(reason) | Failure::Unreachable(reason)) => {
                    pending = Some(mv);
                    stale = true;
                    self.pause(&reason, progress).await?;
                }
            }
        }
        if let Goal::Remove(id) = goal {
            self.remove(id, progress).await?;
            progress.removed(id);
        }
        let summary = Summary {
            totals,
            elapsed: started.elapsed(),
        };
        progress.finish(&summary);
        Ok(summary)
    }

    /// The first `CLUSTER SHARDS`: retried on `TRYAGAIN`/`CLUSTERDOWN`, but not when no
    /// server can be reached at all (most likely a wrong `--servers` list).
    async fn first_read(&mut self) -> Result<Ownership, RebalanceError> {
        loop {
            match self.read_shards().await {
                Ok(owners) => return Ok(owners),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Unreachable(last)) => {
                    return Err(RebalanceError::Unreachable { last })
                }
                Err(Failure::Retry(reason)) => {
                    // Nothing to report progress to yet: wait quietly.
                    self.check_stall(&reason)?;
                    tokio::time::sleep(self.options.pause).await;
                }
            }
        }
    }

    /// `CLUSTER SHARDS` from the first server that answers, starting with the current one.
    async fn read_shards(&mut self) -> Result<Ownership, Failure> {
        let query = [
            Bytes::from_static(b"CLUSTER"),
            Bytes::from_static(b"SHARDS"),
        ];
        let mut last = None;
        let mut answered = false;
        for _ in 0..self.pools.len() {
            let addr = self.addr();
            match self.call(&query, self.options.query_timeout).await {
                Ok(Reply::Error(text)) => {
                    return Err(Failure::Fatal(RebalanceError::NotReplicated {
                        addr,
                        reply: text.into_owned(),
                    }))
                }
                Ok(reply) => {
                    return ownership(&reply, &self.options.servers)
                        .map_err(|reason| Failure::Fatal(RebalanceError::Shards { addr, reason }))
                }
                Err(Failure::Retry(reason)) => {
                    // A transient answer: the node is up, another may know better.
                    answered = true;
                    self.next_server();
                    last = Some(reason);
                }
                Err(Failure::Unreachable(reason)) => last = Some(reason),
                Err(fatal) => return Err(fatal),
            }
        }
        let last = last.unwrap_or_else(|| "the server list is empty".into());
        Err(if answered {
            Failure::Retry(last)
        } else {
            Failure::Unreachable(last)
        })
    }

    /// One `CLUSTER MOVESLOTS` call.
    async fn move_slots(&mut self, mv: &Move) -> Result<MoveStats, Failure> {
        let mut args = vec![
            Bytes::from_static(b"CLUSTER"),
            Bytes::from_static(b"MOVESLOTS"),
            Bytes::from(mv.from.to_string()),
            Bytes::from(mv.to.to_string()),
        ];
        args.extend(
            mv.ranges
                .iter()
                .map(|(start, end)| Bytes::from(format!("{start}-{end}"))),
        );
        let command = abridged(mv);
        let addr = self.addr();
        match self.call(&args, self.options.move_timeout).await? {
            Reply::Error(text) => Err(Failure::Fatal(RebalanceError::Refused {
                command,
                addr,
                reply: text.into_owned(),
            })),
            reply => move_stats(&reply).ok_or_else(|| {
                Failure::Fatal(RebalanceError::BadReply {
                    command,
                    addr,
                    reply: format!("{reply:?}"),
                })
            }),
        }
    }

    /// `CLUSTER REMOVENODE id`, retried until it succeeds, is refused or stalls.
    async fn remove(
        &mut self,
        id: ShardId,
        progress: &mut (dyn Progress + Send),
    ) -> Result<(), RebalanceError> {
        let args = [
            Bytes::from_static(b"CLUSTER"),
            Bytes::from_static(b"REMOVENODE"),
            Bytes::from(id.to_string()),
        ];
        loop {
            let addr = self.addr();
            match self.call(&args, self.options.query_timeout).await {
                Ok(Reply::Error(text)) => {
                    return Err(RebalanceError::Refused {
                        command: format!("CLUSTER REMOVENODE {id}"),
                        addr,
                        reply: text.into_owned(),
                    })
                }
                Ok(_) => return Ok(()),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(reason) | Failure::Unreachable(reason)) => {
                    self.pause(&reason, progress).await?;
                }
            }
        }
    }

    /// Sends `args` to the current server. Error replies other than `TRYAGAIN` and
    /// `CLUSTERDOWN` come back as `Ok(Reply::Error)`, for the caller to word; those two are
    /// [`Failure::Retry`]; a failure to reach the server moves on to the next one and is
    /// [`Failure::Unreachable`].
    async fn call(&mut self, args: &[Bytes], timeout: Duration) -> Result<Reply, Failure> {
        let pool = &self.pools[self.current];
        let addr = pool.addr().to_string();
        let reply = match pool.call(args, timeout).await {
            Ok(reply) => reply,
            Err(ClientError::Server(text)) => Reply::Error(text.into()),
            Err(e @ ClientError::Auth { .. }) => {
                return Err(Failure::Fatal(RebalanceError::Client(e)))
            }
            Err(e) => {
                self.next_server();
                return Err(Failure::Unreachable(e.to_string()));
            }
        };
        match reply {
            Reply::Error(text) if retry::is_transient_reply(&text) => {
                Err(Failure::Retry(format!("{addr}: {text}")))
            }
            reply => Ok(reply),
        }
    }

    /// Waits [`Options::pause`] before a retry, unless nothing has completed for
    /// [`Options::stall_limit`].
    async fn pause(
        &mut self,
        reason: &str,
        progress: &mut (dyn Progress + Send),
    ) -> Result<(), RebalanceError> {
        self.check_stall(reason)?;
        progress.retry(reason, self.options.pause);
        tokio::time::sleep(self.options.pause).await;
        Ok(())
    }

    fn check_stall(&self, reason: &str) -> Result<(), RebalanceError> {
        if self.last_progress.elapsed() >= self.options.stall_limit {
            return Err(RebalanceError::Stalled {
                after: self.options.stall_limit,
                last: reason.to_string(),
            });
        }
        Ok(())
    }

    fn next_server(&mut self) {
        self.current = (self.current + 1) % self.pools.len().max(1);
    }

    fn addr(&self) -> String {
        self.pools
            .get(self.current)
            .map(|p| p.addr().to_string())
            .unwrap_or_default()
    }
}

/// The slot ownership a `CLUSTER SHARDS` reply describes (shard id = `shard-index`), checked
/// to give each of the [`SLOTS`] slots to exactly one shard.
///
/// # Errors
/// The reason, when the reply is malformed, lists no shard, or does not cover every slot
/// exactly once.
pub fn ownership(reply: &Reply, servers: &[String]) -> Result<Ownership, String> {
    let shards = parse_shard_list(reply, servers)?;
    if shards.is_empty() {
        return Err("it lists no shard".into());
    }
    let mut owner: Vec<Option<ShardId>> = vec![None; usize::from(SLOTS)];
    let mut owners = Ownership::new();
    for shard in shards {
        let id = shard.index as ShardId + 1;
        for &(start, end) in &shard.slots {
            for slot in start..=end {
                if let Some(other) = owner[usize::from(slot)].replace(id) {
                    return Err(format!("slot {slot} is in shards {other} and {id}"));
                }
            }
        }
        let mut ranges = shard.slots;
        ranges.sort_unstable();
        owners.insert(id, ranges);
    }
    let listed = owner.iter().filter(|o| o.is_some()).count();
    if listed != usize::from(SLOTS) {
        return Err(format!(
            "it gives {listed} of the {SLOTS} slots to a shard (not a slot-aware minikv?)"
        ));
    }
    Ok(owners)
}

/// The counts of a `CLUSTER MOVESLOTS` reply (a map, or RESP2's flat name/value array), the
/// fields missing counting 0; `+OK` counts all 0. `None` for any other reply.
fn move_stats(reply: &Reply) -> Option<MoveStats> {
    if matches!(reply, Reply::Simple(_)) {
        return Some(MoveStats::default());
    }
    let fields = fields(reply)?;
    let number = |name: &str| match field(&fields, name) {
        Some(Reply::Int(n)) => u64::try_from(*n).ok(),
        None => Some(0),
        Some(_) => None,
    };
    Some(MoveStats {
        slots: number("slots")?,
        keys: number("keys")?,
        bytes: number("bytes")?,
        wire_bytes: number("wire-bytes")?,
        ms: number("ms")?,
    })
}

/// The slots of `mv` that `owners` shows at `mv.to`.
fn arrived(owners: &Ownership, mv: &Move) -> u64 {
    let Some(to) = owners.get(&mv.to) else {
        return 0;
    };
    let overlap: usize = mv
        .ranges
        .iter()
        .map(|&(s, e)| {
            to.iter()
                .map(|&(ts, te)| {
                    let (lo, hi) = (s.max(ts), e.min(te));
                    if lo <= hi {
                        usize::from(hi - lo) + 1
                    } else {
                        0
                    }
                })
                .sum::<usize>()
        })
        .sum();
    overlap as u64
}

fn remaining(queue: &VecDeque<Move>) -> u64 {
    queue.iter().map(|m| m.slots() as u64).sum()
}

/// `CLUSTER MOVESLOTS 3 4 (256 slots from 0-0)`: a call's arguments can be hundreds of ranges.
fn abridged(mv: &Move) -> String {
    let first = mv
        .ranges
        .first()
        .map(|(s, e)| format!(" from {s}-{e}"))
        .unwrap_or_default();
    format!(
        "CLUSTER MOVESLOTS {} {} ({} slots{first})",
        mv.from,
        mv.to,
        mv.slots()
    )
}

fn list(ids: &[ShardId]) -> String {
    let ids: Vec<String> = ids.iter().map(ShardId::to_string).collect();
    ids.join(", ")
}

/// `--batch`'s default: slots per `CLUSTER MOVESLOTS` call.
pub const DEFAULT_BATCH: usize = 1024;

#[cfg(test)]
mod tests;
