//! The driver against fake nodes that keep a slot table in memory and answer `CLUSTER
//! SHARDS`, `CLUSTER MOVESLOTS` and `CLUSTER REMOVENODE` from it, with faults on request.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::*;
use crate::client::fake::{slots_reply, Answer, FakeNode};

/// The cluster the fake nodes share.
#[derive(Default)]
struct Cluster {
    owners: Ownership,
    /// Keys each slot holds (a move of `n` slots copies `n * keys_per_slot` keys).
    keys_per_slot: u64,
    /// `CLUSTER MOVESLOTS` calls received.
    moves: usize,
    /// Calls (numbered from 1) answered `TRYAGAIN` without moving anything.
    try_again: Vec<usize>,
    /// Calls that move the slots, then close the connection without a reply.
    drop_after: Vec<usize>,
    /// Every MOVESLOTS answered with this error.
    refuse: Option<&'static str>,
    /// `CLUSTER REMOVENODE` calls answered `TRYAGAIN` before one succeeds.
    remove_try_again: usize,
    /// `CLUSTER SHARDS` answered with an error (a plain cluster).
    plain: bool,
    /// `ERR` replies sent: a correct driver never earns one here.
    errors: Vec<String>,
    removed: Vec<ShardId>,
}

impl Cluster {
    fn answer(&mut self, words: &[String]) -> Answer {
        let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        match upper.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["CLUSTER", "SHARDS"] if self.plain => {
                raw("-ERR This instance has cluster support disabled\r\n")
            }
            ["CLUSTER", "SHARDS"] => Answer::Raw(slots_reply(&self.owners, 7001)),
            ["CLUSTER", "MOVESLOTS", ..] => self.move_slots(&words[2..]),
            ["CLUSTER", "REMOVENODE", _] => self.remove(&words[2]),
            _ => raw("-ERR unknown command\r\n"),
        }
    }

    fn move_slots(&mut self, args: &[String]) -> Answer {
        self.moves += 1;
        if let Some(error) = self.refuse {
            return raw(error);
        }
        if self.try_again.contains(&self.moves) {
            return raw("-TRYAGAIN another move is in progress\r\n");
        }
        let (Some(from), Some(to)) = (args[0].parse().ok(), args[1].parse().ok()) else {
            return self.error("ERR bad shard id");
        };
        let mut ranges = Vec::new();
        for range in &args[2..] {
            let parsed = range
                .split_once('-')
                .and_then(|(s, e)| Some((s.parse().ok()?, e.parse().ok()?)));
            let Some((start, end)) = parsed else {
                return self.error(&format!("ERR bad range {range}"));
            };
            ranges.push((start, end));
        }
        let mv = Move { from, to, ranges };
        let owned = self.owners.get(&from).cloned().unwrap_or_default();
        if arrived(&Ownership::from([(to, owned)]), &Move { to, ..mv.clone() }) != mv.slots() as u64
        {
            return self.error(&format!("ERR a slot is not owned by shard {from}"));
        }
        apply(&mut self.owners, &mv);
        if self.drop_after.contains(&self.moves) {
            return Answer::Close;
        }
        let keys = mv.slots() as u64 * self.keys_per_slot;
        let reply = format!(
            "*10\r\n$5\r\nslots\r\n:{}\r\n$4\r\nkeys\r\n:{keys}\r\n$5\r\nbytes\r\n:{}\r\n\
             $10\r\nwire-bytes\r\n:{}\r\n$2\r\nms\r\n:3\r\n",
            mv.slots(),
            keys * 100,
            keys * 30
        );
        Answer::Raw(reply.into_bytes())
    }

    fn remove(&mut self, id: &str) -> Answer {
        if self.remove_try_again > 0 {
            self.remove_try_again -= 1;
            return raw("-TRYAGAIN leader changing\r\n");
        }
        let Ok(id) = id.parse::<ShardId>() else {
            return self.error("ERR bad node id");
        };
        match self.owners.get(&id).map(|r| count(r)) {
            Some(0) => {
                self.owners.remove(&id);
                self.removed.push(id);
                raw("+OK\r\n")
            }
            Some(n) => self.error(&format!("ERR shard {id} still owns {n} slots")),
            None => self.error(&format!("ERR unknown node {id}")),
        }
    }

    fn error(&mut self, text: &str) -> Answer {
        self.errors.push(text.to_string());
        raw(&format!("-{text}\r\n"))
    }
}

