//! Which configured server leads each shard of a replicated cluster, and which shard owns
//! each slot: the `CLUSTER SHARDS` reply parsed, and its nodes matched to the client's
//! `--servers` list.
//!
//! Pure functions over [`Reply`] values: no sockets here (the client in `mod.rs` asks a node
//! and hands the reply over). A plain cluster (nodes started without `--cluster`) answers
//! `CLUSTER SHARDS` with an error; [`parse_shards`] is not called then, and the client keeps
//! the spec's routing, server `i` for shard `i`.
//!
//! Shards are known by their 1-based id (`shard-index`); ids may have gaps (a removed node's
//! shard is gone) and grow past the number of servers (a node joined). Each shard lists the
//! slots it owns as inclusive ranges; [`Topology::new`] turns them into one lookup table of
//! [`SLOTS`] entries, so routing a key is one MD5 and one index. A server from before slots
//! reports every shard with no slots: keys then go by `md5(key) mod shards`, as it routes.

use std::fmt;

use crate::client::router::{node_for, slot_of, SLOTS};
use crate::protocol::Reply;

/// What `CLUSTER SHARDS` said about a replicated cluster, with each node matched to the
/// client's server list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// One entry per shard, by ascending shard id; ids may have gaps, so `shards[i]` need not
    /// be shard `i + 1` (see [`Topology::shard`]).
    pub shards: Vec<Shard>,
    /// Slot to shard index, built once by [`Topology::new`].
    table: SlotTable,
}

/// One shard: the keys of the slots it owns, and the nodes holding a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The 0-based shard index: the reply's 1-based `shard-index` (the shard id) minus one.
    pub index: usize,
    /// The slots the shard owns, as inclusive `(first, last)` ranges in ascending order; empty
    /// for a shard that owns none, and for every shard of a server from before slots.
    pub slots: Vec<(u16, u16)>,
    /// The shard's nodes in the reply's order: at most one [`ShardNode::leader`].
    pub nodes: Vec<ShardNode>,
}

/// One node of a shard, as `CLUSTER SHARDS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardNode {
    /// The node's 40-character id.
    pub id: String,
    /// Its address as the node names it: the `endpoint` (else the `ip`) and the client port.
    pub addr: String,
    /// The 0-based index of the matching entry of the client's server list, if any.
    pub server: Option<usize>,
    /// True for the shard's current leader (`role` `master`).
    pub leader: bool,
    /// `online`, `failed` or `loading` (any other text is kept as it came).
    pub health: String,
}

impl Topology {
    /// The topology of `shards` (in any order), with its slot table.
    ///
    /// # Errors
    /// A description of the first inconsistency: two shards with one index, a range that is
    /// reversed or reaches past the last slot, or a slot owned by two shards.
    pub fn new(mut shards: Vec<Shard>) -> Result<Topology, String> {
        shards.sort_by_key(|s| s.index);
        if let Some(pair) = shards.windows(2).find(|p| p[0].index == p[1].index) {
            return Err(format!("two shards with index {}", pair[0].index + 1));
        }
        let table = SlotTable::build(&shards)?;
        Ok(Topology { shards, table })
    }

    /// The shard of 0-based index `index` (shard id `index + 1`), if the cluster has it.
    pub fn shard(&self, index: usize) -> Option<&Shard> {
        self.shards
            .binary_search_by_key(&index, |s| s.index)
            .ok()
            .map(|at| &self.shards[at])
    }

    /// The 0-based index of the shard owning `slot`; `None` when no shard reports it (every
    /// shard of a server from before slots, or a slot left out of the reply).
    pub fn shard_of_slot(&self, slot: u16) -> Option<usize> {
        self.table.owner(slot)
    }

