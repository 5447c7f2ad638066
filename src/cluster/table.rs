//! The cluster's table (issue 11): which nodes exist, which nodes replicate each shard, which
//! shard owns each slot, and the slot moves under way, versioned by an epoch.
//!
//! Every node holds the table in the *meta group*, a Raft group of its own whose state machine
//! is a private store with one key, [`TABLE_KEY`], holding the table's postcard encoding. A
//! change is a compare-and-set on the meta group's leader: read the applied table, check,
//! write the next one with `epoch + 1` (see `Cluster::change_table`). Before the meta group
//! has written anything, the table is [`Table::genesis`] of the `--cluster` list, which every
//! node of a new cluster computes alike: slot `s` on shard `s mod N`, so a new cluster routes
//! exactly as the spec's `md5(key) mod N`.
//!
//! Shards are 0-based here ("shard i+1" on the wire); shard `i` is the home of node id `i+1`,
//! which bootstraps it. Member ids are node ids.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spec::{ClusterSpec, Peer};
use crate::client::router::{slot_of, SLOTS};
use crate::replication::slots::SlotSet;

/// The meta store's key holding the table.
pub const TABLE_KEY: &[u8] = b"minikv:table";

/// The cluster's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Bumped by every change.
    pub epoch: u64,
    /// Shards of the cluster as it started (their genesis shares of the slots).
    pub genesis: usize,
    /// Members per shard (the `--replicas` the cluster started with).
    pub replicas: usize,
    /// Every node by member id.
    pub nodes: BTreeMap<u64, Peer>,
    /// Every shard: its members, its home node first.
    pub shards: BTreeMap<usize, Vec<u64>>,
    /// Per slot, its shard.
    pub slots: Vec<u16>,
    /// Slot moves decided on but not finished, by id.
    pub moves: BTreeMap<u64, Move>,
    /// Node ids that were removed: never used again.
    pub retired: Vec<u64>,
}

/// A change to the table, applied on the meta group's leader against the table it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Change {
    /// Record a move before copying starts.
    BeginMove(u64, Move),
    /// The move's slots now belong to its target (the moment a move takes effect).
    CommitMove(u64),
    /// Call the move off: the slots stay where they are.
    CancelMove(u64),
    /// Add node `id` with a new, empty shard of its own.
    Join(u64, Peer),
    /// Remove node `id` (its shard must own no slot).
    Remove(u64),
}

/// The largest node id (so shard ids stay far below the meta group's bus id and fit the
/// slot table's entries).
pub const MAX_NODE_ID: u64 = 1024;

/// Most voters of the meta group; other nodes follow it as learners.
pub const META_VOTERS: usize = 5;

