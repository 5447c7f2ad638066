//! The cluster bus over real sockets on ephemeral ports: three members of one group elect a
//! leader and replicate effect batches through `replication::bus`, a member whose bus stops is
//! unreachable while the others go on, a wrong password is refused before any RPC, bytes that
//! are not the bus's frames close only their own connection; the same over a TLS bus, which
//! refuses plain TCP peers and peers of another CA (and a plain bus refuses TLS clients).
//! Every wait is bounded; nothing sleeps to make an assertion true.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::pki::Pki;
use common::raft::agreed_leader;
use common::store::Dump;
use common::WAIT;
use minikv::effect::Effect;
use minikv::replication::bus::{self, wire, BusCaller, BusNetwork, BusTls, CallHandler, Groups};
use minikv::replication::bus::{Response, MAX_FRAME_BYTES};
use minikv::replication::{LogStore, NodeId, Raft, StateMachine};
use minikv::store::{clock, Store, Value};
use minikv::tls::{self, ClientTls};
use openraft::error::RPCError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::VoteRequest;
use openraft::{BasicNode, Config, Vote};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The group every test uses.
const GROUP: u64 = 7;

/// The first byte of a TLS alert record (content type 21).
const TLS_ALERT: u8 = 0x15;

/// One member: its Raft handle, its store, and its bus.
struct Member {
    raft: Raft,
    machine: StateMachine,
    addr: SocketAddr,
    groups: Groups,
    tls: Option<BusTls>,
    bus: Option<(CancellationToken, JoinHandle<()>)>,
}

/// Serves `groups` on `listener` in a task, answering calls with an echo; returns how to stop
/// it.
fn serve(
    listener: TcpListener,
    groups: Groups,
    password: Option<&str>,
    tls: Option<BusTls>,
) -> (CancellationToken, JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let echo: CallHandler = Arc::new(|payload| Box::pin(async move { payload }));
    let task = tokio::spawn(bus::run(
        listener,
        groups,
        password.map(Arc::from),
        tls,
        Some(echo),
        shutdown.clone(),
    ));
    (shutdown, task)
}

fn config() -> Arc<Config> {
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: 200,
        election_timeout_max: 400,
        ..Default::default()
    };
    Arc::new(config.validate().expect("valid raft config"))
}

/// Starts member `id` (not initialised) with its bus on an ephemeral port, over TLS with `tls`.
async fn member(id: NodeId, password: Option<&str>, tls: Option<BusTls>) -> Member {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind bus");
    let addr = listener.local_addr().expect("bus address");
    let machine = StateMachine::new(Arc::new(Store::new(2, 4)));
    let network = BusNetwork::new(GROUP, password.map(Arc::from), tls.clone());
    let raft = Raft::new(id, config(), network, LogStore::default(), machine.clone())
        .await
        .expect("member starts");
    let groups = Groups::default();
    groups.add(GROUP, raft.clone());
    let bus = serve(listener, groups.clone(), password, tls.clone());
    Member {
        raft,
        machine,
        addr,
        groups,
        tls,
        bus: Some(bus),
    }
}

/// Members 1, 2 and 3 over the bus (TLS with `tls`), initialised as one group.
async fn group(password: Option<&str>, tls: Option<BusTls>) -> BTreeMap<NodeId, Member> {
    let mut members = BTreeMap::new();
    for id in 1..=3 {
        members.insert(id, member(id, password, tls.clone()).await);
    }
    let nodes: BTreeMap<NodeId, BasicNode> = members
        .iter()
        .map(|(id, m)| (*id, BasicNode::new(m.addr)))
        .collect();
    members[&1]
        .raft
        .initialize(nodes)
        .await
        .expect("initialise");
    members
}

/// Writes `batch` through `leader`; returns the log index it was committed at.
async fn write(members: &BTreeMap<NodeId, Member>, leader: NodeId, batch: Vec<Effect>) -> u64 {
    let reply = members[&leader]
        .raft
        .client_write(batch.into())
        .await
        .expect("write commits");
    assert_eq!(reply.data.rejected, 0);
    reply.log_id.index
}