    /// The 0-based index of the shard owning `key`: by [`slot_of`] and the slot table, or,
    /// when no shard reports slots (a server from before slots), `md5(key) mod shards`.
    /// `None` when the key's slot is unowned, or the topology has no shard.
    pub fn shard_of_key(&self, key: &[u8]) -> Option<usize> {
        if self.table.is_empty() {
            if self.shards.is_empty() {
                return None;
            }
            return Some(self.shards[node_for(key, self.shards.len())].index);
        }
        self.shard_of_slot(slot_of(key))
    }

    /// True when the shards report slots (a server with slots); false for a server from
    /// before slots, whose keys go by `md5(key) mod shards`.
    pub fn has_slots(&self) -> bool {
        !self.table.is_empty()
    }

    /// The 0-based server index leading shard `shard` (0-based index), when the shard exists
    /// and has a leader, and the leader is one of the configured servers.
    pub fn leader(&self, shard: usize) -> Option<usize> {
        self.shard(shard)?.leader().and_then(|n| n.server)
    }
}

impl Shard {
    /// The shard's leader, if it has one.
    pub fn leader(&self) -> Option<&ShardNode> {
        self.nodes.iter().find(|n| n.leader)
    }

    /// The shard's other nodes.
    pub fn followers(&self) -> impl Iterator<Item = &ShardNode> {
        self.nodes.iter().filter(|n| !n.leader)
    }

    /// How many slots the shard owns.
    pub fn slot_count(&self) -> usize {
        self.slots
            .iter()
            .map(|&(first, last)| usize::from(last.saturating_sub(first)) + 1)
            .sum()
    }
}

/// Parses a `CLUSTER SHARDS` reply (RESP2 flat name/value arrays or RESP3 maps) and matches
/// each node to `servers` (`host:port` entries) by address, `localhost` and `127.0.0.1`
/// being the same host. Shard ids need not run from 1 to N without gaps.
///
/// # Errors
/// A description of the first part that is not shaped as Redis 7's `CLUSTER SHARDS` (an
/// array of shards, each with `shard-index`, `slots` (a flat array of inclusive ranges,
/// `[first1, last1, first2, last2, ...]`) and a `nodes` array of `port`/`ip`/`endpoint`/
/// `role`/`health` fields), or that [`Topology::new`] refuses; unknown fields are ignored.
pub fn parse_shards(reply: &Reply, servers: &[String]) -> Result<Topology, String> {
    Topology::new(parse_shard_list(reply, servers)?)
}

/// The shards of a `CLUSTER SHARDS` reply, in the reply's order, unchecked as a whole (what
/// `minikv rebalance` reads; [`parse_shards`] also checks that no slot has two owners).
///
/// # Errors
/// As [`parse_shards`].
pub fn parse_shard_list(reply: &Reply, servers: &[String]) -> Result<Vec<Shard>, String> {
    parse_shard_entries(reply, servers)
}

fn parse_shard_entries(reply: &Reply, servers: &[String]) -> Result<Vec<Shard>, String> {
    let Reply::Array(entries) = reply else {
        return Err("CLUSTER SHARDS did not answer an array".into());
    };
    let mut shards = Vec::with_capacity(entries.len());
    for (position, entry) in entries.iter().enumerate() {
        let fields = fields(entry).ok_or_else(|| format!("shard {} is not a map", position + 1))?;
        // The shard id; a reply without ids lists shards 1 to N in order.
        let index = match field(&fields, "shard-index") {
            Some(Reply::Int(n)) if *n >= 1 => usize::try_from(*n - 1)
                .map_err(|_| format!("shard {}: bad shard-index", position + 1))?,
            Some(_) => return Err(format!("shard {}: bad shard-index", position + 1)),
            None => position,
        };
        let slots = match field(&fields, "slots") {
            None => Vec::new(),
            Some(slots) => parse_slots(slots).map_err(|e| format!("shard {}: {e}", index + 1))?,
        };
        let Some(Reply::Array(nodes)) = field(&fields, "nodes") else {
            return Err(format!("shard {}: no nodes array", position + 1));
        };
        let nodes = nodes
            .iter()
            .map(|n| parse_node(n, servers))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("shard {}: {e}", position + 1))?;
        shards.push(Shard {
            index,
            slots,
            nodes,
        });
    }
    Ok(shards)
}

