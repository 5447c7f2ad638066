//! What concerns the replicated cluster as a whole: CLUSTER INFO, SHARDS and MYID in Redis's
//! formats, INFO's replication lines, FLUSHALL/FLUSHDB (every shard, each on its leader),
//! SAVE/BGSAVE (a Raft snapshot of every local shard), and the answers to peers' bus calls.

use std::sync::Arc;

use bytes::Bytes;

use super::group::Role;
use super::route::{self, Forward, Forwarded};
use super::{Answer, Call, Cluster};
use crate::cmd::Session;
use crate::effect::Effect;
use crate::node::{ClientHandle, Node};
use crate::protocol::{Reply, Request};
use crate::report::ShardStatus;

/// Commands the cluster runs itself instead of one node's handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Special {
    /// FLUSHALL or FLUSHDB: every shard.
    Flush,
    /// SAVE: a snapshot of every local shard, waited for.
    Save,
    /// BGSAVE: the same, not waited for.
    BgSave,
    /// CLUSTER MOVESLOTS FROM TO RANGE...: a slot move, on the source's leader.
    MoveSlots(Vec<Bytes>),
    /// CLUSTER REMOVENODE ID: a node out of the cluster.
    RemoveNode(Vec<Bytes>),
    /// CLUSTER JOIN ID CLIENT BUS: a node into the cluster.
    Join(Vec<Bytes>),
}

/// The special form of a command, if it has one (arguments as Redis accepts them; anything
/// else runs normally and fails there).
pub fn special(name: &str, args: &[Bytes]) -> Option<Special> {
    let plain = |max: usize| args.len() <= max;
    match name {
        "flushall" | "flushdb" if plain(2) => Some(Special::Flush),
        "save" if plain(1) => Some(Special::Save),
        "bgsave" if plain(1) => Some(Special::BgSave),
        "cluster" => match args.get(1).map(|a| a.to_ascii_lowercase()).as_deref() {
            Some(b"moveslots") => Some(Special::MoveSlots(args.to_vec())),
            Some(b"removenode") => Some(Special::RemoveNode(args.to_vec())),
            Some(b"join") => Some(Special::Join(args.to_vec())),
            _ => None,
        },
        _ => None,
    }
}

/// Runs a special command for a client.
pub async fn run(node: &Node, cluster: &Cluster, session: &mut Session, special: Special) -> Reply {
    if session.auth_required(node) {
        return Reply::Error("NOAUTH Authentication required.".into());
    }
    match special {
        Special::Flush => {
            // A move's copy could bring flushed keys back: no flush while one is under way
            // (and a move that sees a flush of its source calls itself off).
            if !cluster.table().moves.is_empty() {
                return Reply::Error(
                    "TRYAGAIN slots are being moved; FLUSHALL/FLUSHDB after the move".into(),
                );
            }
            for shard in cluster.table().shards.keys() {
                if let Err(e) = flush(node, cluster, *shard).await {
                    return e;
                }
            }
            Reply::ok()
        }
        Special::MoveSlots(args) | Special::RemoveNode(args) | Special::Join(args) => {
            // The node's own handle, for calls that outlive this request's borrow.
            let Some(cluster) = node.cluster() else {
                return Reply::Error("ERR This instance has cluster support disabled".into());
            };
            match args.get(1).map(|a| a.to_ascii_lowercase()).as_deref() {
                Some(b"moveslots") => super::operate::move_slots(cluster, &args).await,
                Some(b"removenode") => super::operate::remove_node(cluster, &args).await,
                _ => super::operate::join(cluster, &args).await,
            }
        }
        Special::Save | Special::BgSave => {
            for group in cluster.groups() {
                if let Err(e) = group.raft().trigger().snapshot().await {
                    return Reply::Error(
                        format!("ERR snapshot of shard {}: {e}", group.shard + 1).into(),
                    );
                }
            }
            if special == Special::Save {
                Reply::ok()
            } else {
                Reply::Simple("Background saving started".into())
            }
        }
    }
}

