//! Where a request runs in a replicated cluster: here, when this node leads the shard of its
//! keys; on the shard's leader otherwise (forwarded over the cluster bus, the reply relayed
//! unchanged); split per shard and recombined for MGET, MSET, DEL, EXISTS, UNLINK and TOUCH;
//! refused with `-CROSSSLOT` for any other command, transaction or WATCH whose keys span
//! shards, as Redis Cluster does.
//!
//! Reads run here only while this leader's lease is valid (see [`Group::lease_valid`]);
//! otherwise the leader first confirms its leadership with a majority (openraft's
//! `ensure_linearizable`, Raft's ReadIndex). Every command run here leaves a mark in the
//! session: the connection sends no reply before the marks are confirmed, so no client ever
//! sees a write (its own or another's) that the group could still lose.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::group::{Group, Role};
use super::Cluster;
use crate::cmd::{lookup, Session};
use crate::node::Node;
use crate::protocol::{Reply, Request};

/// How long a request waits for its shard to elect a leader before `-CLUSTERDOWN`.
const LEADER_WAIT: Duration = Duration::from_secs(3);

/// How long a reply waits for its writes to commit before the connection gives up on it.
pub const COMMIT_WAIT: Duration = Duration::from_secs(10);

/// A request forwarded to the leader of `shard` over the bus.
#[derive(Debug, Serialize, Deserialize)]
pub struct Forward {
    /// The shard the commands' keys are in.
    pub shard: usize,
    /// The commands, run in order (with MULTI ... EXEC around them for a transaction).
    pub commands: Vec<Vec<Bytes>>,
    /// RESP version of the client (replies are built as for it).
    pub protocol: u8,
    /// The caller's hop count: a request is forwarded at most twice (leaders change).
    pub hops: u8,
}

/// The leader's answer to a [`Forward`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Forwarded {
    /// One reply per command.
    Replies(Vec<Reply>),
    /// This node does not lead the shard; the leader it knows of (member id, 0: none).
    /// Nothing ran.
    NotLeader(u64),
    /// The commands ran but this node stopped leading before they were committed: whether
    /// the group kept them is unknown.
    Unknown,
    /// The first `replies.len()` commands ran; the rest are for keys whose slots moved to
    /// `shard` (nothing of them ran).
    Moved {
        /// The replies of the commands that ran.
        replies: Vec<Reply>,
        /// The shard the rest go to.
        shard: usize,
    },
}

/// What running a request here came to.
pub enum Local {
    /// It ran (or was refused); the reply, unless CLIENT REPLY says not to send one.
    Ran(Option<Reply>),
    /// Its keys' slots belong to `shard` now: nothing ran.
    Moved(usize),
}

/// Where a request goes, decided once per request by [`route`].
pub struct Route {
    plan: Plan,
    /// It may join a batch forwarded together (see [`Route::batch_shard`]).
    batchable: bool,
}

impl Route {
    /// The shard to forward the request to when it can join a batch of requests forwarded
    /// together (a pipeline's consecutive requests for one remote shard go in one bus call):
    /// a plain keyed command for a shard another node leads, outside a transaction, on an
    /// authenticated connection, without a request-level password or database, and not a
    /// blocking command (its connection waits for it alone, `server::conn::wait`).
    pub fn batch_shard(&self) -> Option<usize> {
        match self.plan {
            Plan::Remote(shard) if self.batchable => Some(shard),
            _ => None,
        }
    }
}

/// Decides where `request` runs (here, forwarded, split, refused...).
pub fn route(node: &Node, cluster: &Cluster, session: &mut Session, request: &Request) -> Route {
    let batchable = request.password.is_none()
        && request.db.is_none()
        && session.multi.is_none()
        && !session.auth_required(node)
        && !request
            .args
            .first()
            .and_then(|n| crate::cmd::lookup(n))
            .is_some_and(|spec| spec.flags.contains(&"blocking"));
    Route {
        plan: plan(cluster, session, request),
        batchable,
    }
}