/// The 0-based index of the entry of `servers` naming `host:port`, `localhost` and
/// `127.0.0.1` (and `::1`) counting as one host; host names compare without case.
pub fn match_server(servers: &[String], host: &str, port: u16) -> Option<usize> {
    let host = canonical(host);
    servers.iter().position(|entry| {
        entry
            .rsplit_once(':')
            .is_some_and(|(h, p)| p.parse() == Ok(port) && canonical(h) == host)
    })
}

/// A shard's `slots`: a flat array of integers, each pair an inclusive range.
fn parse_slots(slots: &Reply) -> Result<Vec<(u16, u16)>, String> {
    let Reply::Array(items) = slots else {
        return Err("slots is not an array".into());
    };
    if items.len() % 2 != 0 {
        return Err("slots has an odd number of bounds".into());
    }
    let bound = |item: &Reply| match item {
        Reply::Int(n) => u16::try_from(*n)
            .ok()
            .filter(|s| *s < SLOTS)
            .ok_or_else(|| format!("slot {n} out of range")),
        _ => Err("a slot bound that is not an integer".to_string()),
    };
    items
        .chunks(2)
        .map(|pair| Ok((bound(&pair[0])?, bound(&pair[1])?)))
        .collect()
}

/// Slot to 0-based shard index: [`SLOTS`] entries, [`SlotTable::UNOWNED`] for a slot no shard
/// reports; empty when no shard reports any slot.
#[derive(Clone, PartialEq, Eq)]
struct SlotTable(Vec<u16>);

impl SlotTable {
    /// The entry of a slot no shard owns.
    const UNOWNED: u16 = u16::MAX;

    fn build(shards: &[Shard]) -> Result<SlotTable, String> {
        if shards.iter().all(|s| s.slots.is_empty()) {
            return Ok(SlotTable(Vec::new()));
        }
        let mut table = vec![Self::UNOWNED; usize::from(SLOTS)];
        for shard in shards {
            let index = u16::try_from(shard.index)
                .ok()
                .filter(|i| *i != Self::UNOWNED)
                .ok_or_else(|| format!("shard index {} too large", shard.index + 1))?;
            for &(first, last) in &shard.slots {
                if first > last || last >= SLOTS {
                    return Err(format!("shard {}: bad range {first}-{last}", index + 1));
                }
                for slot in first..=last {
                    let entry = &mut table[usize::from(slot)];
                    if *entry != Self::UNOWNED {
                        return Err(format!(
                            "slot {slot} owned by shards {} and {}",
                            *entry + 1,
                            index + 1
                        ));
                    }
                    *entry = index;
                }
            }
        }
        Ok(SlotTable(table))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn owner(&self, slot: u16) -> Option<usize> {
        self.0
            .get(usize::from(slot))
            .filter(|i| **i != Self::UNOWNED)
            .map(|i| usize::from(*i))
    }
}

impl fmt::Debug for SlotTable {
    // 12288 entries would bury the shards in every assertion message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owned = self.0.iter().filter(|i| **i != Self::UNOWNED).count();
        write!(f, "SlotTable({owned} slots owned)")
    }
}

