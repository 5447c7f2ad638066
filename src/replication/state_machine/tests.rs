use std::time::Duration;

use openraft::CommittedLeaderId;

use super::*;
use crate::client::router::node_for;
use crate::replication::types::Batch;

type Contents = Vec<(usize, Bytes, crate::store::Value, Option<i64>)>;

fn contents(store: &Store) -> Contents {
    let now = Instant::now();
    let mut all: Vec<_> = (0..store.dbs().len())
        .flat_map(|i| {
            let db = store.db(i).expect("db");
            db.export(now)
                .into_iter()
                .map(move |(k, e)| (i, k, e.value, e.deadline.map(clock::unix_ms_at)))
        })
        .collect();
    all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    all
}

/// The entries of `contents` whose key group `group` of 3 owns.
fn of_group(contents: &Contents, group: usize) -> Contents {
    contents
        .iter()
        .filter(|e| node_for(&e.1, 3) == group)
        .cloned()
        .collect()
}

fn put(store: &Store, db: usize, key: &str, value: &str) {
    let now = Instant::now();
    let db = store.db(db).expect("db");
    db.shard(key.as_bytes())
        .put(key.as_bytes(), value.as_bytes(), None, now);
}

/// A store with 60 keys in each of databases 0 and 1, spread over 3 groups.
fn filled(value: &str) -> Arc<Store> {
    let store = Arc::new(Store::new(2, 4));
    for i in 0..60 {
        put(&store, i % 2, &format!("k{i}"), value);
    }
    store
}

fn entry(index: u64, batch: Batch) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(batch),
    }
}

fn put_effect(key: &str, value: &str) -> Effect {
    Effect::Put {
        db: 0,
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: crate::store::Value::String(Bytes::copy_from_slice(value.as_bytes())),
        expires_at_ms: None,
    }
}

/// A key of `group` of 3, distinct for each `n`.
fn key_of(group: usize, n: usize) -> String {
    (0..)
        .map(|i| format!("key{i}"))
        .filter(|k| node_for(k.as_bytes(), 3) == group)
        .nth(n)
        .expect("keys of every group exist")
}

async fn build(sm: &mut StateMachine) -> Snapshot<TypeConfig> {
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("builds")
}

#[tokio::test]
async fn a_snapshot_installs_the_same_contents_over_old_ones() {
    let now = Instant::now();
    let source = Arc::new(Store::new(2, 4));
    for i in 0..50 {
        let key = format!("k{i}");
        let deadline = (i % 3 == 0).then(|| now + Duration::from_secs(60));
        let db = source.db(i % 2).expect("db");
        db.shard(key.as_bytes())
            .put(key.as_bytes(), b"value \xff", deadline, now);
    }
    let mut from = StateMachine::new(source.clone());
    let snapshot = build(&mut from).await;

    let target = Arc::new(Store::new(2, 4));
    put(&target, 1, "stale", "x");
    let mut to = StateMachine::new(target.clone());
    to.install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .expect("installs");
    assert_eq!(contents(&target), contents(&source));
    assert_eq!(contents(&target).len(), 50);
    let current = to.get_current_snapshot().await.expect("reads");
    assert_eq!(current.map(|s| s.meta), Some(snapshot.meta));
}

#[tokio::test]
async fn a_snapshot_that_does_not_decode_is_an_error_not_a_panic() {
    let store = Arc::new(Store::new(1, 1));
    put(&store, 0, "k", "v");
    let mut sm = StateMachine::new(store.clone());
    let list = Image {
        dbs: vec![DbImage {
            db: 0,
            entries: vec![EntryImage {
                key: Bytes::from_static(&[1]),
                kind: "list".into(),
                data: Bytes::new(),
                expires_at_ms: None,
            }],
        }],
        slots: None,
    };
    for bad in [
        b"not a frame".to_vec(),
        snapshot::compress(b"not an image").expect("compresses"),
        snapshot::encode(&list).expect("encodes"),
    ] {
        let data = Box::new(Cursor::new(bad));
        let meta = SnapshotMeta::default();
        assert!(sm.install_snapshot(&meta, data).await.is_err());
    }
    assert_eq!(contents(&store).len(), 1, "a bad snapshot changes nothing");
}