impl Change {
    /// The table after the change (`None`: it is in already, nothing to write).
    ///
    /// # Errors
    /// Why the change cannot be made, as an `ERR ...` text.
    pub fn apply(&self, table: &Table) -> Result<Option<Table>, String> {
        let mut next = table.clone();
        match self {
            Change::BeginMove(id, m) => {
                if table.moves.get(id) == Some(m) {
                    return Ok(None);
                }
                if !table.shards.contains_key(&m.from) || !table.shards.contains_key(&m.to) {
                    return Err(format!("ERR no shard {} or {}", m.from + 1, m.to + 1));
                }
                if m.from == m.to || m.slots.is_empty() {
                    return Err("ERR a move needs slots and two different shards".into());
                }
                for s in &m.slots {
                    if *s >= SLOTS {
                        return Err(format!("ERR slot {s} is out of range"));
                    }
                    if table.owner(*s) != m.from {
                        return Err(format!(
                            "ERR slot {s} is not owned by shard {} (it is shard {}'s)",
                            m.from + 1,
                            table.owner(*s) + 1
                        ));
                    }
                    if table.moving(*s).is_some() {
                        return Err(format!("TRYAGAIN slot {s} is moving already"));
                    }
                }
                // One move at a time out of a shard: a move's notes of the keys written
                // meanwhile, and its freeze, are the shard's own.
                if table.moves.values().any(|other| other.from == m.from) {
                    return Err(format!(
                        "TRYAGAIN a move out of shard {} is under way",
                        m.from + 1
                    ));
                }
                next.moves.insert(*id, m.clone());
            }
            Change::CommitMove(id) => {
                let m = next
                    .moves
                    .remove(id)
                    .ok_or_else(|| format!("ERR no move {id} (committed or cancelled)"))?;
                for s in &m.slots {
                    if let Some(owner) = next.slots.get_mut(usize::from(*s)) {
                        *owner = m.to as u16;
                    }
                }
            }
            Change::CancelMove(id) => {
                next.moves
                    .remove(id)
                    .ok_or_else(|| format!("ERR no move {id} (committed or cancelled)"))?;
            }
            Change::Join(id, peer) => {
                if table.nodes.get(id) == Some(peer) {
                    return Ok(None);
                }
                let shard = usize::try_from(*id)
                    .ok()
                    .and_then(|i| i.checked_sub(1))
                    .ok_or("ERR node ids start at 1")?;
                if *id > MAX_NODE_ID {
                    return Err(format!("ERR node ids go from 1 to {MAX_NODE_ID}"));
                }
                if table.nodes.contains_key(id)
                    || table.retired.contains(id)
                    || shard < table.genesis
                    || table.shards.contains_key(&shard)
                {
                    return Err(format!("ERR node id {id} is or was in use in this cluster"));
                }
                if let Some((other, _)) = table
                    .nodes
                    .iter()
                    .find(|(_, p)| p.client == peer.client || p.bus == peer.bus)
                {
                    return Err(format!(
                        "ERR node {other} already uses {} or {}",
                        peer.client, peer.bus
                    ));
                }
                next.nodes.insert(*id, peer.clone());
                let mut members = vec![*id];
                let wanted = next.replicas.min(next.nodes.len());
                while members.len() < wanted {
                    match least_loaded(&next, &members) {
                        Some(m) => members.push(m),
                        None => break,
                    }
                }
                next.shards.insert(shard, members);
            }
            Change::Remove(id) => {
                if !table.nodes.contains_key(id) {
                    return Ok(None);
                }
                if table.nodes.len() == 1 {
                    return Err("ERR the cluster's last node cannot be removed".into());
                }
                let home = usize::try_from(*id).ok().and_then(|i| i.checked_sub(1));
                if let Some(shard) = home.filter(|s| table.shards.contains_key(s)) {
                    let owned = table.counts().get(&shard).copied().unwrap_or(0);
                    if owned > 0 {
                        return Err(format!("ERR shard {id} still owns {owned} slots"));
                    }
                    if table
                        .moves
                        .values()
                        .any(|m| m.from == shard || m.to == shard)
                    {
                        return Err(format!("TRYAGAIN shard {id} has a move under way"));
                    }
                    next.shards.remove(&shard);
                }
                next.nodes.remove(id);
                next.retired.push(*id);
                let shards: Vec<usize> = next.shards.keys().copied().collect();
                for shard in shards {
                    let Some(members) = next.shards.get(&shard).cloned() else {
                        continue;
                    };
                    if !members.contains(id) {
                        continue;
                    }
                    let mut kept: Vec<u64> = members.into_iter().filter(|m| m != id).collect();
                    if let Some(extra) = least_loaded(&next, &kept) {
                        kept.push(extra);
                    }
                    next.shards.insert(shard, kept);
                }
            }
        }
        next.epoch = table.epoch + 1;
        Ok(Some(next))
    }
}

/// The node with the fewest shard memberships that is not in `except`.
fn least_loaded(table: &Table, except: &[u64]) -> Option<u64> {
    table
        .nodes
        .keys()
        .filter(|n| !except.contains(n))
        .min_by_key(|n| (table.shards.values().filter(|m| m.contains(n)).count(), **n))
        .copied()
}

/// The table kept in `dir` (the last one this node saw), if there is one that reads.
pub fn load(dir: &std::path::Path) -> Option<Table> {
    let bytes = std::fs::read(dir.join(TABLE_FILE)).ok()?;
    match Table::decode(&bytes) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!("ignoring {}: {e}", dir.join(TABLE_FILE).display());
            None
        }
    }
}

/// Keeps `table` in `dir`, replacing the file atomically.
///
/// # Errors
/// The file's path and the I/O error.
pub fn save(dir: &std::path::Path, table: &Table) -> Result<(), String> {
    let path = dir.join(TABLE_FILE);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    crate::replication::disk_log::write_atomically(&path, &table.encode()?)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The file in a node's cluster directory holding the last table it saw.
const TABLE_FILE: &str = "table.bin";

/// A slot move under way: recorded before the first key is copied, removed when the slots
/// change owner (committed) or the move is called off (cancelled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The slots.
    pub slots: Vec<u16>,
    /// The shard giving them.
    pub from: usize,
    /// The shard receiving them.
    pub to: usize,
}

impl Table {
    /// The table of a new cluster: every node of `spec`, shard `i` on nodes `i..i+R-1`, slot
    /// `s` on shard `s mod N`.
    pub fn genesis(spec: &ClusterSpec) -> Table {
        let n = spec.shards();
        Table {
            epoch: 0,
            genesis: n,
            replicas: spec.replicas,
            nodes: spec
                .nodes
                .iter()
                .enumerate()
                .map(|(i, p)| (ClusterSpec::member_id(i), p.clone()))
                .collect(),
            shards: (0..n)
                .map(|s| {
                    (
                        s,
                        spec.members(s)
                            .into_iter()
                            .map(ClusterSpec::member_id)
                            .collect(),
                    )
                })
                .collect(),
            slots: (0..SLOTS)
                .map(|s| (usize::from(s) % n.max(1)) as u16)
                .collect(),
            moves: BTreeMap::new(),
            retired: Vec::new(),
        }
    }

