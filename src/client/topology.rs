//! Which configured server leads each shard of a replicated cluster: the `CLUSTER SHARDS`
//! reply parsed, and its nodes matched to the client's `--servers` list.
//!
//! Pure functions over [`Reply`] values: no sockets here (the client in `mod.rs` asks a node
//! and hands the reply over). A plain cluster (nodes started without `--cluster`) answers
//! `CLUSTER SHARDS` with an error; [`parse_shards`] is not called then, and the client keeps
//! the spec's routing, server `i` for shard `i`.

use super::router::SLOTS;
use crate::protocol::Reply;

/// What `CLUSTER SHARDS` said about a replicated cluster, with each node matched to the
/// client's server list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// One entry per shard, in shard order (index 0 is shard 1).
    pub shards: Vec<Shard>,
}

/// One shard: the keys with `node_for(key, N) == index`, and the nodes holding a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The 0-based shard index (the reply's 1-based `shard-index` minus one).
    pub index: usize,
    /// The slots the shard owns, as inclusive `(start, end)` ranges in the reply's order
    /// (ascending); empty for a shard owning nothing, or a reply without `slots`.
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
    /// The 0-based server index leading `shard`, when the shard has a leader and the leader is
    /// one of the configured servers.
    pub fn leader(&self, shard: usize) -> Option<usize> {
        self.shards
            .get(shard)?
            .nodes
            .iter()
            .find(|n| n.leader)
            .and_then(|n| n.server)
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
}

/// Parses a `CLUSTER SHARDS` reply (RESP2 flat name/value arrays or RESP3 maps) and matches
/// each node to `servers` (`host:port` entries) by address, `localhost` and `127.0.0.1`
/// being the same host.
///
/// # Errors
/// A description of the first part that is not shaped as Redis 7's `CLUSTER SHARDS` (an
/// array of shards, each with `shard-index` and a `nodes` array of `port`/`ip`/`endpoint`/
/// `role`/`health` fields); unknown fields are ignored.
pub fn parse_shards(reply: &Reply, servers: &[String]) -> Result<Topology, String> {
    let shards = parse_shard_list(reply, servers)?;
    if shards.iter().enumerate().any(|(i, s)| s.index != i) {
        return Err("the shard indices are not 1 to N".into());
    }
    Ok(Topology { shards })
}

/// Parses a `CLUSTER SHARDS` reply as [`parse_shards`] does, but accepts gaps in the shard
/// ids (a removed node's shard leaves one); the shards come sorted by index.
///
/// # Errors
/// As [`parse_shards`]; also a shard id listed twice, and a `slots` field that is not a flat
/// array of `start, end` pairs below [`super::router::SLOTS`] with `start <= end`.
pub fn parse_shard_list(reply: &Reply, servers: &[String]) -> Result<Vec<Shard>, String> {
    let Reply::Array(entries) = reply else {
        return Err("CLUSTER SHARDS did not answer an array".into());
    };
    let mut shards = Vec::with_capacity(entries.len());
    for (position, entry) in entries.iter().enumerate() {
        let fields = fields(entry).ok_or_else(|| format!("shard {} is not a map", position + 1))?;
        // The reply lists shards in order; `shard-index` is checked when present.
        let index = match field(&fields, "shard-index") {
            Some(Reply::Int(n)) if *n >= 1 => (*n - 1) as usize,
            Some(_) => return Err(format!("shard {}: bad shard-index", position + 1)),
            None => position,
        };
        let Some(Reply::Array(nodes)) = field(&fields, "nodes") else {
            return Err(format!("shard {}: no nodes array", position + 1));
        };
        let nodes = nodes
            .iter()
            .map(|n| parse_node(n, servers))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("shard {}: {e}", position + 1))?;
        let slots = match field(&fields, "slots") {
            Some(list) => parse_slots(list).map_err(|e| format!("shard {}: {e}", position + 1))?,
            None => Vec::new(),
        };
        shards.push(Shard {
            index,
            slots,
            nodes,
        });
    }
    shards.sort_by_key(|s| s.index);
    if let Some(twice) = shards.windows(2).find(|w| w[0].index == w[1].index) {
        return Err(format!("shard {} is listed twice", twice[0].index + 1));
    }
    Ok(shards)
}