/// Runs `request` for a connection of a node in a replicated cluster, where [`route`]
/// decided; `None` when CLIENT REPLY says not to answer.
pub async fn run(
    node: &Node,
    cluster: &Cluster,
    session: &mut Session,
    request: &Request,
    route: Route,
) -> Option<Reply> {
    match route.plan {
        Plan::Local(None) => session.execute(node, request),
        Plan::Local(Some(shard)) => {
            let group = cluster.group(shard)?;
            match run_local(
                node,
                cluster,
                &group,
                session,
                request,
                request_is_read(request),
            )
            .await
            {
                Local::Ran(reply) => reply,
                Local::Moved(_) if session.multi.is_some() && !session.watched.is_empty() => {
                    // EXEC of a transaction watching keys whose slots moved: the other shard
                    // cannot know whether they changed since WATCH, so it aborts, as EXEC does
                    // when a watched key changed.
                    session.multi = None;
                    session.unwatch_all(&node.store);
                    session.client.update_meta(|m| m.flags = "N");
                    session.answer(node, Reply::NilArray)
                }
                Local::Moved(to) if session.multi.is_some() => {
                    // EXEC of a transaction whose slots moved: it runs where they are now.
                    let reply = exec_remote(node, cluster, session, to).await;
                    session.answer(node, reply)
                }
                Local::Moved(to) => {
                    let reply = match authenticate(node, session, request) {
                        Err(reply) => reply,
                        Ok(()) => {
                            let commands = vec![request.args.clone()];
                            match on_shard(node, cluster, session, to, commands).await {
                                Ok(mut replies) => replies.pop().unwrap_or(Reply::Nil),
                                Err(e) => e,
                            }
                        }
                    };
                    session.answer(node, reply)
                }
            }
        }
        Plan::Refuse(reply) => session.answer(node, reply),
        Plan::Remote(shard) => {
            let reply = match authenticate(node, session, request) {
                Err(reply) => reply,
                Ok(()) => {
                    let commands = vec![request.args.clone()];
                    match on_shard(node, cluster, session, shard, commands).await {
                        Ok(mut replies) => replies.pop().unwrap_or(Reply::Nil),
                        Err(e) => e,
                    }
                }
            };
            session.answer(node, reply)
        }
        Plan::Split(parts, combine) => {
            let reply = match authenticate(node, session, request) {
                Err(reply) => reply,
                Ok(()) => {
                    let keys = request.args.get(1..).unwrap_or_default();
                    split(node, cluster, session, parts, combine, keys).await
                }
            };
            session.answer(node, reply)
        }
        Plan::Exec(shard) => {
            let reply = exec_remote(node, cluster, session, shard).await;
            session.answer(node, reply)
        }
        Plan::Special(special) => {
            let reply = super::admin::run(node, cluster, session, special).await;
            session.answer(node, reply)
        }
    }
}

/// Runs a batch of requests [`Route::batch_shard`] chose for `shard` on its leader, in one bus call
/// when it is remote; one answer per request (`None` where CLIENT REPLY says not to send).
pub async fn forward_batch(
    node: &Node,
    cluster: &Cluster,
    session: &mut Session,
    shard: usize,
    commands: Vec<Vec<Bytes>>,
) -> Vec<Option<Reply>> {
    let count = commands.len();
    match on_shard(node, cluster, session, shard, commands).await {
        Ok(replies) if replies.len() == count => replies
            .into_iter()
            .map(|r| session.answer(node, r))
            .collect(),
        Ok(_) => (0..count)
            .map(|_| session.answer(node, cluster_down(shard)))
            .collect(),
        Err(e) => (0..count)
            .map(|_| session.answer(node, e.clone()))
            .collect(),
    }
}