/// Flushes `shard` on its leader: here, or asked over the bus.
async fn flush(node: &Node, cluster: &Cluster, shard: usize) -> Result<u64, Reply> {
    for _ in 0..3 {
        let role = match cluster.group(shard) {
            Some(g) => g.await_leader(std::time::Duration::from_secs(3)).await,
            None => {
                cluster
                    .remote_leader(shard, std::time::Duration::from_secs(3))
                    .await
            }
        };
        match role {
            Role::Leader | Role::Starting => {
                if let Some(n) = flush_here(node, cluster, shard).await {
                    return Ok(n);
                }
            }
            Role::Follower(leader) => match cluster.call(leader, &Call::Flush(shard)).await {
                Ok(Answer::Flushed(Ok(n))) => return Ok(n),
                _ => cluster.forget_leader(shard, leader),
            },
            Role::Unknown => break,
        }
    }
    Err(route::cluster_down(shard))
}

/// Removes every key of `shard` from this node's store, as its leader, and waits until the
/// group has committed it. `None` when this node does not lead the shard (any more).
async fn flush_here(node: &Node, cluster: &Cluster, shard: usize) -> Option<u64> {
    let group = cluster.group(shard)?;
    let (origin, seq, removed) = {
        let _pause = group.speculation.pause.read().await;
        if group.role() != Role::Leader {
            return None;
        }
        let slots = &cluster.slots;
        // The switch before the gate, as everywhere.
        let _switch = slots.switch.write().expect("slots switch poisoned");
        let _gate = node.store.gate().exclusive();
        let now = tokio::time::Instant::now();
        let before: usize = node.store.dbs().iter().map(|db| db.counts(now).0).sum();
        {
            // The group's keys only, staged ones included, as its followers will.
            let mut guard = slots.lock();
            let held = guard.group_slots(shard);
            guard.replace(shard, held, |_, _| {});
        }
        let after: usize = node.store.dbs().iter().map(|db| db.counts(now).0).sum();
        let removed = before.saturating_sub(after);
        node.store.mark_dirty(removed as u64);
        let (origin, seq) = group.submit(&[Effect::FlushAll]);
        (origin, seq, removed)
    };
    group
        .confirmed(origin, seq, route::COMMIT_WAIT)
        .await
        .then_some(removed as u64)
}

/// Answers a peer's call.
pub async fn answer(node: &Arc<Node>, call: Call) -> Answer {
    let Some(cluster) = node.cluster() else {
        return Answer::Refused("this node is not in a cluster".into());
    };
    match call {
        Call::Leaders => {
            let mut shards: Vec<usize> = cluster.table().shards.keys().copied().collect();
            shards.extend(cluster.groups().iter().map(|g| g.shard));
            shards.push(super::META);
            shards.sort_unstable();
            shards.dedup();
            Answer::Leaders(
                shards
                    .into_iter()
                    .map(|s| (s, cluster.leader_of(s)))
                    .collect(),
            )
        }
        Call::Table => cluster.table_here(),
        Call::ChangeTable(change) => cluster.change_table_here(change).await,
        Call::Control(shard, control) => {
            super::migrate::control_here(cluster, shard, control).await
        }
        Call::Import(shard, id, packed) => {
            super::migrate::import(cluster, shard, id, &packed).await
        }
        Call::Importing(shard, slots) => super::migrate::importing(cluster, shard, &slots),
        Call::Move(m) => super::migrate::drive(cluster, m).await,
        Call::Reconfigure(shard) => match super::membership::reconfigure(cluster, shard).await {
            Ok(()) => Answer::Done,
            Err(e) => Answer::Failed(e),
        },
        Call::Flush(shard) => match flush_here(node, cluster, shard).await {
            Some(n) => Answer::Flushed(Ok(n)),
            None => Answer::Flushed(Err(cluster.leader_of(shard))),
        },
        Call::Forward(forward) => Answer::Forwarded(forwarded(node, cluster, forward).await),
        Call::Publish(messages) => super::publish::deliver(node, messages),
    }
}

