//! Who is in which group, kept in line with the table (issue 11): this node starts its member
//! of every shard the table makes it a member of, stops (and forgets) the members the table
//! no longer wants once their group has let them go, and, where it leads a group, changes the
//! group's Raft membership to the table's (new members join as learners first, so they catch
//! up before they count in a majority). The meta group's voters are the table's first
//! [`META_VOTERS`] nodes; the others follow it as learners.
//!
//! Runs as one task per node ([`run`]), every 200 ms, and on demand for a shard
//! ([`reconfigure`], what `CLUSTER REMOVENODE` waits for).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers};
use tokio_util::sync::CancellationToken;

use super::group::{self, Group, Role};
use super::table::{Table, META_VOTERS};
use super::{Answer, Call, Cluster};
use crate::replication::{BusNetwork, Scope};

/// How often the node compares its members with the table.
const PERIOD: Duration = Duration::from_millis(200);

/// Starts this node's member of every shard the table names it in, and of every shard it has
/// a directory for (it was a member before a restart; the table may be older than that).
///
/// # Errors
/// The group that could not start.
pub async fn start_members(cluster: &Arc<Cluster>) -> Result<(), String> {
    let table = cluster.table();
    let mut shards: BTreeSet<usize> = table
        .shards
        .iter()
        .filter(|(_, m)| m.contains(&cluster.me))
        .map(|(s, _)| *s)
        .collect();
    if let Ok(entries) = std::fs::read_dir(&cluster.kit.dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_prefix("shard-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                if let Some(shard) = n.checked_sub(1) {
                    shards.insert(shard);
                }
            }
        }
    }
    for shard in shards {
        start_member(cluster, shard).await?;
    }
    Ok(())
}

/// Starts this node's member of `shard` and bootstraps the group when it is new: on its home
/// node, when no other member knows a leader. A member that finds no Raft state while its
/// peers have a leader (a wiped disk, or a node added to the group) waits, without voting,
/// until it has caught up.
async fn start_member(cluster: &Arc<Cluster>, shard: usize) -> Result<(), String> {
    if cluster.group(shard).is_some() {
        return Ok(());
    }
    let kit = &cluster.kit;
    let table = cluster.table();
    let network = BusNetwork::new(shard as u64, kit.password.clone(), kit.tls.clone())
        .contacts(cluster.contacts.clone());
    let group = Group::start(
        group::Setup {
            shard,
            me: cluster.me,
            node_timeout: cluster.spec.node_timeout,
            scope: Scope::group(shard, table.genesis, cluster.slots.clone()),
            store: kit.store.clone(),
            dir: kit.dir.join(format!("shard-{}", shard + 1)),
            logs: kit.logs.clone(),
        },
        network,
        kit.groups.clone(),
    )
    .await?;
    cluster.add_group(group.clone());
    if !group.pristine().await {
        return Ok(());
    }
    let members = table.members(shard).to_vec();
    let mut known = false;
    for member in members.iter().filter(|m| **m != cluster.me) {
        if let Ok(Answer::Leaders(leaders)) = cluster.call(*member, &Call::Leaders).await {
            known |= leaders.iter().any(|(s, l)| *s == shard && *l != 0);
        }
    }
    if known {
        tracing::info!(
            shard = shard + 1,
            "joining the shard's group as it is: not voting until caught up"
        );
        group.abstain_until_caught_up();
    } else if members.first() == Some(&cluster.me) {
        group.bootstrap(nodes(&table, &members)).await;
    }
    Ok(())
}

/// Keeps the node's members in line with the table until the node stops.
pub async fn run(cluster: Weak<Cluster>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(PERIOD) => {}
        }
        let Some(c) = cluster.upgrade() else {
            return;
        };
        if let Err(e) = round(&c).await {
            tracing::warn!("keeping the groups in line with the cluster table: {e}");
        }
    }
}

async fn round(cluster: &Arc<Cluster>) -> Result<(), String> {
    let table = cluster.table();
    for (shard, members) in &table.shards {
        if members.contains(&cluster.me) && cluster.group(*shard).is_none() {
            start_member(cluster, *shard).await?;
        }
    }
    for group in cluster.groups() {
        if !table.shards.contains_key(&group.shard) {
            // A shard taken out of the table owned no slot when it was (REMOVENODE checks):
            // whatever its member still holds here was committed to other shards, so it
            // goes now, even before the group's own Release reaches this member (its leader
            // may be gone for good). Asked again first: the table here may be behind.
            let fresh = cluster.refresh_table().await;
            if fresh.is_some_and(|t| !t.shards.contains_key(&group.shard)) {
                stop_member(cluster, &group).await;
            }
            continue;
        }
        let wanted = table.members(group.shard).contains(&cluster.me);
        if !wanted && !in_membership(&group, cluster.me) {
            stop_member(cluster, &group).await;
            continue;
        }
        if group.role() == Role::Leader {
            if let Err(e) = reconfigure(cluster, group.shard).await {
                tracing::debug!(shard = group.shard + 1, "changing members: {e}");
            }
            super::migrate::reconcile(cluster, &group, &table).await;
        }
    }
    if cluster.meta.role() == Role::Leader {
        reconfigure_meta(cluster, &table).await?;
    }
    Ok(())
}