/// Waits until each of `ids` has applied `index`.
async fn applied(members: &BTreeMap<NodeId, Member>, ids: &[NodeId], index: u64) {
    for id in ids {
        members[id]
            .raft
            .wait(Some(WAIT))
            .applied_index_at_least(Some(index), "applied")
            .await
            .expect("member applies the write");
    }
}

/// Stops a member's bus: its listener and every connection it accepted are closed.
async fn stop_bus(member: &mut Member) {
    let (shutdown, task) = member.bus.take().expect("bus is running");
    shutdown.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("bus stops in time")
        .expect("bus task ends cleanly");
}

/// A batch of a few writes, numbered `n`: a plain key, a key with a TTL, a deleted key.
fn batch(n: u32) -> Vec<Effect> {
    let in_a_minute = clock::unix_ms() + 60_000;
    let put = |db, key: String, expires_at_ms| Effect::Put {
        db,
        key: Bytes::from(key),
        value: Value::String(Bytes::from(format!("v{n}"))),
        expires_at_ms,
    };
    vec![
        put(0, format!("k{n}"), None),
        put(1, format!("ttl{n}"), Some(in_a_minute)),
        put(0, format!("gone{n}"), None),
        Effect::Del {
            db: 0,
            key: Bytes::from(format!("gone{n}")),
        },
    ]
}