    /// Whether this table supersedes `other` (a later epoch): what a node keeps of the tables
    /// it is offered, in whatever order they arrive.
    pub fn supersedes(&self, other: &Table) -> bool {
        self.epoch > other.epoch
    }

    /// The shard owning `key`.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        self.owner(slot_of(key))
    }

    /// The shard owning `slot`.
    pub fn owner(&self, slot: u16) -> usize {
        self.slots
            .get(usize::from(slot))
            .map_or(0, |s| usize::from(*s))
    }

    /// The members of `shard` (member ids, home first); empty for no such shard.
    pub fn members(&self, shard: usize) -> &[u64] {
        self.shards.get(&shard).map_or(&[], Vec::as_slice)
    }

    /// The addresses of node `member`.
    pub fn peer(&self, member: u64) -> Option<&Peer> {
        self.nodes.get(&member)
    }

    /// The slots `shard` owns.
    pub fn owned(&self, shard: usize) -> SlotSet {
        (0..SLOTS).filter(|s| self.owner(*s) == shard).collect()
    }

    /// How many slots each shard owns.
    pub fn counts(&self) -> BTreeMap<usize, usize> {
        let mut counts: BTreeMap<usize, usize> = self.shards.keys().map(|s| (*s, 0)).collect();
        for s in &self.slots {
            *counts.entry(usize::from(*s)).or_default() += 1;
        }
        counts
    }

    /// The move that includes `slot`, if one is under way.
    pub fn moving(&self, slot: u16) -> Option<(u64, &Move)> {
        self.moves
            .iter()
            .find(|(_, m)| m.slots.contains(&slot))
            .map(|(id, m)| (*id, m))
    }

    /// The table's bytes in the meta store.
    ///
    /// # Errors
    /// Never in practice (plain data); the encoder's message otherwise.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        postcard::to_allocvec(self).map_err(|e| format!("encoding the cluster table: {e}"))
    }

    /// A table read back from the meta store (or a peer).
    ///
    /// # Errors
    /// The decoder's message: the bytes are not a table this build reads.
    pub fn decode(bytes: &[u8]) -> Result<Table, String> {
        let table: Table =
            postcard::from_bytes(bytes).map_err(|e| format!("decoding the cluster table: {e}"))?;
        if table.slots.len() != usize::from(SLOTS) {
            return Err(format!(
                "cluster table has {} slots, not {SLOTS}",
                table.slots.len()
            ));
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::router::node_for;

    #[test]
    fn a_new_cluster_of_three_routes_as_the_spec_formula() {
        let spec = ClusterSpec::parse("h:1,h:2,h:3", 1, 1, None, None).expect("parses");
        let table = Table::genesis(&spec);
        for i in 0..5000 {
            let key = format!("user:{i}");
            assert_eq!(table.shard_of(key.as_bytes()), node_for(key.as_bytes(), 3));
        }
        assert_eq!(
            table.counts().values().copied().collect::<Vec<_>>(),
            [4096; 3]
        );
        assert_eq!(table.members(2), [3, 1, 2]);
        let back = Table::decode(&table.encode().expect("encodes")).expect("decodes");
        assert_eq!(back, table);
        assert!(Table::decode(b"\x01\x02").is_err());
    }

    fn peer(id: u64) -> Peer {
        Peer {
            client: format!("h:{id}"),
            bus: format!("h:{}", id + 10_000),
        }
    }

    proptest::proptest! {
        /// Random changes make a sequence of tables; each node receives them in a random
        /// order, some twice, and keeps the one that supersedes what it has. Once every table
        /// has reached every node, all nodes hold the last table and agree on the owner of
        /// every key; every table along the way gives every slot one owner that exists.
        #[test]
        fn nodes_agree_on_every_owner_once_the_epoch_has_propagated(
            ops in proptest::collection::vec((0u8..5, 0usize..6, 0usize..6, 0u16..SLOTS, 1u16..400), 1..40),
            deliveries in proptest::collection::vec(proptest::collection::vec(0usize..1000, 1..60), 4),
        ) {
            let spec = ClusterSpec::parse("h:1,h:2,h:3", 1, 1, None, None).expect("parses");
            let mut tables = vec![Table::genesis(&spec)];
            let mut next_id = 4u64;
            for (i, (kind, a, b, start, len)) in ops.into_iter().enumerate() {
                let current = tables.last().expect("genesis").clone();
                let shards: Vec<usize> = current.shards.keys().copied().collect();
                let from = shards[a % shards.len()];
                let to = shards[b % shards.len()];
                let change = match kind {
                    0 | 1 => {
                        let slots: Vec<u16> = (start..start.saturating_add(len).min(SLOTS))
                            .filter(|s| current.owner(*s) == from)
                            .collect();
                        Change::BeginMove(i as u64, Move { slots, from, to })
                    }
                    2 => match current.moves.keys().next() {
                        Some(id) if a % 2 == 0 => Change::CommitMove(*id),
                        Some(id) => Change::CancelMove(*id),
                        None => Change::CancelMove(u64::MAX),
                    },
                    3 => {
                        next_id += 1;
                        Change::Join(next_id, peer(next_id))
                    }
                    _ => Change::Remove(current.nodes.keys().copied().nth(a % current.nodes.len()).expect("a node")),
                };
                if let Ok(Some(next)) = change.apply(&current) {
                    proptest::prop_assert_eq!(next.epoch, current.epoch + 1);
                    for s in 0..SLOTS {
                        proptest::prop_assert!(next.shards.contains_key(&next.owner(s)));
                    }
                    tables.push(next);
                }
            }
            let last = tables.last().expect("some table").clone();
            let mut nodes: Vec<Table> = vec![tables[0].clone(); 4];
            for (node, order) in nodes.iter_mut().zip(&deliveries) {
                let mut sequence: Vec<usize> = order.iter().map(|i| i % tables.len()).collect();
                sequence.extend(0..tables.len());
                for i in sequence {
                    if tables[i].supersedes(node) {
                        *node = tables[i].clone();
                    }
                }
            }
            for node in &nodes {
                proptest::prop_assert_eq!(node, &last);
                for i in 0..200 {
                    let key = format!("key:{i}");
                    proptest::prop_assert_eq!(node.shard_of(key.as_bytes()), last.shard_of(key.as_bytes()));
                }
            }
        }
    }

    #[test]
    fn removing_a_node_needs_its_shard_empty_and_replaces_it_in_every_group() {
        let spec = ClusterSpec::parse("h:1,h:2,h:3", 1, 1, None, None).expect("parses");
        let table = Table::genesis(&spec);
        let joined = Change::Join(4, peer(4))
            .apply(&table)
            .expect("joins")
            .expect("changed");
        assert_eq!(joined.members(3).len(), 3);
        assert!(
            Change::Remove(1).apply(&joined).is_err(),
            "shard 1 owns slots"
        );
        let removed = Change::Remove(4)
            .apply(&joined)
            .expect("removes")
            .expect("changed");
        assert!(!removed.shards.contains_key(&3));
        assert!(removed
            .shards
            .values()
            .all(|m| !m.contains(&4) && m.len() == 3));
        assert!(
            Change::Join(4, peer(4)).apply(&removed).is_err(),
            "ids are not reused"
        );
        let too_big = Change::Join(MAX_NODE_ID + 1, peer(MAX_NODE_ID + 1)).apply(&removed);
        assert!(too_big.is_err(), "ids stay below the meta group's bus id");
    }

    #[test]
    fn one_move_at_a_time_out_of_a_shard_and_only_of_its_own_slots() {
        let spec = ClusterSpec::parse("h:1,h:2,h:3", 1, 1, None, None).expect("parses");
        let table = Table::genesis(&spec);
        let first = Move {
            slots: vec![0, 3],
            from: 0,
            to: 1,
        };
        let moving = Change::BeginMove(1, first.clone())
            .apply(&table)
            .expect("begins")
            .expect("changed");
        assert_eq!(
            Change::BeginMove(1, first).apply(&moving),
            Ok(None),
            "idempotent"
        );
        let second = Move {
            slots: vec![6],
            from: 0,
            to: 2,
        };
        let refused = Change::BeginMove(2, second.clone()).apply(&moving);
        assert!(refused.is_err_and(|e| e.starts_with("TRYAGAIN")));
        let not_owned = Move {
            slots: vec![1],
            from: 0,
            to: 2,
        };
        assert!(Change::BeginMove(3, not_owned)
            .apply(&table)
            .is_err_and(|e| e.starts_with("ERR")));
        let done = Change::CommitMove(1)
            .apply(&moving)
            .expect("commits")
            .expect("changed");
        assert_eq!((done.owner(0), done.owner(3)), (1, 1));
        assert!(
            Change::CancelMove(1).apply(&done).is_err(),
            "commit or cancel, not both"
        );
        assert!(Change::BeginMove(2, second).apply(&done).is_ok());
    }
}