/// Runs forwarded commands as the shard's leader and waits for their writes to commit.
async fn forwarded(node: &Arc<Node>, cluster: &Cluster, forward: Forward) -> Forwarded {
    let Some(group) = cluster.group(forward.shard) else {
        return Forwarded::NotLeader(cluster.leader_of(forward.shard));
    };
    match group.await_leader(std::time::Duration::from_secs(1)).await {
        Role::Leader | Role::Starting => {}
        Role::Follower(l) => return Forwarded::NotLeader(l),
        Role::Unknown => return Forwarded::NotLeader(0),
    }
    let client = Arc::new(ClientHandle::new(
        node.next_client_id(),
        "cluster-bus".to_string(),
        cluster.bus_addr.to_string(),
        node.shutdown.child_token(),
    ));
    let mut session = Session::new(client);
    session.authenticated = true;
    session.protocol = forward.protocol;
    // A blocking command forwarded here answers at once; its origin node waits and asks again.
    session.may_block = false;
    let mut replies = Vec::with_capacity(forward.commands.len());
    for args in forward.commands {
        let read = args
            .first()
            .and_then(|n| crate::cmd::lookup(n))
            .is_some_and(|s| !s.write);
        let request = Request {
            args,
            db: None,
            password: None,
        };
        match route::run_local(node, cluster, &group, &mut session, &request, read).await {
            route::Local::Ran(reply) => replies.push(reply.unwrap_or(Reply::Nil)),
            route::Local::Moved(shard) => {
                if !settle(node, &mut session).await {
                    return Forwarded::Unknown;
                }
                return Forwarded::Moved { replies, shard };
            }
        }
    }
    if !settle(node, &mut session).await {
        return Forwarded::Unknown;
    }
    Forwarded::Replies(replies)
}

/// Waits until every write this session ran here is committed; false when one may have been
/// lost (this node stopped leading its shard first) or the wait timed out.
pub async fn settle(node: &Node, session: &mut Session) -> bool {
    if std::mem::take(&mut session.cluster_broken) {
        session.cluster_marks.clear();
        return false;
    }
    let Some(cluster) = node.cluster() else {
        session.cluster_marks.clear();
        return true;
    };
    let mut ok = true;
    for (shard, origin, seq) in session.cluster_marks.drain(..) {
        let Some(group) = cluster.group(shard) else {
            continue;
        };
        if seq > 0 && !group.confirmed(origin, seq, route::COMMIT_WAIT).await {
            ok = false;
        }
    }
    ok
}

/// CLUSTER subcommands: INFO, SHARDS, MYID, HELP. Without `--cluster`, Redis's error.
pub fn cluster_command(node: &Node, args: &[Bytes]) -> Reply {
    let Some(cluster) = node.cluster() else {
        return Reply::Error("ERR This instance has cluster support disabled".into());
    };
    let sub = args
        .get(1)
        .map(|a| a.to_ascii_lowercase())
        .unwrap_or_default();
    match sub.as_slice() {
        b"info" => Reply::Verbatim(Bytes::from(info(cluster))),
        b"myid" => Reply::Bulk(Bytes::from(cluster.spec.node_name(cluster.spec.me))),
        b"myshardid" => Reply::Int(cluster.me as i64),
        b"shards" => shards(cluster),
        b"slots" => slots(cluster),
        b"help" => Reply::status_lines(&[
            "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "INFO",
            "    Return information about the cluster.",
            "MYID",
            "    Return the node id.",
            "SHARDS",
            "    Return information about slot range mappings and the nodes of each shard.",
            "SLOTS",
            "    Return information about slot range mappings (each range with its nodes).",
            "MOVESLOTS <from-shard> <to-shard> <start>-<end> [<start>-<end> ...]",
            "    Move slots between shards online; replies with what moved.",
            "REMOVENODE <node-id>",
            "    Remove a node whose shard owns no slot from every group.",
            "HELP",
            "    Print this help.",
        ]),
        _ => Reply::Error(
            format!(
                "ERR unknown subcommand '{}'. Try CLUSTER HELP.",
                String::from_utf8_lossy(args.get(1).map_or(&b""[..], |a| a))
            )
            .into(),
        ),
    }
}