/// The `slots` field: a flat array `[start1, end1, start2, end2, ...]` of inclusive ranges.
fn parse_slots(list: &Reply) -> Result<Vec<(u16, u16)>, String> {
    let Reply::Array(items) = list else {
        return Err("slots is not an array".into());
    };
    if items.len() % 2 != 0 {
        return Err("slots has an odd number of entries".into());
    }
    let slot = |r: &Reply| match r {
        Reply::Int(n) => u16::try_from(*n)
            .ok()
            .filter(|s| *s < SLOTS)
            .ok_or_else(|| format!("slot {n} is not from 0 to {}", SLOTS - 1)),
        _ => Err("a slot is not an integer".to_string()),
    };
    items
        .chunks(2)
        .map(|pair| {
            let (start, end) = (slot(&pair[0])?, slot(&pair[1])?);
            if start > end {
                return Err(format!("slot range {start}-{end} is reversed"));
            }
            Ok((start, end))
        })
        .collect()
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

/// The value of the pair named `name` (without case) among `fields`.
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

    /// One shard of a RESP2 `CLUSTER SHARDS` reply.
    pub(crate) fn shard(index: i64, nodes: Vec<Reply>) -> Reply {
        Reply::Array(vec![
            bulk("slots"),
            Reply::Array(vec![]),
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
        let gap = Reply::Array(vec![shard(2, vec![])]);
        assert!(parse_shards(&gap, &servers).is_err(), "shard 1 missing");
        let bad_port = Reply::Array(vec![shard(1, vec![node('a', "h", 0, "master", "online")])]);
        assert!(parse_shards(&bad_port, &servers).is_ok(), "port 0 parses");
        let odd = Reply::Array(vec![Reply::Array(vec![bulk("nodes")])]);
        assert!(parse_shards(&odd, &servers).is_err());
    }

    /// A shard owning `slots` (a flat start, end, start, end... list).
    fn shard_with_slots(index: i64, slots: &[i64]) -> Reply {
        Reply::Array(vec![
            bulk("slots"),
            Reply::Array(slots.iter().map(|s| Reply::Int(*s)).collect()),
            bulk("shard-index"),
            Reply::Int(index),
            bulk("nodes"),
            Reply::Array(vec![node('a', "127.0.0.1", 7001, "master", "online")]),
        ])
    }

    #[test]
    fn slot_ranges_parse_and_shard_ids_may_have_gaps() {
        let reply = Reply::Array(vec![
            shard_with_slots(3, &[100, 12287]),
            shard_with_slots(1, &[0, 9, 10, 99]),
            shard_with_slots(4, &[]),
        ]);
        let shards = parse_shard_list(&reply, &servers()).expect("valid");
        let got: Vec<(usize, Vec<(u16, u16)>)> =
            shards.into_iter().map(|s| (s.index, s.slots)).collect();
        assert_eq!(
            got,
            [
                (0, vec![(0, 9), (10, 99)]),
                (2, vec![(100, 12287)]),
                (3, vec![])
            ]
        );
        // The routing view still wants shards 1 to N.
        assert!(parse_shards(&reply, &servers()).is_err());
    }

    #[test]
    fn bad_slot_lists_are_refused_with_a_reason() {
        let refused = |slots: &[i64]| {
            parse_shard_list(&Reply::Array(vec![shard_with_slots(1, slots)]), &servers())
                .expect_err("bad slots")
        };
        assert_eq!(refused(&[1]), "shard 1: slots has an odd number of entries");
        assert_eq!(
            refused(&[0, 12288]),
            "shard 1: slot 12288 is not from 0 to 12287"
        );
        assert_eq!(refused(&[-1, 3]), "shard 1: slot -1 is not from 0 to 12287");
        assert_eq!(refused(&[9, 3]), "shard 1: slot range 9-3 is reversed");
        let twice = Reply::Array(vec![shard_with_slots(2, &[]), shard_with_slots(2, &[])]);
        assert_eq!(
            parse_shard_list(&twice, &servers()),
            Err("shard 2 is listed twice".into())
        );
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
}