/// Waits until the bus closes `stream` (EOF or reset); fails if it stays open.
async fn closed_by_the_bus(mut stream: TcpStream) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .expect("the bus closes the connection in time");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the bus answered instead of closing: {read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_over_the_bus_elect_a_leader_and_replicate_batches() {
    let members = group(None, None).await;
    let leader = leader(&members, &[1, 2, 3]).await;
    let mut last = 0;
    for n in 0..20 {
        last = write(&members, leader, batch(n)).await;
    }
    last = last.max(write(&members, leader, vec![Effect::SwapDb { a: 0, b: 1 }]).await);
    applied(&members, &[1, 2, 3], last).await;
    let expected = dump(&members[&leader]);
    assert_eq!(expected.len(), 40);
    assert!(
        expected.contains_key(&(1, Bytes::from_static(b"k7"))),
        "swapped"
    );
    for (id, member) in &members {
        assert_eq!(dump(member), expected, "member {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_bus_is_stopped_is_unreachable_and_the_others_go_on() {
    let mut members = group(Some("secret"), None).await;
    let leader = leader(&members, &[1, 2, 3]).await;
    let first = write(&members, leader, batch(0)).await;
    applied(&members, &[1, 2, 3], first).await;

    let away = (1..=3).find(|id| *id != leader).expect("a follower");
    let other = (1..=3)
        .find(|id| *id != leader && *id != away)
        .expect("another follower");
    stop_bus(members.get_mut(&away).expect("member")).await;
    let mut last = 0;
    for n in 1..10 {
        last = write(&members, leader, batch(n)).await;
    }
    applied(&members, &[leader, other], last).await;
    let seen = members[&away].raft.metrics().borrow().last_applied;
    assert!(
        seen.is_none_or(|l| l.index < last),
        "nothing reached the member with no bus"
    );
    assert_eq!(dump(&members[&leader]), dump(&members[&other]));

    // Its bus comes back on the same address: the leader reconnects and it catches up.
    let member = members.get_mut(&away).expect("member");
    let listener = TcpListener::bind(member.addr).await.expect("rebind bus");
    member.bus = Some(serve(
        listener,
        member.groups.clone(),
        Some("secret"),
        member.tls.clone(),
    ));
    applied(&members, &[away], last).await;
    assert_eq!(dump(&members[&away]), dump(&members[&leader]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_and_no_rpc_is_served() {
    let target = member(1, Some("secret"), None).await;
    let node = BasicNode::new(target.addr);
    let vote = || VoteRequest::new(Vote::new(100, 9), None);
    let option = || RPCOption::new(WAIT);

    let mut wrong = BusNetwork::new(GROUP, Some(Arc::from("wrong")), None);
    let refused = wrong
        .new_client(1, &node)
        .await
        .vote(vote(), option())
        .await;
    assert!(
        matches!(refused, Err(RPCError::Unreachable(_))),
        "{refused:?}"
    );
    let mut none = BusNetwork::new(GROUP, None, None);
    let refused = none.new_client(1, &node).await.vote(vote(), option()).await;
    assert!(matches!(refused, Err(RPCError::Network(_))), "{refused:?}");
    assert_eq!(
        target.raft.metrics().borrow().current_term,
        0,
        "no vote request reached the member"
    );

    let mut right = BusNetwork::new(GROUP, Some(Arc::from("secret")), None);
    let granted = right
        .new_client(1, &node)
        .await
        .vote(vote(), option())
        .await
        .expect("served with the right password");
    assert!(granted.vote_granted);
    target
        .raft
        .wait(Some(WAIT))
        .metrics(|m| m.current_term == 100, "term 100")
        .await
        .expect("the vote request was served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_close_the_connection_and_the_bus_keeps_serving() {
    let members = group(None, None).await;
    let leader = leader(&members, &[1, 2, 3]).await;
    let target = (1..=3).find(|id| *id != leader).expect("a follower");
    let addr = members[&target].addr;

    // RESP instead of frames: its first four bytes read as a length far over the limit.
    let mut resp = TcpStream::connect(addr).await.expect("connect");
    resp.write_all(b"*1\r\n$4\r\nPING\r\n").await.expect("send");
    closed_by_the_bus(resp).await;

    // A well-formed frame that is not a request.
    let mut junk = TcpStream::connect(addr).await.expect("connect");
    junk.write_all(&[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o'])
        .await
        .expect("send");
    closed_by_the_bus(junk).await;

    // A well-formed frame that decodes as the wrong thing: a response sent to the bus.
    let mut wrong = TcpStream::connect(addr).await.expect("connect");
    let body = wire::encode(&Response::AuthOk).expect("encode");
    let length = u32::try_from(body.len()).expect("small frame");
    wrong
        .write_all(&[&length.to_be_bytes()[..], &body].concat())
        .await
        .expect("send");
    closed_by_the_bus(wrong).await;

    // A length prefix one byte over the limit: closed before the body is sent.
    let mut oversized = TcpStream::connect(addr).await.expect("connect");
    let length = u32::try_from(MAX_FRAME_BYTES + 1).expect("limit fits a u32");
    oversized
        .write_all(&length.to_be_bytes())
        .await
        .expect("send");
    closed_by_the_bus(oversized).await;

    // The member still serves its group.
    let mut last = 0;
    for n in 0..5 {
        last = write(&members, leader, batch(n)).await;
    }
    applied(&members, &[1, 2, 3], last).await;
    assert_eq!(dump(&members[&target]), dump(&members[&leader]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_over_a_tls_bus_elect_a_leader_and_replicate_batches() {
    let pki = Pki::new("minikv bus CA");
    let members = group(Some("secret"), Some(pki.bus())).await;
    let leader = leader(&members, &[1, 2, 3]).await;
    let mut last = 0;
    for n in 0..10 {
        last = write(&members, leader, batch(n)).await;
    }
    applied(&members, &[1, 2, 3], last).await;
    let expected = dump(&members[&leader]);
    assert_eq!(expected.len(), 20);
    for (id, member) in &members {
        assert_eq!(dump(member), expected, "member {id}");
    }
    // Calls travel the same TLS bus.
    let caller = BusCaller::new(Some(Arc::from("secret")), Some(pki.bus()));
    let addr = members[&leader].addr.to_string();
    let answer = caller
        .call(&addr, b"over tls".to_vec(), WAIT)
        .await
        .expect("call over TLS");
    assert_eq!(answer, b"over tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_peers_of_a_tls_bus_and_tls_peers_of_a_plain_bus_fail_cleanly() {
    let pki = Pki::new("minikv bus CA");
    let members = group(None, Some(pki.bus())).await;
    let leader = leader(&members, &[1, 2, 3]).await;
    let target = (1..=3).find(|id| *id != leader).expect("a follower");
    let node = BasicNode::new(members[&target].addr);
    let vote = || VoteRequest::new(Vote::new(100, 9), None);
    let option = || RPCOption::new(WAIT);
    let mut refused = Vec::new();

    // A plain client of the TLS bus: its frame is not a TLS handshake.
    let mut plain = BusNetwork::new(GROUP, None, None);
    refused.push(
        plain
            .new_client(1, &node)
            .await
            .vote(vote(), option())
            .await,
    );
    // A TLS client whose certificate another CA signed: each side refuses the other.
    let stranger = Pki::new("another CA");
    let mut foreign = BusNetwork::new(GROUP, None, Some(stranger.bus()));
    refused.push(
        foreign
            .new_client(1, &node)
            .await
            .vote(vote(), option())
            .await,
    );
    // A client that trusts the bus but presents another CA's certificate, or none: the bus
    // requires a client certificate of its own CA.
    for (cert, key) in [
        (Some(stranger.cert.clone()), Some(stranger.key.clone())),
        (None, None),
    ] {
        let client = tls::client_config(&ClientTls {
            ca: pki.ca.clone(),
            cert,
            key,
        })
        .expect("client TLS config");
        let server = tls::server_config(&stranger.node()).expect("server TLS config");
        let half = BusTls::from_configs(server, client);
        let mut half = BusNetwork::new(GROUP, None, Some(half));
        refused.push(half.new_client(1, &node).await.vote(vote(), option()).await);
    }
    for outcome in &refused {
        assert!(outcome.is_err(), "{outcome:?}");
    }
    // A raw frame: answered with a TLS alert at most, then closed.
    let mut raw = TcpStream::connect(members[&target].addr)
        .await
        .expect("connect");
    raw.write_all(&[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o'])
        .await
        .expect("send");
    let mut received = Vec::new();
    let read = tokio::time::timeout(WAIT, raw.read_to_end(&mut received))
        .await
        .expect("the bus closes the connection in time");
    assert!(
        received.is_empty() || (read.is_ok() && received[0] == TLS_ALERT),
        "the bus answered a plain frame: {received:?}"
    );
    let caller = BusCaller::new(None, None);
    let called = caller
        .call(&members[&target].addr.to_string(), b"x".to_vec(), WAIT)
        .await;
    assert!(called.is_err(), "{called:?}");
    assert!(
        members[&target].raft.metrics().borrow().current_term < 100,
        "no refused vote reached the member"
    );

    // A TLS client of a plain bus: the bus reads its handshake as a frame far over the limit.
    let lone = member(4, None, None).await;
    let mut tls = BusNetwork::new(GROUP, None, Some(pki.bus()));
    let node4 = BasicNode::new(lone.addr);
    let outcome = tls.new_client(4, &node4).await.vote(vote(), option()).await;
    assert!(outcome.is_err(), "{outcome:?}");
    let caller = BusCaller::new(None, Some(pki.bus()));
    let called = caller
        .call(&lone.addr.to_string(), b"x".to_vec(), WAIT)
        .await;
    assert!(called.is_err(), "{called:?}");

    // Both buses go on serving their own kind of peer.
    let mut last = 0;
    for n in 0..5 {
        last = write(&members, leader, batch(n)).await;
    }
    applied(&members, &[1, 2, 3], last).await;
    assert_eq!(dump(&members[&target]), dump(&members[&leader]));
    let mut plain = BusNetwork::new(GROUP, None, None);
    let granted = plain
        .new_client(4, &node4)
        .await
        .vote(vote(), option())
        .await
        .expect("the plain bus serves a plain client");
    assert!(granted.vote_granted);
}

/// The leader every member in `among` agrees on, waited for.
async fn leader(members: &BTreeMap<NodeId, Member>, among: &[NodeId]) -> NodeId {
    agreed_leader(among, |id| &members[&id].raft).await
}

/// Every live entry of a member's store.
fn dump(member: &Member) -> Dump {
    common::store::dump(member.machine.store())
}
