//! Every message the bus sends round-trips through `encode`/`decode`; garbage, a message of the
//! wrong kind and trailing bytes are errors, never panics; and the sizes of frames against the
//! JSON the bus used before (printed with `--nocapture`, see docs/performance.md).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use openraft::error::{Fatal, InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta,
    SnapshotSegmentId, StorageError, StoredMembership, Vote,
};
use openraft::{ErrorSubject, ErrorVerb};

use super::super::{Request, Response};
use super::{decode, encode, Message, REQUEST_TAG, RESPONSE_TAG};
use crate::effect::Effect;
use crate::replication::types::{Batch, NodeId};
use crate::store::Value;

#[test]
fn every_request_round_trips() {
    for request in requests() {
        round_trip(&request);
    }
}

#[test]
fn every_response_round_trips() {
    for response in responses() {
        round_trip(&response);
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut frames: Vec<Vec<u8>> = vec![
        vec![],
        b"hello".to_vec(),
        b"{\"Vote\":{\"group\":1}}".to_vec(),
        vec![0xff, 0xfe],
        vec![REQUEST_TAG],
        vec![
            REQUEST_TAG,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
        ],
        // A call whose length claims far more bytes than follow.
        vec![REQUEST_TAG, 5, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3],
        // A variant past the last one.
        vec![REQUEST_TAG, 99],
    ];
    // Every request cut short at each length.
    for request in requests() {
        let whole = encode(&request).expect("encodes");
        frames.extend((0..whole.len()).map(|n| whole[..n].to_vec()));
    }
    for frame in frames {
        assert!(decode::<Request>(&frame).is_err(), "{frame:?} decoded");
    }
}

#[test]
fn a_message_of_the_other_kind_or_with_bytes_left_over_is_refused() {
    for response in responses() {
        let frame = encode(&response).expect("encodes");
        assert!(
            decode::<Request>(&frame).is_err(),
            "{response:?} read as a request"
        );
        // Even with the request tag: the body is only accepted if it is a whole request.
        let mut retagged = frame.clone();
        retagged[0] = REQUEST_TAG;
        if let Ok(request) = decode::<Request>(&retagged) {
            // Some responses happen to be valid requests byte for byte (AuthOk is variant 0,
            // like Auth with an empty password); the tag is what keeps them apart.
            assert_eq!(encode(&request).expect("encodes"), retagged);
        }
    }
    for request in requests() {
        let mut frame = encode(&request).expect("encodes");
        assert!(
            decode::<Response>(&frame).is_err(),
            "{request:?} read as a response"
        );
        frame.push(0);
        assert!(decode::<Request>(&frame).is_err(), "trailing byte accepted");
    }
    assert_ne!(REQUEST_TAG, RESPONSE_TAG);
}

/// Bytes per frame body, JSON (the format before) against binary, for an append of 100 SETs of
/// 16-byte keys and 64-byte values and for a 1 MiB snapshot chunk of random bytes:
/// `cargo test --lib frame_sizes_json_against_binary -- --nocapture`.
#[test]
fn frame_sizes_json_against_binary() {
    let append = Request::AppendEntries {
        group: 1,
        rpc: append_of_sets(100, 16, 64, false),
    };
    let mut chunk = vec![0u8; 1 << 20];
    chunk.fill_with(|| fastrand::u8(..));
    let snapshot = Request::InstallSnapshot {
        group: 1,
        rpc: snapshot_chunk(chunk),
    };
    for (what, request) in [
        ("AppendEntries, 100 SETs (16 B keys, 64 B values)", append),
        ("InstallSnapshot, 1 MiB chunk", snapshot),
    ] {
        let json = serde_json::to_vec(&request).expect("JSON").len();
        let binary = encode(&request).expect("binary").len();
        println!(
            "{what}: JSON {json} B, binary {binary} B, JSON/binary {:.2}",
            json as f64 / binary as f64
        );
        assert!(
            binary * 2 < json,
            "{what}: binary {binary} B, JSON {json} B"
        );
    }
}

/// Encodes, decodes and encodes again: the same bytes and the same message.
fn round_trip<T: Message + std::fmt::Debug>(message: &T) {
    let bytes = encode(message).expect("encodes");
    let back: T = decode(&bytes).expect("decodes");
    assert_eq!(format!("{back:?}"), format!("{message:?}"));
    assert_eq!(encode(&back).expect("encodes again"), bytes);
}

fn requests() -> Vec<Request> {
    vec![
        Request::Auth {
            password: "secret".into(),
        },
        Request::AppendEntries {
            group: 7,
            rpc: append_of_sets(3, 16, 64, true),
        },
        Request::AppendEntries {
            group: u64::MAX,
            rpc: AppendEntriesRequest {
                vote: Vote::new(1, 1),
                prev_log_id: None,
                entries: vec![],
                leader_commit: None,
            },
        },
        Request::Vote {
            group: 7,
            rpc: VoteRequest::new(Vote::new(5, 2), Some(log_id(4, 10))),
        },
        Request::InstallSnapshot {
            group: 7,
            rpc: snapshot_chunk(vec![0, 1, 2, 255]),
        },
        Request::Call { payload: vec![] },
        Request::Call {
            payload: b"GET k".to_vec(),
        },
    ]
}

fn responses() -> Vec<Response> {
    let stopped = || RaftError::<NodeId>::Fatal(Fatal::Stopped);
    let storage = StorageError::from_io_error(
        ErrorSubject::Apply(log_id(3, 4)),
        ErrorVerb::Write,
        std::io::Error::other("disk full"),
    );
    vec![
        Response::AuthOk,
        Response::AppendEntries(Ok(AppendEntriesResponse::Success)),
        Response::AppendEntries(Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(
            3, 9,
        ))))),
        Response::AppendEntries(Ok(AppendEntriesResponse::Conflict)),
        Response::AppendEntries(Ok(AppendEntriesResponse::HigherVote(Vote::new(9, 3)))),
        Response::AppendEntries(Err(stopped())),
        Response::AppendEntries(Err(RaftError::Fatal(Fatal::Panicked))),
        Response::AppendEntries(Err(RaftError::Fatal(Fatal::StorageError(storage)))),
        Response::Vote(Ok(VoteResponse::new(
            Vote::new_committed(5, 2),
            Some(log_id(4, 10)),
            true,
        ))),
        Response::Vote(Err(stopped())),
        Response::InstallSnapshot(Ok(InstallSnapshotResponse {
            vote: Vote::new_committed(5, 2),
        })),
        Response::InstallSnapshot(Err(RaftError::APIError(
            InstallSnapshotError::SnapshotMismatch(SnapshotMismatch {
                expect: SnapshotSegmentId {
                    id: "s-1".into(),
                    offset: 0,
                },
                got: SnapshotSegmentId {
                    id: "s-2".into(),
                    offset: 4096,
                },
            }),
        ))),
        Response::UnknownGroup(42),
        Response::Call(vec![]),
        Response::Call(b"+OK\r\n".to_vec()),
        Response::NoCallHandler,
    ]
}