#[tokio::test]
async fn a_group_snapshot_holds_and_replaces_only_the_groups_keys() {
    let source = filled("new");
    let mut from = StateMachine::group(
        source.clone(),
        Scope::standalone(&source, 1, 3),
        Arc::default(),
    );
    let snapshot = build(&mut from).await;
    let image = snapshot::decode(snapshot.snapshot.get_ref()).expect("decodes");
    let keys: Vec<_> = image.dbs.iter().flat_map(|d| &d.entries).collect();
    assert_eq!(keys.len(), of_group(&contents(&source), 1).len());
    assert!(keys.iter().all(|e| node_for(&e.key, 3) == 1));

    // The target has other values for every group's keys, and a group-1 key the source
    // lacks: only group 1 changes, to exactly the source's.
    let target = filled("old");
    put(&target, 0, &key_of(1, 1000), "stale");
    let before = contents(&target);
    let mut to = StateMachine::group(
        target.clone(),
        Scope::standalone(&target, 1, 3),
        Arc::default(),
    );
    to.install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .expect("installs");
    let after = contents(&target);
    assert_eq!(of_group(&after, 1), of_group(&contents(&source), 1));
    for other in [0, 2] {
        assert_eq!(of_group(&after, other), of_group(&before, other));
    }
}

#[tokio::test]
async fn an_image_with_a_key_of_another_group_is_refused_whole() {
    let source = filled("new");
    let snapshot = build(&mut StateMachine::new(source)).await;
    let target = filled("old");
    let before = contents(&target);
    let mut to = StateMachine::group(
        target.clone(),
        Scope::standalone(&target, 2, 3),
        Arc::default(),
    );
    let err = to
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("which group 3 does not hold"),
        "{err}"
    );
    assert_eq!(contents(&target), before);
}

#[tokio::test]
async fn flushes_in_a_group_remove_its_keys_only_and_swapdb_is_rejected() {
    let store = filled("v");
    let before = contents(&store);
    let mut sm = StateMachine::group(
        store.clone(),
        Scope::standalone(&store, 0, 3),
        Arc::default(),
    );
    let batch = Batch::of(vec![
        Effect::FlushDb { db: 1 },
        Effect::SwapDb { a: 0, b: 1 },
        put_effect(&key_of(2, 0), "x"),
        put_effect(&key_of(0, 0), "mine"),
    ]);
    let applied = sm.apply([entry(1, batch)]).await.expect("applies");
    assert_eq!(applied, vec![Applied { rejected: 2 }]);
    let after = contents(&store);
    let (in_db1, mine) = (|e: &&(usize, Bytes, _, _)| e.0 == 1, key_of(0, 0));
    assert!(of_group(&after, 0).iter().filter(in_db1).count() == 0);
    assert!(of_group(&before, 0).iter().filter(in_db1).count() > 0);
    assert!(after.iter().any(|e| e.1 == mine.as_bytes()));
    for other in [1, 2] {
        assert_eq!(of_group(&after, other), of_group(&before, other));
    }

    let batch = Batch::of(vec![Effect::FlushAll]);
    sm.apply([entry(2, batch)]).await.expect("applies");
    let after = contents(&store);
    assert!(of_group(&after, 0).is_empty());
    for other in [1, 2] {
        assert_eq!(of_group(&after, other), of_group(&before, other));
    }
}

#[tokio::test]
async fn batches_of_the_members_own_origin_are_skipped_and_others_applied() {
    let store = Arc::new(Store::new(1, 4));
    let speculation = Arc::new(Speculation::default());
    let origin = speculation.renew();
    let mut sm = StateMachine::group(store.clone(), Scope::all(), speculation.clone());
    let own = Batch {
        origin,
        seq: 3,
        effects: vec![put_effect("own", "v")],
    };
    let other = Batch {
        origin: origin.wrapping_add(1).max(1),
        seq: 7,
        effects: vec![put_effect("other", "v")],
    };
    sm.apply([
        entry(1, own),
        entry(2, other),
        entry(3, Batch::of(vec![put_effect("plain", "v")])),
    ])
    .await
    .expect("applies");
    let keys: Vec<_> = contents(&store).into_iter().map(|e| e.1).collect();
    assert_eq!(keys, vec![Bytes::from("other"), Bytes::from("plain")]);
    assert_eq!(speculation.applied.load(Ordering::Acquire), 3);
    let (last, _) = sm.applied_state().await.expect("state");
    assert_eq!(last.map(|l| l.index), Some(3));
}