fn raw(text: &str) -> Answer {
    Answer::Raw(text.as_bytes().to_vec())
}

/// Two fake nodes sharing one cluster, listed after an address where nothing listens.
async fn start(cluster: Cluster) -> (Arc<Mutex<Cluster>>, Options) {
    let shared = Arc::new(Mutex::new(cluster));
    let mut servers = vec![dead_address()];
    for _ in 0..2 {
        let state = shared.clone();
        let node =
            FakeNode::start(move |words| state.lock().expect("cluster lock").answer(words)).await;
        servers.push(format!("127.0.0.1:{}", node.port));
    }
    // Batches of 256 (not the default 1024): several calls per run, so a retry or a lost
    // reply lands in the middle of one.
    let options = Options {
        pause: Duration::from_millis(10),
        stall_limit: Duration::from_secs(5),
        batch: 256,
        ..Options::new(servers)
    };
    (shared, options)
}

/// An address that refuses connections: a port just freed.
fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    format!("127.0.0.1:{port}")
}

/// Slot `s` in shard `(s mod n) + 1`, as a new cluster of `n` nodes starts.
fn initial(n: u64) -> Ownership {
    let mut owners = Ownership::new();
    for slot in 0..SLOTS {
        owners
            .entry(u64::from(slot) % n + 1)
            .or_default()
            .push((slot, slot));
    }
    owners
}

/// Every event, kept.
#[derive(Default)]
struct Record {
    start: Option<Start>,
    steps: Vec<Step>,
    retries: Vec<String>,
    removed: Vec<ShardId>,
    summary: Option<Summary>,
}

impl Progress for Record {
    fn start(&mut self, start: &Start) {
        self.start = Some(start.clone());
    }
    fn step(&mut self, step: &Step) {
        self.steps.push(*step);
    }
    fn retry(&mut self, reason: &str, _pause: Duration) {
        self.retries.push(reason.to_string());
    }
    fn removed(&mut self, id: ShardId) {
        self.removed.push(id);
    }
    fn finish(&mut self, summary: &Summary) {
        self.summary = Some(*summary);
    }
}

fn sizes(owners: &Ownership) -> Vec<usize> {
    counts(owners).into_iter().map(|(_, n)| n).collect()
}

#[tokio::test]
async fn rebalance_converges_through_a_try_again_and_a_dropped_connection() {
    let mut owners = initial(3);
    owners.insert(4, Vec::new());
    let (cluster, options) = start(Cluster {
        owners,
        keys_per_slot: 10,
        try_again: vec![2],
        drop_after: vec![5],
        ..Cluster::default()
    })
    .await;
    let mut record = Record::default();
    let summary = rebalance(&options, &mut record).await.expect("balanced");
    let cluster = cluster.lock().expect("cluster lock");
    assert_eq!(sizes(&cluster.owners), [3072; 4]);
    assert_eq!(cluster.errors, Vec::<String>::new(), "no call was refused");
    // 12 moves of 256, one TRYAGAIN; the dropped call had moved its slots: not sent again.
    assert_eq!(cluster.moves, 13);
    let start = record.start.expect("a plan");
    assert_eq!((start.slots, start.calls, start.removing), (3072, 12, None));
    assert_eq!(record.steps.len(), 11, "one reply lost");
    assert_eq!(record.retries.len(), 2, "{:?}", record.retries);
    assert!(
        record.retries[0].contains("TRYAGAIN"),
        "{:?}",
        record.retries
    );
    // The lost reply's slots count (CLUSTER SHARDS showed them moved), its keys do not.
    let keys = 10 * (3072 - 256);
    assert_eq!(
        summary.totals,
        Totals {
            slots: 3072,
            keys,
            bytes: keys * 100,
            wire_bytes: keys * 30,
        }
    );
    assert_eq!(record.summary, Some(summary));
    assert!(record
        .steps
        .iter()
        .all(|s| s.total_slots == 3072 && s.to == 4));
    let last = record.steps.last().expect("steps");
    assert_eq!(last.totals, summary.totals);
    assert!(
        record
            .steps
            .windows(2)
            .all(|w| w[0].totals.slots < w[1].totals.slots),
        "slots moved only grow"
    );
}