/// CLUSTER INFO's text.
fn info(cluster: &Cluster) -> String {
    let table = cluster.table();
    let shards = table.shards.len();
    let led = table
        .shards
        .keys()
        .filter(|s| cluster.leader_of(**s) != 0)
        .count();
    let epoch = table.epoch;
    let my_epoch = cluster.groups().iter().map(|g| g.term()).max().unwrap_or(0);
    let state = if led == shards { "ok" } else { "fail" };
    let assigned = table.slots.len();
    let lines = [
        format!("cluster_state:{state}"),
        format!("cluster_slots_assigned:{assigned}"),
        format!("cluster_slots_ok:{assigned}"),
        format!("cluster_shards_with_leader:{led}"),
        format!("cluster_known_nodes:{}", table.nodes.len()),
        format!("cluster_size:{shards}"),
        format!("cluster_replicas_per_shard:{}", table.replicas),
        format!("cluster_current_epoch:{epoch}"),
        format!("cluster_my_epoch:{my_epoch}"),
        format!("cluster_migrations_in_progress:{}", table.moves.len()),
        format!(
            "cluster_stats_messages_forwarded:{}",
            cluster.forwarded.load(std::sync::atomic::Ordering::Relaxed)
        ),
    ];
    let mut out = lines.join("\r\n");
    out.push_str("\r\n");
    out
}

/// Whether member `member` of `shard` looks healthy from here: `failed` when the shard has
/// no leader or this node's last exchange with the member (over any shard's traffic) failed;
/// else `online` for the leader, for a member the leader (this node) hears from, and, seen
/// from a follower, for one this node has no news of; `loading` for a member far behind.
fn health(cluster: &Cluster, shard: usize, member: u64) -> &'static str {
    let leader = cluster.leader_of(shard);
    if leader == 0 || cluster.reachable(member) == Some(false) {
        return "failed";
    }
    if member == leader {
        return "online";
    }
    match cluster.group(shard) {
        Some(g) if g.role() == Role::Leader => {
            let acked = g
                .replication()
                .into_iter()
                .find(|(id, _)| *id == member)
                .and_then(|(_, acked)| acked);
            let (_, last) = g.progress();
            match acked {
                Some(a) if a + 10_000 >= last => "online",
                Some(_) => "loading",
                None => "failed",
            }
        }
        _ => "online",
    }
}

/// One node as CLUSTER SHARDS and SLOTS show it: `(ip, port, id)`.
fn node_fields(cluster: &Cluster, member: u64) -> (String, i64, String) {
    let table = cluster.table();
    let (ip, port) = table
        .peer(member)
        .and_then(|p| p.client.rsplit_once(':'))
        .map(|(h, p)| (h.to_string(), p.parse::<i64>().unwrap_or(0)))
        .unwrap_or_default();
    let client = table.peer(member).map_or("", |p| p.client.as_str());
    (ip, port, super::spec::node_name(member, client))
}

/// CLUSTER SHARDS in Redis 7's shape: per shard its `slots` (flat list of inclusive
/// ranges), `shard-index` (1-based), and its `nodes`, each with id, port, ip, endpoint, role
/// (master/replica), replication offset and health.
fn shards(cluster: &Cluster) -> Reply {
    let table = cluster.table();
    let list = table
        .shards
        .iter()
        .map(|(&shard, members)| {
            let leader = cluster.leader_of(shard);
            let nodes = members
                .iter()
                .map(|&member| {
                    let (ip, port, id) = node_fields(cluster, member);
                    let offset = cluster.group(shard).map_or(0, |g| g.progress().0 as i64);
                    let role = if member == leader {
                        "master"
                    } else {
                        "replica"
                    };
                    Reply::Map(vec![
                        (Reply::text("id"), Reply::Bulk(Bytes::from(id))),
                        (Reply::text("port"), Reply::Int(port)),
                        (Reply::text("ip"), Reply::bulk(&ip)),
                        (Reply::text("endpoint"), Reply::bulk(&ip)),
                        (Reply::text("role"), Reply::text(role)),
                        (Reply::text("replication-offset"), Reply::Int(offset)),
                        (
                            Reply::text("health"),
                            Reply::text(health(cluster, shard, member)),
                        ),
                    ])
                })
                .collect();
            let ranges = table
                .owned(shard)
                .ranges()
                .into_iter()
                .flat_map(|(a, b)| [Reply::Int(i64::from(a)), Reply::Int(i64::from(b))])
                .collect();
            Reply::Map(vec![
                (Reply::text("slots"), Reply::Array(ranges)),
                (Reply::text("shard-index"), Reply::Int(shard as i64 + 1)),
                (Reply::text("nodes"), Reply::Array(nodes)),
            ])
        })
        .collect();
    Reply::Array(list)
}