/// An append of `sets` entries of one SET each (`key_len`-byte keys, `value_len`-byte values,
/// the first with a TTL) as a leader proposes them; with `every_kind`, also a blank entry, a
/// membership and a batch of the other effects.
fn append_of_sets(
    sets: usize,
    key_len: usize,
    value_len: usize,
    every_kind: bool,
) -> AppendEntriesRequest<crate::replication::TypeConfig> {
    let mut entries = Vec::new();
    if every_kind {
        entries.push(Entry {
            log_id: log_id(3, 1),
            payload: EntryPayload::Blank,
        });
        entries.push(Entry {
            log_id: log_id(3, 2),
            payload: EntryPayload::Membership(membership()),
        });
    }
    let first = entries.len() as u64 + 1;
    entries.extend((0..sets).map(|i| {
        let key = format!("{i:0key_len$}");
        let value = "v".repeat(value_len);
        let effect = Effect::Put {
            db: 0,
            key: Bytes::from(key),
            value: Value::String(Bytes::from(value)),
            expires_at_ms: (i == 0).then_some(1_700_000_000_000),
        };
        Entry {
            log_id: log_id(3, first + i as u64),
            payload: EntryPayload::Normal(Batch {
                origin: 0x1234_5678_9abc_def0,
                seq: i as u64 + 1,
                effects: vec![effect],
            }),
        }
    }));
    if every_kind {
        entries.push(Entry {
            log_id: log_id(3, first + sets as u64),
            payload: EntryPayload::Normal(Batch::of(vec![
                Effect::Del {
                    db: 1,
                    key: Bytes::from_static(b"gone"),
                },
                Effect::SwapDb { a: 0, b: 1 },
            ])),
        });
    }
    AppendEntriesRequest {
        vote: Vote::new_committed(3, 1),
        prev_log_id: Some(log_id(2, 0)),
        entries,
        leader_commit: Some(log_id(3, 1)),
    }
}

fn snapshot_chunk(data: Vec<u8>) -> InstallSnapshotRequest<crate::replication::TypeConfig> {
    InstallSnapshotRequest {
        vote: Vote::new_committed(3, 1),
        meta: SnapshotMeta {
            last_log_id: Some(log_id(3, 500)),
            last_membership: StoredMembership::new(Some(log_id(3, 2)), membership()),
            snapshot_id: "3-1-500-1".into(),
        },
        offset: 0,
        data,
        done: false,
    }
}

fn membership() -> Membership<NodeId, BasicNode> {
    let nodes: BTreeMap<NodeId, BasicNode> = (1..=3)
        .map(|id| (id, BasicNode::new(format!("127.0.0.1:{}", 17000 + id))))
        .collect();
    let voters: BTreeSet<NodeId> = nodes.keys().copied().collect();
    Membership::new(vec![voters], nodes)
}

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}