#[tokio::test]
async fn remove_node_empties_the_shard_then_removes_the_node() {
    let (cluster, options) = start(Cluster {
        owners: initial(4),
        keys_per_slot: 2,
        remove_try_again: 1,
        try_again: vec![3],
        ..Cluster::default()
    })
    .await;
    let options = Options {
        batch: 500,
        ..options
    };
    let mut record = Record::default();
    let summary = remove_node(&options, 2, &mut record)
        .await
        .expect("removed");
    let cluster = cluster.lock().expect("cluster lock");
    assert_eq!(cluster.removed, [2]);
    assert_eq!(
        cluster.owners.keys().copied().collect::<Vec<_>>(),
        [1, 3, 4]
    );
    assert_eq!(sizes(&cluster.owners), [4096; 3]);
    assert_eq!(cluster.errors, Vec::<String>::new());
    assert_eq!(record.removed, [2]);
    assert_eq!(record.start.expect("a plan").removing, Some(2));
    assert!(record
        .steps
        .iter()
        .all(|s| s.from == 2 && s.stats.slots <= 500));
    assert_eq!(summary.totals.slots, 3072);
    assert_eq!(summary.totals.keys, 2 * 3072);
}

#[tokio::test]
async fn a_balanced_cluster_moves_nothing() {
    let (cluster, options) = start(Cluster {
        owners: initial(5),
        ..Cluster::default()
    })
    .await;
    let mut record = Record::default();
    let summary = rebalance(&options, &mut record).await.expect("balanced");
    assert_eq!(summary.totals, Totals::default());
    assert_eq!(record.start.expect("a plan").calls, 0);
    assert_eq!(cluster.lock().expect("cluster lock").moves, 0);
}

#[tokio::test]
async fn an_unknown_shard_is_refused_before_any_move() {
    let (cluster, options) = start(Cluster {
        owners: initial(3),
        ..Cluster::default()
    })
    .await;
    let error = remove_node(&options, 7, &mut Record::default())
        .await
        .expect_err("no shard 7");
    assert_eq!(
        error.to_string(),
        "no shard 7 in the cluster (its shards: 1, 2, 3)"
    );
    assert_eq!(cluster.lock().expect("cluster lock").moves, 0);
}

#[tokio::test]
async fn an_error_reply_stops_the_run_without_a_retry() {
    let mut owners = initial(2);
    owners.insert(3, Vec::new());
    let (cluster, options) = start(Cluster {
        owners,
        refuse: Some("-ERR slot 0 is not owned by shard 1\r\n"),
        ..Cluster::default()
    })
    .await;
    let error = rebalance(&options, &mut Record::default())
        .await
        .expect_err("refused");
    assert!(
        matches!(&error, RebalanceError::Refused { reply, .. } if reply.contains("not owned")),
        "{error}"
    );
    assert!(error
        .to_string()
        .starts_with("CLUSTER MOVESLOTS 1 3 (256 slots from 0-0) refused"));
    assert_eq!(cluster.lock().expect("cluster lock").moves, 1);
}

#[tokio::test]
async fn endless_try_again_gives_up_after_the_stall_limit() {
    let mut owners = initial(2);
    owners.insert(3, Vec::new());
    let (_cluster, options) = start(Cluster {
        owners,
        try_again: (1..10_000).collect(),
        ..Cluster::default()
    })
    .await;
    let options = Options {
        // An attempt takes tens of milliseconds in a debug build (a 12288-range reply).
        stall_limit: Duration::from_secs(1),
        ..options
    };
    let mut record = Record::default();
    let error = rebalance(&options, &mut record).await.expect_err("stalled");
    assert!(
        matches!(&error, RebalanceError::Stalled { last, .. } if last.contains("TRYAGAIN")),
        "{error}"
    );
    assert!(record.retries.len() >= 2, "{:?}", record.retries);
    assert!(record.summary.is_none());
}