/// Where a request goes.
enum Plan {
    /// Run here; `Some(shard)` when it names keys of a shard this node leads.
    Local(Option<usize>),
    /// Answer this error without running anything.
    Refuse(Reply),
    /// Forward to the leader of this shard.
    Remote(usize),
    /// Run each part on its shard, then combine the replies.
    Split(Vec<(usize, Vec<Bytes>)>, Combine),
    /// EXEC of a transaction queued for another node's shard.
    Exec(usize),
    /// A command the cluster answers itself (CLUSTER, FLUSHALL, SAVE...).
    Special(super::admin::Special),
}

/// How split replies become one.
#[derive(Debug, Clone, Copy)]
enum Combine {
    /// MGET: the values in the keys' order (parts hold positions).
    Values,
    /// MSET: OK when every part is OK.
    AllOk,
    /// DEL, EXISTS, UNLINK, TOUCH: the sum.
    Sum,
}

fn request_is_read(request: &Request) -> bool {
    is_read(&request.args)
}

/// Whether a command only reads (unknown commands count as reads: they change nothing).
fn is_read(args: &[Bytes]) -> bool {
    args.first()
        .and_then(|n| lookup(n))
        .is_none_or(|s| !s.write)
}

fn crossslot() -> Reply {
    Reply::Error("CROSSSLOT Keys in request don't hash to the same slot".into())
}

fn plan(cluster: &Cluster, session: &mut Session, request: &Request) -> Plan {
    let Some(name) = request.args.first() else {
        return Plan::Local(None);
    };
    let Some(spec) = lookup(name) else {
        return Plan::Local(None);
    };
    // A RESP2 subscriber's other commands are refused here, as on a single node.
    if crate::cmd::refused_while_subscribed(session, request) {
        return Plan::Local(None);
    }
    if let Some(special) = super::admin::special(spec.name, &request.args) {
        return Plan::Special(special);
    }
    if request.db.is_some_and(|d| d != 0) {
        return Plan::Refuse(Reply::Error(
            "ERR SELECT is not allowed in cluster mode".into(),
        ));
    }
    match spec.name {
        "select" => {
            let zero = request.args.get(1).is_some_and(|a| a.as_ref() == b"0");
            if !zero {
                return Plan::Refuse(Reply::Error(
                    "ERR SELECT is not allowed in cluster mode".into(),
                ));
            }
            return Plan::Local(None);
        }
        "swapdb" | "move" => {
            return Plan::Refuse(Reply::Error(
                format!(
                    "ERR {} is not allowed in cluster mode",
                    spec.name.to_uppercase()
                )
                .into(),
            ))
        }
        _ => {}
    }
    let shards = shards_of(cluster, spec, &request.args);
    if let Some(multi) = &session.multi {
        if spec.queued_in_multi {
            // Redis Cluster: every queued command's keys must share the transaction's slot.
            let mut all = shards.clone();
            for (s, r) in &multi.queued {
                all.extend(shards_of(cluster, s, &r.args));
            }
            all.extend(
                session
                    .watched
                    .iter()
                    .map(|w| cluster.table().shard_of(&w.key)),
            );
            all.sort_unstable();
            all.dedup();
            if all.len() > 1 {
                session.flag_transaction();
                return Plan::Refuse(crossslot());
            }
            return Plan::Local(None);
        }
        if spec.name == "exec" {
            let mut all: Vec<usize> = multi
                .queued
                .iter()
                .flat_map(|(s, r)| shards_of(cluster, s, &r.args))
                .collect();
            all.sort_unstable();
            all.dedup();
            return match all.first() {
                Some(&shard) if !leads(cluster, shard) => Plan::Exec(shard),
                Some(&shard) => Plan::Local(Some(shard)),
                None => Plan::Local(None),
            };
        }
    }
    match shards.as_slice() {
        [] => Plan::Local(None),
        [shard, rest @ ..] if rest.iter().all(|s| s == shard) => {
            if spec.name == "watch" && !leads(cluster, *shard) {
                return Plan::Refuse(Reply::Error(
                    format!(
                        "TRYAGAIN WATCH must be sent to the leader of shard {} ({})",
                        shard + 1,
                        cluster
                            .leader_addr(*shard)
                            .unwrap_or_else(|| "no leader".into())
                    )
                    .into(),
                ));
            }
            if leads(cluster, *shard) {
                Plan::Local(Some(*shard))
            } else {
                Plan::Remote(*shard)
            }
        }
        _ => match split_plan(cluster, spec.name, &request.args) {
            Some(plan) => plan,
            None => Plan::Refuse(crossslot()),
        },
    }
}