fn parse_node(node: &Reply, servers: &[String]) -> Result<ShardNode, String> {
    let fields = fields(node).ok_or("a node is not a map")?;
    let text = |name: &str| match field(&fields, name) {
        Some(Reply::Bulk(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(Reply::Simple(s)) => Some(s.to_string()),
        _ => None,
    };
    let port = match field(&fields, "port") {
        Some(Reply::Int(p)) => u16::try_from(*p).map_err(|_| format!("bad port {p}"))?,
        _ => return Err("a node without a port".into()),
    };
    let ip = text("ip").unwrap_or_default();
    let endpoint = text("endpoint").unwrap_or_default();
    // The endpoint is the name the node advertises (may be a host name); the ip is the
    // fallback, so a list of either kind matches.
    let server = [&endpoint, &ip]
        .into_iter()
        .filter(|h| !h.is_empty())
        .find_map(|h| match_server(servers, h, port));
    let host = if endpoint.is_empty() { &ip } else { &endpoint };
    Ok(ShardNode {
        id: text("id").unwrap_or_default(),
        addr: format!("{host}:{port}"),
        server,
        leader: text("role").as_deref() == Some("master"),
        health: text("health").unwrap_or_else(|| "unknown".into()),
    })
}

/// A RESP2 flat name/value array or a RESP3 map as name/value pairs.
pub(crate) fn fields(reply: &Reply) -> Option<Vec<(&[u8], &Reply)>> {
    match reply {
        Reply::Map(pairs) => pairs.iter().map(|(k, v)| name(k).map(|k| (k, v))).collect(),
        Reply::Array(items) if items.len() % 2 == 0 => items
            .chunks(2)
            .map(|pair| name(&pair[0]).map(|k| (k, &pair[1])))
            .collect(),
        _ => None,
    }
}

fn name(reply: &Reply) -> Option<&[u8]> {
    match reply {
        Reply::Bulk(b) => Some(b),
        Reply::Simple(s) => Some(s.as_bytes()),
        _ => None,
    }
}

pub(crate) fn field<'a>(fields: &[(&[u8], &'a Reply)], name: &str) -> Option<&'a Reply> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| *v)
}