#[tokio::test]
async fn no_reachable_server_fails_at_once_and_a_plain_cluster_is_named() {
    let options = Options::new(vec![dead_address(), dead_address()]);
    let begun = Instant::now();
    let error = rebalance(&options, &mut Record::default())
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(error, RebalanceError::Unreachable { .. }),
        "{error}"
    );
    assert!(begun.elapsed() < Duration::from_secs(5));

    let (_cluster, options) = start(Cluster {
        plain: true,
        ..Cluster::default()
    })
    .await;
    let error = rebalance(&options, &mut Record::default())
        .await
        .expect_err("plain");
    assert!(error.to_string().contains("replicated cluster"), "{error}");
}

#[tokio::test]
async fn the_printer_writes_lines_a_script_can_parse() {
    let owners = Ownership::from([(1, vec![(0, SLOTS - 1)]), (2, vec![])]);
    let (_cluster, options) = start(Cluster {
        owners,
        keys_per_slot: 1,
        ..Cluster::default()
    })
    .await;
    let options = Options {
        batch: 2048,
        ..options
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut printer = Printer::new(&mut out, &mut err, false);
    rebalance(&options, &mut printer).await.expect("balanced");
    let out = String::from_utf8(out).expect("UTF-8");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(
        lines[0],
        "plan: move 6144 slots in 3 calls (shards: 1=12288 2=0)"
    );
    assert!(
        lines[1].starts_with(
            "moved 2048 slots 1 -> 2: keys=2048 bytes=204800 wire=61440 (2048/6144 slots, "
        ),
        "{out}"
    );
    assert!(lines[3].contains("(6144/6144 slots, 00:00 left)"), "{out}");
    let done: Vec<(&str, &str)> = lines[4]
        .strip_prefix("done: ")
        .expect("the summary last")
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let names: Vec<&str> = done.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        names,
        ["slots", "keys", "bytes", "wire", "seconds", "keys/s"]
    );
    assert_eq!(done[0].1, "6144");
    assert_eq!(done[1].1, "6144");
    assert!(err.is_empty());
}

#[test]
fn ownership_needs_every_slot_exactly_once_and_allows_id_gaps() {
    let fake = shards_value;
    let gap = Ownership::from([(1, vec![(0, 99)]), (3, vec![(100, SLOTS - 1)])]);
    assert_eq!(ownership(&fake(&gap), &[]), Ok(gap));
    let short = Ownership::from([(1, vec![(0, 99)])]);
    assert!(ownership(&fake(&short), &[])
        .expect_err("100 slots")
        .contains("gives 100 of the 12288 slots"));
    let twice = Ownership::from([(1, vec![(0, SLOTS - 1)]), (2, vec![(5, 5)])]);
    assert_eq!(
        ownership(&fake(&twice), &[]),
        Err("slot 5 is in shards 1 and 2".into())
    );
    assert!(ownership(&Reply::Array(vec![]), &[]).is_err());
}

#[test]
fn move_stats_read_maps_flat_arrays_and_ok() {
    let b = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
    let flat = Reply::Array(vec![
        b("slots"),
        Reply::Int(3),
        b("wire-bytes"),
        Reply::Int(9),
    ]);
    assert_eq!(
        move_stats(&flat),
        Some(MoveStats {
            slots: 3,
            wire_bytes: 9,
            ..MoveStats::default()
        })
    );
    let map = Reply::Map(vec![(b("keys"), Reply::Int(4))]);
    assert_eq!(move_stats(&map).map(|s| s.keys), Some(4));
    assert_eq!(move_stats(&Reply::ok()), Some(MoveStats::default()));
    assert_eq!(move_stats(&Reply::Int(1)), None);
    let negative = Reply::Array(vec![b("keys"), Reply::Int(-1)]);
    assert_eq!(move_stats(&negative), None);
}

/// A `CLUSTER SHARDS` reply for `owners`, as the client decodes it.
fn shards_value(owners: &Ownership) -> Reply {
    let b = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
    let shards = owners
        .iter()
        .map(|(id, ranges)| {
            let slots = ranges
                .iter()
                .flat_map(|&(s, e)| [Reply::Int(s.into()), Reply::Int(e.into())])
                .collect();
            let node = Reply::Array(vec![b("port"), Reply::Int(7001), b("role"), b("master")]);
            Reply::Array(vec![
                b("slots"),
                Reply::Array(slots),
                b("shard-index"),
                Reply::Int(*id as i64),
                b("nodes"),
                Reply::Array(vec![node]),
            ])
        })
        .collect();
    Reply::Array(shards)
}
