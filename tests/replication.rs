//! One Raft group of three in-process members (openraft over `replication::Router`): effect
//! batches written through the leader reach every store, a new leader takes over when the
//! leader stops, and a member that was away catches up from the log or from a snapshot.
//! Every wait is bounded; nothing sleeps to make an assertion true.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use common::raft::agreed_leader;
use common::store::{dump, Dump};
use common::WAIT;
use minikv::effect::Effect;
use minikv::replication::{self, LogStore, NodeId, Raft, Router, StateMachine};
use minikv::store::{clock, Store, Value};
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, Config};

/// Three members, their stores, logs and state machines, and the network between them.
struct Group {
    config: Arc<Config>,
    router: Router,
    rafts: BTreeMap<NodeId, Raft>,
    logs: BTreeMap<NodeId, LogStore>,
    machines: BTreeMap<NodeId, StateMachine>,
}

impl Group {
    /// Members 1, 2 and 3 over in-memory logs, initialised as one cluster; returns once one
    /// of them leads.
    async fn start() -> Group {
        Group::start_with(vec![
            LogStore::default(),
            LogStore::default(),
            LogStore::default(),
        ])
        .await
    }

    /// Members 1, 2 and 3 over `logs` (in id order), initialised as one cluster; returns once
    /// one of them leads.
    async fn start_with(logs: Vec<LogStore>) -> Group {
        let config = Config {
            heartbeat_interval: 50,
            election_timeout_min: 200,
            election_timeout_max: 400,
            ..Default::default()
        };
        let config = Arc::new(config.validate().expect("valid raft config"));
        let router = Router::default();
        let mut group = Group {
            config,
            router,
            rafts: BTreeMap::new(),
            logs: BTreeMap::new(),
            machines: BTreeMap::new(),
        };
        for (id, log) in (1..=3).zip(logs) {
            let sm = StateMachine::new(Arc::new(Store::new(2, 4)));
            let raft = replication::restart(
                id,
                group.config.clone(),
                log.clone(),
                sm.clone(),
                &group.router,
            )
            .await
            .expect("member starts");
            group.rafts.insert(id, raft);
            group.logs.insert(id, log);
            group.machines.insert(id, sm);
        }
        let members: BTreeMap<NodeId, BasicNode> =
            (1..=3).map(|id| (id, BasicNode::default())).collect();
        group.rafts[&1]
            .initialize(members)
            .await
            .expect("initialise");
        group.leader(&[1, 2, 3]).await;
        group
    }

    /// The leader that every member in `among` agrees on, waited for.
    async fn leader(&self, among: &[NodeId]) -> NodeId {
        agreed_leader(among, |id| &self.rafts[&id]).await
    }

    /// Writes `batch` through `leader`; returns the log index it was committed at.
    async fn write(&self, leader: NodeId, batch: Vec<Effect>) -> u64 {
        let reply = self.rafts[&leader]
            .client_write(batch.into())
            .await
            .expect("write commits");
        assert_eq!(reply.data.rejected, 0);
        reply.log_id.index
    }

    /// Waits until each of `ids` has applied `index`.
    async fn applied(&self, ids: &[NodeId], index: u64) {
        for id in ids {
            self.rafts[id]
                .wait(Some(WAIT))
                .applied_index_at_least(Some(index), "applied")
                .await
                .expect("member applies the write");
        }
    }

    fn dump(&self, id: NodeId) -> Dump {
        dump(self.machines[&id].store())
    }

    /// Stops `id` (shut down and unreachable); its log and state machine are kept.
    async fn stop(&mut self, id: NodeId) {
        self.router.remove(id);
        let raft = self.rafts.remove(&id).expect("member is running");
        raft.shutdown().await.expect("member stops");
    }

    /// Starts `id` again over `log` and an empty store, as a new process would after a
    /// restart that kept the member's raft directory (the store is rebuilt from the log).
    async fn restart_from(&mut self, id: NodeId, log: LogStore) {
        let sm = StateMachine::new(Arc::new(Store::new(2, 4)));
        self.logs.insert(id, log);
        self.machines.insert(id, sm);
        self.restart(id).await;
    }

    /// Starts `id` again over the log and state machine it had.
    async fn restart(&mut self, id: NodeId) {
        let raft = replication::restart(
            id,
            self.config.clone(),
            self.logs[&id].clone(),
            self.machines[&id].clone(),
            &self.router,
        )
        .await
        .expect("member restarts");
        self.rafts.insert(id, raft);
    }
}

fn put(db: usize, key: &str, value: &str, expires_at_ms: Option<i64>) -> Effect {
    Effect::Put {
        db,
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Value::String(Bytes::copy_from_slice(value.as_bytes())),
        expires_at_ms,
    }
}