/// `localhost`, `127.0.0.1`, `::1` and `[::1]` as one name; other hosts lower-cased.
fn canonical(host: &str) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.to_ascii_lowercase().as_str() {
        "localhost" | "127.0.0.1" | "::1" => "localhost".into(),
        other => other.into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use bytes::Bytes;

    use super::*;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// One node of a RESP2 `CLUSTER SHARDS` reply.
    pub(crate) fn node(id: char, ip: &str, port: u16, role: &str, health: &str) -> Reply {
        Reply::Array(vec![
            bulk("id"),
            bulk(&id.to_string().repeat(40)),
            bulk("port"),
            Reply::Int(i64::from(port)),
            bulk("ip"),
            bulk(ip),
            bulk("endpoint"),
            bulk(ip),
            bulk("role"),
            bulk(role),
            bulk("replication-offset"),
            Reply::Int(42),
            bulk("health"),
            bulk(health),
        ])
    }

    /// One shard of a RESP2 `CLUSTER SHARDS` reply, owning no slot.
    pub(crate) fn shard(index: i64, nodes: Vec<Reply>) -> Reply {
        slotted_shard(index, &[], nodes)
    }

    /// One shard of a RESP2 `CLUSTER SHARDS` reply owning the inclusive `ranges`.
    pub(crate) fn slotted_shard(index: i64, ranges: &[(i64, i64)], nodes: Vec<Reply>) -> Reply {
        let bounds = ranges
            .iter()
            .flat_map(|&(first, last)| [Reply::Int(first), Reply::Int(last)])
            .collect();
        Reply::Array(vec![
            bulk("slots"),
            Reply::Array(bounds),
            bulk("shard-index"),
            Reply::Int(index),
            bulk("nodes"),
            Reply::Array(nodes),
        ])
    }

    fn servers() -> Vec<String> {
        ["localhost:7001", "localhost:7002", "localhost:7003"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn resp2_reply_names_each_shards_leader_among_the_servers() {
        let reply = Reply::Array(vec![
            shard(
                1,
                vec![
                    node('a', "127.0.0.1", 7001, "master", "online"),
                    node('b', "127.0.0.1", 7002, "replica", "online"),
                ],
            ),
            shard(
                2,
                vec![
                    node('a', "127.0.0.1", 7001, "replica", "online"),
                    node('b', "127.0.0.1", 7002, "replica", "failed"),
                    node('c', "127.0.0.1", 7003, "master", "online"),
                ],
            ),
            // No leader: an election is under way.
            shard(3, vec![node('c', "10.0.0.9", 7003, "replica", "loading")]),
        ]);
        let topology = parse_shards(&reply, &servers()).expect("a valid reply");
        assert_eq!(topology.shards.len(), 3);
        assert_eq!(topology.leader(0), Some(0));
        assert_eq!(topology.leader(1), Some(2), "failed over to server 3");
        assert_eq!(topology.leader(2), None, "no leader");
        assert_eq!(topology.leader(7), None, "no such shard");
        let second = &topology.shards[1];
        let followers: Vec<(&str, Option<usize>)> = second
            .followers()
            .map(|n| (n.health.as_str(), n.server))
            .collect();
        assert_eq!(followers, [("online", Some(0)), ("failed", Some(1))]);
        assert_eq!(second.nodes[0].id, "a".repeat(40));
        // An address that is not in the list is kept, unmatched.
        let stranger = &topology.shards[2].nodes[0];
        assert_eq!(
            (stranger.addr.as_str(), stranger.server),
            ("10.0.0.9:7003", None)
        );
    }

    #[test]
    fn resp3_maps_parse_like_flat_arrays() {
        let map = |r: Reply| match r {
            Reply::Array(items) => Reply::Map(
                items
                    .chunks(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .collect(),
            ),
            other => other,
        };
        let node3 = map(node('c', "localhost", 7003, "master", "online"));
        let shard = Reply::Map(vec![
            (bulk("slots"), Reply::Array(vec![])),
            (bulk("shard-index"), Reply::Int(1)),
            (bulk("nodes"), Reply::Array(vec![node3])),
        ]);
        let topology = parse_shards(&Reply::Array(vec![shard]), &servers()).expect("valid");
        assert_eq!(topology.leader(0), Some(2));
    }

    #[test]
    fn malformed_replies_are_refused_with_a_reason() {
        let servers = servers();
        assert!(parse_shards(&Reply::Int(3), &servers).is_err());
        let no_nodes = Reply::Array(vec![Reply::Array(vec![bulk("shard-index"), Reply::Int(1)])]);
        assert_eq!(
            parse_shards(&no_nodes, &servers),
            Err("shard 1: no nodes array".into())
        );
        let twice = Reply::Array(vec![shard(2, vec![]), shard(2, vec![])]);
        assert_eq!(
            parse_shards(&twice, &servers),
            Err("two shards with index 2".into())
        );
        let slots = |ranges: &[(i64, i64)]| {
            Reply::Array(vec![
                slotted_shard(1, ranges, vec![]),
                slotted_shard(2, &[(100, 200)], vec![]),
            ])
        };
        assert!(parse_shards(&slots(&[(0, 99)]), &servers).is_ok());
        assert_eq!(
            parse_shards(&slots(&[(0, 100)]), &servers),
            Err("slot 100 owned by shards 1 and 2".into())
        );
        assert_eq!(
            parse_shards(&slots(&[(5, 4)]), &servers),
            Err("shard 1: bad range 5-4".into())
        );
        assert_eq!(
            parse_shards(&slots(&[(0, 12288)]), &servers),
            Err("shard 1: slot 12288 out of range".into())
        );
        assert!(parse_shards(&slots(&[(-1, 3)]), &servers).is_err());
        let odd = Reply::Array(vec![Reply::Array(vec![
            bulk("slots"),
            Reply::Array(vec![Reply::Int(1)]),
            bulk("nodes"),
            Reply::Array(vec![]),
        ])]);
        assert_eq!(
            parse_shards(&odd, &servers),
            Err("shard 1: slots has an odd number of bounds".into())
        );
        let bad_port = Reply::Array(vec![shard(1, vec![node('a', "h", 0, "master", "online")])]);
        assert!(parse_shards(&bad_port, &servers).is_ok(), "port 0 parses");
        let odd = Reply::Array(vec![Reply::Array(vec![bulk("nodes")])]);
        assert!(parse_shards(&odd, &servers).is_err());
    }

    #[test]
    fn localhost_and_loopback_match_each_other() {
        let list: Vec<String> = [
            "127.0.0.1:7001",
            "LocalHost:7002",
            "db.example:7003",
            "[::1]:7004",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(match_server(&list, "localhost", 7001), Some(0));
        assert_eq!(match_server(&list, "127.0.0.1", 7002), Some(1));
        assert_eq!(match_server(&list, "DB.example", 7003), Some(2));
        assert_eq!(match_server(&list, "127.0.0.1", 7004), Some(3));
        assert_eq!(match_server(&list, "localhost", 7003), None, "other host");
        assert_eq!(match_server(&list, "127.0.0.1", 7009), None, "other port");
    }

    #[test]
    fn shards_with_gaps_are_found_by_id_and_own_their_slots() {
        // Shard 2 was removed; shard 4 joined and owns one range.
        let reply = Reply::Array(vec![
            slotted_shard(
                1,
                &[(0, 4095), (8192, 8192)],
                vec![node('a', "127.0.0.1", 7001, "master", "online")],
            ),
            slotted_shard(
                3,
                &[(4096, 8191)],
                vec![node('c', "127.0.0.1", 7003, "master", "online")],
            ),
            slotted_shard(
                4,
                &[(8193, 12287)],
                vec![node('d', "127.0.0.1", 7004, "master", "online")],
            ),
        ]);
        let topology = parse_shards(&reply, &servers()).expect("a valid reply");
        assert!(topology.has_slots());
        let indices: Vec<usize> = topology.shards.iter().map(|s| s.index).collect();
        assert_eq!(indices, [0, 2, 3]);
        assert_eq!(topology.shard(1), None, "shard 2 is gone");
        assert_eq!(
            topology.shard(2).map(|s| s.slots.clone()),
            Some(vec![(4096, 8191)])
        );
        assert_eq!(topology.shard(0).map(Shard::slot_count), Some(4097));
        assert_eq!(topology.leader(2), Some(2));
        assert_eq!(topology.leader(3), None, "server 4 is not in the list");
        assert_eq!(topology.leader(1), None);
        for (slot, shard) in [
            (0, 0),
            (4095, 0),
            (4096, 2),
            (8192, 0),
            (8193, 3),
            (12287, 3),
        ] {
            assert_eq!(topology.shard_of_slot(slot), Some(shard), "slot {slot}");
        }
        for i in 0..200 {
            let key = format!("k{i}");
            let want = topology.shard_of_slot(slot_of(key.as_bytes()));
            assert_eq!(topology.shard_of_key(key.as_bytes()), want);
        }
        let sparse = Reply::Array(vec![slotted_shard(1, &[(0, 9)], vec![])]);
        let sparse = parse_shards(&sparse, &servers()).expect("valid");
        assert_eq!(sparse.shard_of_slot(10), None, "no owner");
        assert!(format!("{sparse:?}").contains("SlotTable(10 slots owned)"));
    }

    #[test]
    fn shards_without_slots_route_by_md5_modulo_the_shard_count() {
        let reply = Reply::Array((1..=3).map(|i| shard(i, vec![])).collect());
        let topology = parse_shards(&reply, &servers()).expect("a valid reply");
        assert!(!topology.has_slots());
        assert_eq!(topology.shard_of_slot(0), None);
        for i in 0..200 {
            let key = format!("k{i}");
            assert_eq!(
                topology.shard_of_key(key.as_bytes()),
                Some(node_for(key.as_bytes(), 3))
            );
        }
        let empty = Topology::new(Vec::new()).expect("no shards");
        assert_eq!(empty.shard_of_key(b"k"), None);
    }
}