/// Whether this node is (or is becoming) the shard's leader, so the request should run here.
fn leads(cluster: &Cluster, shard: usize) -> bool {
    cluster
        .group(shard)
        .is_some_and(|g| matches!(g.role(), Role::Leader | Role::Starting))
}

/// The shards of the keys `args` names, in key order (repeats kept).
fn shards_of(cluster: &Cluster, spec: &crate::cmd::CommandSpec, args: &[Bytes]) -> Vec<usize> {
    let keys = crate::cmd::capture::keys(spec, args, 0);
    if keys.is_empty() {
        return Vec::new();
    }
    let table = cluster.table();
    keys.into_iter().map(|(_, k)| table.shard_of(k)).collect()
}

/// Splits a multi-key command whose keys span shards into one command per shard.
fn split_plan(cluster: &Cluster, name: &str, args: &[Bytes]) -> Option<Plan> {
    let (step, combine) = match name {
        "mget" => (1, Combine::Values),
        "mset" => (2, Combine::AllOk),
        "del" | "exists" | "unlink" | "touch" => (1, Combine::Sum),
        _ => return None,
    };
    let mut parts: Vec<(usize, Vec<Bytes>)> = Vec::new();
    let table = cluster.table();
    for chunk in args.get(1..)?.chunks(step) {
        let shard = table.shard_of(chunk.first()?);
        match parts.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, part)) => part.extend(chunk.iter().cloned()),
            None => {
                let mut part = vec![args[0].clone()];
                part.extend(chunk.iter().cloned());
                parts.push((shard, part));
            }
        }
    }
    Some(Plan::Split(parts, combine))
}

async fn split(
    node: &Node,
    cluster: &Cluster,
    session: &mut Session,
    parts: Vec<(usize, Vec<Bytes>)>,
    combine: Combine,
    keys: &[Bytes],
) -> Reply {
    let mut results = Vec::with_capacity(parts.len());
    for (shard, args) in &parts {
        match on_shard(node, cluster, session, *shard, vec![args.clone()]).await {
            Ok(mut replies) => results.push(replies.pop().unwrap_or(Reply::Nil)),
            Err(e) => return e,
        }
    }
    if let Some(e) = results.iter().find(|r| matches!(r, Reply::Error(_))) {
        return e.clone();
    }
    match combine {
        Combine::Sum => Reply::Int(
            results
                .iter()
                .map(|r| if let Reply::Int(n) = r { *n } else { 0 })
                .sum(),
        ),
        Combine::AllOk => Reply::ok(),
        Combine::Values => {
            // Every part's values back at their keys' positions in the request.
            let mut by_key: std::collections::HashMap<&Bytes, Reply> = Default::default();
            for ((_, args), reply) in parts.iter().zip(results) {
                if let Reply::Array(values) = reply {
                    for (key, value) in args.iter().skip(1).zip(values) {
                        by_key.insert(key, value);
                    }
                }
            }
            Reply::Array(
                keys.iter()
                    .map(|k| by_key.get(k).cloned().unwrap_or(Reply::Nil))
                    .collect(),
            )
        }
    }
}

/// Authenticates with a request's own password (the JSON protocol's field), and refuses
/// anything but AUTH-like commands before authentication, as running it here would.
fn authenticate(node: &Node, session: &mut Session, request: &Request) -> Result<(), Reply> {
    session.authenticate_request(node, request)
}