#[tokio::test]
async fn a_snapshot_copy_waits_until_speculative_writes_have_committed() {
    let store = Arc::new(Store::new(1, 4));
    let speculation = Arc::new(Speculation::default());
    let origin = speculation.renew();
    let mut sm = StateMachine::group(store.clone(), Scope::all(), speculation.clone());
    // The leader ran a command (its write is in the store) and submitted it.
    put(&store, 0, "speculative", "v");
    speculation.submitted.fetch_add(1, Ordering::AcqRel);
    let mut builder = sm.get_snapshot_builder().await;
    let building = tokio::spawn(async move { builder.build_snapshot().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!building.is_finished(), "waits for the write to commit");
    // While it waits, no command may run speculatively.
    assert!(speculation.pause.try_read().is_err());

    let batch = Batch {
        origin,
        seq: 1,
        effects: vec![put_effect("speculative", "v")],
    };
    sm.apply([entry(1, batch)]).await.expect("applies");
    let snapshot = tokio::time::timeout(Duration::from_secs(10), building)
        .await
        .expect("finishes once committed")
        .expect("joins")
        .expect("builds");
    let image = snapshot::decode(snapshot.snapshot.get_ref()).expect("decodes");
    assert_eq!(image.dbs[0].entries.len(), 1);
    assert!(speculation.pause.try_read().is_ok(), "commands go on");
}

#[tokio::test]
async fn a_reset_drops_a_waiting_build_and_goes_back_to_the_snapshot() {
    let store = Arc::new(Store::new(1, 4));
    let speculation = Arc::new(Speculation::default());
    let mut sm = StateMachine::group(store.clone(), Scope::all(), speculation.clone());
    let committed = Batch::of(vec![put_effect("committed", "v")]);
    sm.apply([entry(1, committed)]).await.expect("applies");
    let snapshot = build(&mut sm).await;
    sm.apply([entry(2, Batch::of(vec![put_effect("later", "v")]))])
        .await
        .expect("applies");

    // This member leads and runs a command that will never commit.
    speculation.renew();
    put(&store, 0, "lost", "v");
    speculation.submitted.fetch_add(1, Ordering::AcqRel);
    let mut builder = sm.get_snapshot_builder().await;
    let building = tokio::spawn(async move { builder.build_snapshot().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!building.is_finished());

    sm.reset().await.expect("resets");
    let dropped = tokio::time::timeout(Duration::from_secs(10), building)
        .await
        .expect("released")
        .expect("joins");
    assert!(
        dropped.is_err(),
        "a build begun before the reset is dropped"
    );
    let keys: Vec<_> = contents(&store).into_iter().map(|e| e.1).collect();
    assert_eq!(keys, vec![Bytes::from("committed")]);
    let (last, _) = sm.applied_state().await.expect("state");
    assert_eq!(last, snapshot.meta.last_log_id);
    let current = sm.get_current_snapshot().await.expect("reads");
    assert_eq!(current.map(|s| s.meta), Some(snapshot.meta));
    assert!(speculation.settled());
}

#[tokio::test]
async fn a_durable_group_reopens_from_its_snapshot_file_and_refuses_a_corrupt_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = filled("v");
    let scope = Scope::standalone(&source, 1, 3);
    let mut sm = StateMachine::open(source.clone(), scope, Arc::default(), dir.path())
        .await
        .expect("opens an empty directory");
    assert!(sm.get_current_snapshot().await.expect("reads").is_none());
    let batch = Batch::of(vec![put_effect(&key_of(1, 0), "applied")]);
    sm.apply([entry(4, batch)]).await.expect("applies");
    let snapshot = build(&mut sm).await;
    let path = snapshot::file_path(dir.path());
    assert!(path.exists());

    // Another process: a store holding other groups' keys only.
    let store = filled("other");
    store.db(0).expect("db").retain(|k| node_for(k, 3) != 1);
    store.db(1).expect("db").retain(|k| node_for(k, 3) != 1);
    let scope = Scope::standalone(&store, 1, 3);
    let mut reopened = StateMachine::open(store.clone(), scope, Arc::default(), dir.path())
        .await
        .expect("reopens");
    assert_eq!(
        of_group(&contents(&store), 1),
        of_group(&contents(&source), 1)
    );
    assert_eq!(
        of_group(&contents(&store), 0).len(),
        of_group(&contents(&source), 0).len()
    );
    let (last, membership) = reopened.applied_state().await.expect("state");
    assert_eq!(last, snapshot.meta.last_log_id);
    assert_eq!(membership, snapshot.meta.last_membership);
    let current = reopened.get_current_snapshot().await.expect("reads");
    assert_eq!(current.map(|s| s.meta), Some(snapshot.meta));

    let mut bytes = std::fs::read(&path).expect("read");
    let last_byte = bytes.len() - 1;
    bytes[last_byte] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    let fresh = Arc::new(Store::new(2, 4));
    let err = StateMachine::open(
        fresh.clone(),
        Scope::standalone(&fresh, 1, 3),
        Arc::default(),
        dir.path(),
    )
    .await
    .expect_err("refused");
    assert!(err.to_string().contains("snapshot.bin"), "{err}");
    assert_eq!(std::fs::read(&path).expect("read"), bytes, "left as it was");
}