/// A batch of a few writes of every per-key kind, numbered `n`.
fn batch(n: u32) -> Vec<Effect> {
    let in_a_minute = clock::unix_ms() + 60_000;
    vec![
        put(0, &format!("k{n}"), &format!("v{n}"), None),
        put(1, &format!("ttl{n}"), "x", Some(in_a_minute)),
        put(0, &format!("gone{n}"), "x", None),
        Effect::Del {
            db: 0,
            key: Bytes::from(format!("gone{n}")),
        },
        Effect::Expire {
            db: 0,
            key: Bytes::from(format!("k{n}")),
            expires_at_ms: Some(in_a_minute + i64::from(n)),
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_the_leader_reach_every_member() {
    let group = Group::start().await;
    let leader = group.leader(&[1, 2, 3]).await;
    let mut last = 0;
    for n in 0..20 {
        last = group.write(leader, batch(n)).await;
    }
    last = last.max(
        group
            .write(leader, vec![Effect::SwapDb { a: 0, b: 1 }])
            .await,
    );
    group.applied(&[1, 2, 3], last).await;
    let expected = group.dump(leader);
    assert_eq!(expected.len(), 40, "20 keys with a TTL in each database");
    assert!(
        expected.contains_key(&(1, Bytes::from_static(b"k7"))),
        "swapped"
    );
    for id in 1..=3 {
        assert_eq!(group.dump(id), expected, "member {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_is_elected_when_the_leader_stops_and_writes_go_on() {
    let mut group = Group::start().await;
    let old = group.leader(&[1, 2, 3]).await;
    let first = group.write(old, batch(0)).await;
    group.applied(&[1, 2, 3], first).await;

    group.stop(old).await;
    let rest: Vec<NodeId> = (1..=3).filter(|id| *id != old).collect();
    let new = group.leader(&rest).await;
    assert_ne!(new, old);
    let last = group.write(new, batch(1)).await;
    group.applied(&rest, last).await;
    let expected = group.dump(new);
    assert_eq!(expected.len(), 4);
    for id in &rest {
        assert_eq!(group.dump(*id), expected, "member {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_was_down_catches_up_from_the_log() {
    let mut group = Group::start().await;
    let leader = group.leader(&[1, 2, 3]).await;
    let away = (1..=3).find(|id| *id != leader).expect("a follower");
    group.stop(away).await;
    let mut last = 0;
    for n in 0..10 {
        last = group.write(leader, batch(n)).await;
    }
    assert!(
        group.dump(away).len() < group.dump(leader).len(),
        "it missed writes"
    );

    group.restart(away).await;
    group.applied(&[1, 2, 3], last).await;
    let expected = group.dump(leader);
    assert_eq!(group.dump(away), expected);
    let snapshot = group.rafts[&away].metrics().borrow().snapshot;
    assert_eq!(snapshot, None, "caught up from the log, without a snapshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_was_down_catches_up_from_a_snapshot_after_a_purge() {
    let group = Group::start().await;
    catches_up_from_a_snapshot_after_a_purge(group).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_logs_purge_their_files_and_a_member_catches_up_from_a_snapshot() {
    let (dirs, logs) = durable_logs().await;
    let group = Group::start_with(logs).await;
    let (mut group, leader) = catches_up_from_a_snapshot_after_a_purge(group).await;

    // The purge reached the leader's files: stopped and reopened, its log starts after the
    // snapshot.
    group.stop(leader).await;
    let mut log = LogStore::open(dirs[(leader - 1) as usize].path())
        .await
        .expect("log reopens");
    let state = log.get_log_state().await.expect("log state");
    let purged = state.last_purged_log_id.expect("purged");
    assert!(log.len() < 3, "the purged entries are gone from the file");
    assert!(
        state.last_log_id > Some(purged),
        "the write after the purge is kept"
    );
}

/// Stops a follower, writes, snapshots and purges the leader, restarts the follower (which
/// needs the snapshot) and writes again; returns the group and its leader.
async fn catches_up_from_a_snapshot_after_a_purge(mut group: Group) -> (Group, NodeId) {
    let leader = group.leader(&[1, 2, 3]).await;
    let away = (1..=3).find(|id| *id != leader).expect("a follower");
    group.stop(away).await;
    let mut last = 0;
    for n in 0..10 {
        last = group.write(leader, batch(n)).await;
    }
    last = last.max(group.write(leader, vec![Effect::FlushDb { db: 1 }]).await);

    // Snapshot the leader and drop its log up to the snapshot, so the log no longer has
    // what the member missed.
    let raft = &group.rafts[&leader];
    raft.trigger().snapshot().await.expect("trigger snapshot");
    let m = raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last),
            "snapshot built",
        )
        .await
        .expect("the leader builds a snapshot");
    let covered = m.snapshot.expect("checked above");
    raft.trigger()
        .purge_log(covered.index)
        .await
        .expect("trigger purge");
    raft.wait(Some(WAIT))
        .purged(Some(covered), "purged")
        .await
        .expect("the leader purges its log");
    assert!(group.logs[&leader].len() < 3, "the log was purged");

    group.restart(away).await;
    group.applied(&[away], last).await;
    let got = group.rafts[&away]
        .wait(Some(WAIT))
        .metrics(|m| m.snapshot.is_some(), "snapshot installed")
        .await
        .expect("the member installs a snapshot");
    assert_eq!(got.snapshot, Some(covered));
    let expected = group.dump(leader);
    assert_eq!(expected.len(), 10, "db 1 was flushed");
    assert_eq!(group.dump(away), expected);

    // And it keeps following after the snapshot.
    let next = group.write(leader, batch(99)).await;
    group.applied(&[1, 2, 3], next).await;
    let expected = group.dump(leader);
    assert_eq!(expected.len(), 12);
    for id in 1..=3 {
        assert_eq!(group.dump(id), expected, "member {id}");
    }
    (group, leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restarted_from_its_directory_keeps_its_vote_and_log_and_catches_up() {
    let (dirs, logs) = durable_logs().await;
    let mut group = Group::start_with(logs).await;
    let leader = group.leader(&[1, 2, 3]).await;
    let away = (1..=3).find(|id| *id != leader).expect("a follower");
    let mut last = 0;
    for n in 0..5 {
        last = group.write(leader, batch(n)).await;
    }
    group.applied(&[1, 2, 3], last).await;
    let vote = group.rafts[&away].metrics().borrow().vote;

    // Stop it and forget everything it had in memory: its log and its store.
    group.stop(away).await;
    let kept = group.logs.remove(&away).expect("its log").len();
    group.machines.remove(&away);
    assert!(kept > 5, "the log holds the writes");
    for n in 5..10 {
        last = group.write(leader, batch(n)).await;
    }

    let mut log = LogStore::open(dirs[(away - 1) as usize].path())
        .await
        .expect("log reopens");
    assert_eq!(log.read_vote().await.expect("vote"), Some(vote));
    assert_eq!(log.len(), kept, "every entry came back");
    group.restart_from(away, log).await;
    group.applied(&[1, 2, 3], last).await;
    let expected = group.dump(leader);
    assert_eq!(expected.len(), 20);
    assert_eq!(group.dump(away), expected);
    let snapshot = group.rafts[&away].metrics().borrow().snapshot;
    assert_eq!(snapshot, None, "caught up from the log, without a snapshot");
}

/// Three durable logs, each in its own temporary directory (kept alive by the caller).
async fn durable_logs() -> (Vec<tempfile::TempDir>, Vec<LogStore>) {
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let mut logs = Vec::new();
    for dir in &dirs {
        logs.push(LogStore::open(dir.path()).await.expect("log opens"));
    }
    (dirs, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reset_to_its_snapshot_reapplies_the_committed_log_after_it() {
    let mut group = Group::start().await;
    let leader = group.leader(&[1, 2, 3]).await;
    let member = (1..=3).find(|id| *id != leader).expect("a follower");
    let mut last = 0;
    for n in 0..5 {
        last = group.write(leader, batch(n)).await;
    }
    group.applied(&[1, 2, 3], last).await;
    let raft = &group.rafts[&member];
    raft.trigger().snapshot().await.expect("trigger snapshot");
    let covered = raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last),
            "snapshot built",
        )
        .await
        .expect("the member builds a snapshot")
        .snapshot;
    let at_snapshot = group.dump(member);
    for n in 5..10 {
        last = group.write(leader, batch(n)).await;
    }
    group.applied(&[1, 2, 3], last).await;

    // As if it had led and run a command that never committed: a write only its store has.
    group.stop(member).await;
    let store = group.machines[&member].store().clone();
    let db = store.db(0).expect("db 0");
    let now = tokio::time::Instant::now();
    db.shard(b"uncommitted")
        .put(b"uncommitted", b"x", None, now);
    group.machines[&member].reset().await.expect("resets");
    assert_eq!(group.dump(member), at_snapshot, "back to the snapshot");

    group.restart(member).await;
    group.applied(&[member], last).await;
    let expected = group.dump(leader);
    assert_eq!(expected.len(), 20);
    assert_eq!(group.dump(member), expected);
    let snapshot = group.rafts[&member].metrics().borrow().snapshot;
    assert_eq!(snapshot, covered, "the snapshot it was reset to");

    let next = group.write(leader, batch(99)).await;
    group.applied(&[1, 2, 3], next).await;
    assert_eq!(group.dump(member), group.dump(leader));
}