/// Stops this node's member of a group the table no longer puts it in, forgets its slots here
/// and removes its directory.
async fn stop_member(cluster: &Arc<Cluster>, group: &Arc<Group>) {
    tracing::info!(
        shard = group.shard + 1,
        "no longer a member of the shard: stopping and removing its data here"
    );
    cluster.remove_group(group.shard);
    group.stop().await;
    cluster.kit.groups.remove(group.shard as u64);
    {
        let slots = &cluster.slots;
        let _switch = slots.switch.write().expect("slots switch poisoned");
        slots.lock().remove_group(group.shard);
    }
    let dir = cluster.kit.dir.join(format!("shard-{}", group.shard + 1));
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!("removing {}: {e}", dir.display());
    }
}

/// Whether `member` is a voter or learner of the group as its member here last saw it.
fn in_membership(group: &Group, member: u64) -> bool {
    let metrics = group.raft().metrics().borrow().clone();
    let membership = metrics.membership_config.membership().clone();
    let found = membership.nodes().any(|(id, _)| *id == member);
    found
}

/// On the leader of `shard`: makes the group's voters the table's members (adding new ones
/// as learners first and waiting for them to catch up). Done when they match already.
///
/// # Errors
/// openraft's reason, or `None` leader.
pub async fn reconfigure(cluster: &Arc<Cluster>, shard: usize) -> Result<(), String> {
    let group = cluster
        .group(shard)
        .filter(|g| g.role() == Role::Leader)
        .ok_or_else(|| format!("TRYAGAIN not the leader of shard {}", shard + 1))?;
    let table = cluster.table();
    let wanted: BTreeSet<u64> = table.members(shard).iter().copied().collect();
    if wanted.is_empty() {
        return Ok(());
    }
    change_voters(&group, &table, &wanted).await
}

async fn change_voters(group: &Group, table: &Table, wanted: &BTreeSet<u64>) -> Result<(), String> {
    let raft = group.raft();
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership().clone();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    if &voters == wanted {
        return Ok(());
    }
    let present: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
    for id in wanted.iter().filter(|id| !present.contains(id)) {
        let Some(peer) = table.peer(*id) else {
            continue;
        };
        raft.add_learner(*id, BasicNode::new(peer.bus.clone()), true)
            .await
            .map_err(|e| format!("adding node {id} to group {}: {e}", group.shard + 1))?;
    }
    raft.change_membership(ChangeMembers::ReplaceAllVoters(wanted.clone()), false)
        .await
        .map_err(|e| format!("changing the voters of group {}: {e}", group.shard + 1))?;
    tracing::info!(shard = group.shard + 1, voters = ?wanted, "group members changed");
    Ok(())
}

/// On the meta group's leader: voters are the table's first [`META_VOTERS`] nodes, every
/// other node a learner, removed nodes gone.
async fn reconfigure_meta(cluster: &Arc<Cluster>, table: &Table) -> Result<(), String> {
    let raft = cluster.meta.raft();
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership().clone();
    let present: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
    for (id, peer) in &table.nodes {
        if !present.contains(id) {
            // Not blocking: a learner that is down must not hold the round up.
            raft.add_learner(*id, BasicNode::new(peer.bus.clone()), false)
                .await
                .map_err(|e| format!("adding node {id} to the meta group: {e}"))?;
        }
    }
    let voters: BTreeSet<u64> = table.nodes.keys().take(META_VOTERS).copied().collect();
    let current: BTreeSet<u64> = membership.voter_ids().collect();
    if current != voters {
        raft.change_membership(ChangeMembers::ReplaceAllVoters(voters), false)
            .await
            .map_err(|e| format!("changing the meta group's voters: {e}"))?;
    }
    let gone: BTreeSet<u64> = present
        .into_iter()
        .filter(|id| !table.nodes.contains_key(id))
        .collect();
    if !gone.is_empty() {
        raft.change_membership(ChangeMembers::RemoveNodes(gone), false)
            .await
            .map_err(|e| format!("removing nodes from the meta group: {e}"))?;
    }
    Ok(())
}

/// `members` with their bus addresses, for openraft.
fn nodes(table: &Table, members: &[u64]) -> BTreeMap<u64, BasicNode> {
    members
        .iter()
        .filter_map(|m| table.peer(*m).map(|p| (*m, BasicNode::new(p.bus.clone()))))
        .collect()
}

/// Waits (up to `limit`) until no group's Raft membership includes `member` any more, asking
/// each shard's leader to reconfigure. What `CLUSTER REMOVENODE` returns after.
///
/// # Errors
/// A `TRYAGAIN` text naming a group that still has it.
pub async fn wait_removed(
    cluster: &Arc<Cluster>,
    member: u64,
    limit: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    let table = cluster.table();
    for shard in table.shards.keys() {
        loop {
            match cluster
                .call_leader(*shard, &Call::Reconfigure(*shard), limit)
                .await
            {
                Ok(Answer::Done) => break,
                Ok(Answer::Failed(e)) | Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(format!("TRYAGAIN shard {}: {e}", shard + 1))
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(format!("TRYAGAIN shard {} did not reconfigure", shard + 1))
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    // The meta group lets it go on its leader's next round.
    let deadline_meta = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline_meta {
        let voters = cluster
            .meta
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone();
        if !voters.nodes().any(|(id, _)| *id == member) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("TRYAGAIN node {member} is still in the meta group"))
}