/// CLUSTER SLOTS in Redis's shape: per contiguous range of one shard's slots, the range and
/// its nodes (`[ip, port, id]`), the leader first.
fn slots(cluster: &Cluster) -> Reply {
    let table = cluster.table();
    let mut out = Vec::new();
    for (&shard, members) in &table.shards {
        let leader = cluster.leader_of(shard);
        let mut ordered: Vec<u64> = members.iter().copied().filter(|m| *m == leader).collect();
        ordered.extend(members.iter().copied().filter(|m| *m != leader));
        let nodes: Vec<Reply> = ordered
            .iter()
            .map(|&m| {
                let (ip, port, id) = node_fields(cluster, m);
                Reply::Array(vec![
                    Reply::bulk(&ip),
                    Reply::Int(port),
                    Reply::Bulk(Bytes::from(id)),
                ])
            })
            .collect();
        for (a, b) in table.owned(shard).ranges() {
            let mut entry = vec![Reply::Int(i64::from(a)), Reply::Int(i64::from(b))];
            entry.extend(nodes.iter().cloned());
            out.push(Reply::Array(entry));
        }
    }
    Reply::Array(out)
}

/// Every shard this node replicates: its role, leader, term and log positions (INFO and
/// `/metrics` read them through [`crate::report::Report`]).
pub fn shard_status(cluster: &Cluster) -> Vec<ShardStatus> {
    cluster
        .groups()
        .iter()
        .map(|g| {
            let (applied, last_log) = g.progress();
            let role = g.role();
            ShardStatus {
                shard: g.shard,
                role: match role {
                    Role::Leader => "leader",
                    Role::Starting => "starting",
                    Role::Follower(_) => "follower",
                    Role::Unknown => "candidate",
                },
                leader: cluster.leader_of(g.shard),
                term: g.term(),
                applied,
                last_log,
                acked: if role == Role::Leader {
                    g.replication()
                } else {
                    Vec::new()
                },
                rebuilds: g.rebuilds.load(std::sync::atomic::Ordering::Relaxed),
            }
        })
        .collect()
}

/// INFO's replication lines: `role` (master when this node leads any shard, as Redis tools
/// read it), then one line per local shard.
pub fn replication_lines(cluster: &Cluster) -> Vec<(String, String)> {
    let shards = shard_status(cluster);
    let leads = shards.iter().any(|s| s.role == "leader");
    let mut lines = vec![
        (
            "role".to_string(),
            if leads { "master" } else { "slave" }.to_string(),
        ),
        ("cluster_enabled".to_string(), "1".to_string()),
        (
            "cluster_shards".to_string(),
            cluster.table().shards.len().to_string(),
        ),
        (
            "cluster_migrations_in_progress".to_string(),
            cluster.table().moves.len().to_string(),
        ),
    ];
    for s in shards {
        let members: Vec<String> = s
            .acked
            .iter()
            .map(|(id, acked)| format!("{id}:{}", acked.map_or("-".into(), |a| a.to_string())))
            .collect();
        lines.push((
            format!("shard{}", s.shard + 1),
            format!(
                "role={},leader={},term={},applied={},last_log={},acked={},rebuilds={}",
                s.role,
                s.leader,
                s.term,
                s.applied,
                s.last_log,
                members.join("|"),
                s.rebuilds,
            ),
        ));
    }
    lines
}