/// Runs `commands` on the leader of `shard`: here if this node leads it, else on the leader
/// over the bus (following changes of leader, and slots that moved to another shard).
async fn on_shard(
    node: &Node,
    cluster: &Cluster,
    session: &mut Session,
    mut shard: usize,
    mut commands: Vec<Vec<Bytes>>,
) -> Result<Vec<Reply>, Reply> {
    let mut done: Vec<Reply> = Vec::new();
    let mut attempts = 0;
    while attempts < 6 {
        attempts += 1;
        let role = match cluster.group(shard) {
            Some(g) => g.await_leader(LEADER_WAIT).await,
            None => cluster.remote_leader(shard, LEADER_WAIT).await,
        };
        match role {
            Role::Leader | Role::Starting => {
                let Some(group) = cluster.group(shard) else {
                    break;
                };
                let mut moved = None;
                let mut ran = 0;
                for args in &commands {
                    let request = Request {
                        args: args.clone(),
                        db: None,
                        password: None,
                    };
                    let read = request_is_read(&request);
                    match run_local(node, cluster, &group, session, &request, read).await {
                        Local::Ran(Some(r)) => done.push(r),
                        Local::Ran(None) => {}
                        Local::Moved(to) => {
                            moved = Some(to);
                            break;
                        }
                    }
                    ran += 1;
                }
                match moved {
                    None => return Ok(done),
                    Some(to) => {
                        commands.drain(..ran);
                        shard = to;
                    }
                }
            }
            Role::Follower(leader) => {
                let forward = Forward {
                    shard,
                    commands: commands.clone(),
                    protocol: session.protocol,
                    hops: 0,
                };
                match cluster.forward(leader, &forward).await {
                    Ok(Forwarded::Replies(replies)) => {
                        done.extend(replies);
                        return Ok(done);
                    }
                    Ok(Forwarded::Moved { replies, shard: to }) => {
                        commands.drain(..replies.len().min(commands.len()));
                        done.extend(replies);
                        shard = to;
                    }
                    Ok(Forwarded::NotLeader(_)) => {
                        cluster.forget_leader(shard, leader);
                        continue;
                    }
                    Ok(Forwarded::Unknown) => {
                        session.cluster_broken = true;
                        return Err(cluster_down(shard));
                    }
                    Err(e) => {
                        tracing::debug!(shard = shard + 1, leader, "forwarding: {e}");
                        cluster.forget_leader(shard, leader);
                        // A read can go again; a write that may have run has an unknown fate.
                        let sent = matches!(e, super::CallError::Unknown(_));
                        if sent && commands.iter().any(|c| !is_read(c)) {
                            session.cluster_broken = true;
                            return Err(cluster_down(shard));
                        }
                        continue;
                    }
                }
            }
            Role::Unknown => break,
        }
    }
    Err(cluster_down(shard))
}

/// `-CLUSTERDOWN` for a shard without a reachable leader.
pub fn cluster_down(shard: usize) -> Reply {
    Reply::Error(
        format!(
            "CLUSTERDOWN The cluster is down: shard {} has no leader reachable from this node",
            shard + 1
        )
        .into(),
    )
}

/// Runs `request` here, against a shard this node leads: reads confirm leadership first when
/// the lease has lapsed, then the command runs with the shard's speculation pause held for
/// reading, and leaves its mark for the connection to wait on. The keys' slots must be served
/// here by the shard ([`Slots::serves`](crate::replication::slots::Slots::serves)): while a
/// move has them frozen or not yet activated, the command waits; once the table gives them
/// to another shard, nothing runs and the answer says where they went.
pub async fn run_local(
    node: &Node,
    cluster: &Cluster,
    group: &Group,
    session: &mut Session,
    request: &Request,
    read: bool,
) -> Local {
    // Elected but still applying what earlier terms committed: nothing may run before that.
    if group.await_ready(LEADER_WAIT).await != Role::Leader {
        return Local::Ran(session.answer(node, cluster_down(group.shard)));
    }
    if read {
        if let Err(e) = group.confirm_leadership(LEADER_WAIT).await {
            tracing::debug!(shard = group.shard + 1, "read refused: {e}");
            return Local::Ran(session.answer(node, cluster_down(group.shard)));
        }
    }
    // One MD5 per key, here, for the whole wait.
    let slots = request_slots(session, request);
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    loop {
        let reply = {
            let _pause = group.speculation.pause.read().await;
            if group.role() != Role::Leader {
                drop(_pause);
                return Local::Ran(session.answer(node, cluster_down(group.shard)));
            }
            // Held while the command runs: no slot's keys move or go meanwhile.
            let _switch = cluster.slots.switch.read().expect("slots switch poisoned");
            let served = slots.iter().all(|s| cluster.slots.serves(group.shard, *s));
            served.then(|| session.execute(node, request))
        };
        if let Some(reply) = reply {
            let (origin, seq) = group.mark();
            session.cluster_marks.push((group.shard, origin, seq));
            return Local::Ran(reply);
        }
        let table = cluster.table();
        // A shard importing the slot waits whatever this node's table says (it may not have
        // seen the move committed yet): sending the request back to the source would bounce.
        let importing = {
            let held = cluster.slots.held(group.shard);
            slots.iter().any(|s| held.importing.contains(*s))
        };
        if let Some(other) = slots
            .iter()
            .map(|s| table.owner(*s))
            .find(|s| *s != group.shard)
            .filter(|_| !importing)
        {
            return Local::Moved(other);
        }
        if tokio::time::Instant::now() >= deadline {
            let why = slots
                .iter()
                .find(|slot| !cluster.slots.serves(group.shard, **slot))
                .map(|&slot| {
                    let s = cluster.slots.serving(slot);
                    format!(
                        "slot {slot} of shard {}: held here by {}{}{}",
                        group.shard + 1,
                        s.group
                            .map_or("no shard".into(), |g| format!("shard {}", g + 1)),
                        if s.importing { ", importing" } else { "" },
                        if s.frozen { ", frozen" } else { "" },
                    )
                })
                .unwrap_or_default();
            let text = format!("TRYAGAIN the keys' slots are being moved ({why}); try again later");
            return Local::Ran(session.answer(node, Reply::Error(text.into())));
        }
        // A move is finishing (frozen, or not yet activated here): wait for it.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The slots of the keys a request touches here: its own, or, for EXEC, those of the queued
/// commands.
fn request_slots(session: &Session, request: &Request) -> Vec<u16> {
    use crate::client::router::slot_of;
    let Some(spec) = request.args.first().and_then(|name| lookup(name)) else {
        return Vec::new();
    };
    match &session.multi {
        Some(multi) if spec.name == "exec" => multi
            .queued
            .iter()
            .flat_map(|(s, r)| crate::cmd::capture::keys(s, &r.args, 0))
            .map(|(_, k)| slot_of(k))
            .collect(),
        _ => crate::cmd::capture::keys(spec, &request.args, 0)
            .into_iter()
            .map(|(_, k)| slot_of(k))
            .collect(),
    }
}

/// EXEC for a transaction whose keys are on another node's shard: the queued commands go to
/// that shard's leader inside MULTI ... EXEC, and its EXEC reply comes back.
async fn exec_remote(node: &Node, cluster: &Cluster, session: &mut Session, shard: usize) -> Reply {
    let Some(multi) = session.multi.take() else {
        return Reply::Error("ERR EXEC without MULTI".into());
    };
    session.client.update_meta(|m| m.flags = "N");
    if multi.failed {
        return Reply::Error("EXECABORT Transaction discarded because of previous errors.".into());
    }
    let mut commands = vec![vec![Bytes::from_static(b"MULTI")]];
    commands.extend(multi.queued.into_iter().map(|(_, r)| r.args));
    commands.push(vec![Bytes::from_static(b"EXEC")]);
    match on_shard(node, cluster, session, shard, commands).await {
        Ok(mut replies) => replies.pop().unwrap_or(Reply::NilArray),
        Err(e) => e,
    }
}
