//! The effect stream is complete: random sequences of write (and read) commands run through
//! `Session::execute` on a node whose effect sink records everything; replaying the recorded
//! effects on an empty store gives the same keys, types, values and deadlines in every
//! database. A write that forgot to record an effect, or recorded the wrong one, fails here.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::session;
use common::store::dump_at;
use minikv::cmd::Session;
use minikv::effect::{Effect, Recorder};
use minikv::node::Node;
use minikv::protocol::Request;
use minikv::store::{clock, Store, Value};
use minikv::NodeConfig;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use tokio::time::Instant;

const DATABASES: usize = 4;
const KEYS: [&str; 6] = ["a", "b", "c", "{x}", "n", "f"];

/// One command as words; numbers are chosen so nothing expires while a case runs (TTLs are
/// either long or already past).
fn command() -> impl Strategy<Value = Vec<String>> {
    let key = || select(KEYS.to_vec()).prop_map(str::to_string);
    let value = || {
        prop_oneof![
            (-5i64..50).prop_map(|n| n.to_string()),
            select(vec!["x", "", "1.5", "9223372036854775807", "hello"]).prop_map(str::to_string),
        ]
    };
    let ttl = || prop_oneof![3 => 1000i64..100_000, 1 => -3i64..=0];
    let db = || (0..DATABASES as i64 + 1).prop_map(|n| n.to_string());
    let far_unix_s = (clock::unix_ms() / 1000 + 100_000).to_string();
    let past_unix_s = (clock::unix_ms() / 1000 - 10).to_string();
    let set_option = select(vec![
        vec![],
        vec!["NX"],
        vec!["XX"],
        vec!["GET"],
        vec!["KEEPTTL"],
        vec!["EX", "500"],
        vec!["PX", "900000"],
        vec!["XX", "GET", "EX", "1000"],
    ])
    .prop_map(|o| o.into_iter().map(str::to_string).collect::<Vec<_>>());
    let expire_flag = select(vec!["", "NX", "XX", "GT", "LT"]);
    prop_oneof![
        4 => (key(), value(), set_option).prop_map(|(k, v, o)| {
            let mut words = vec!["SET".into(), k, v];
            words.extend(o);
            words
        }),
        1 => (key(), value()).prop_map(|(k, v)| vec!["SETNX".into(), k, v]),
        1 => (key(), ttl(), value()).prop_map(|(k, t, v)| vec!["SETEX".into(), k, t.to_string(), v]),
        1 => (key(), value()).prop_map(|(k, v)| vec!["GETSET".into(), k, v]),
        1 => key().prop_map(|k| vec!["GETDEL".into(), k]),
        1 => (key(), select(vec!["EX", "PX", "PERSIST"]), ttl()).prop_map(|(k, o, t)| {
            let mut words = vec!["GETEX".into(), k, o.to_string()];
            if o != "PERSIST" {
                words.push(t.to_string());
            }
            words
        }),
        1 => (key(), value(), key(), value()).prop_map(|(a, x, b, y)| vec!["MSET".into(), a, x, b, y]),
        1 => (key(), value(), key(), value()).prop_map(|(a, x, b, y)| vec!["MSETNX".into(), a, x, b, y]),
        2 => (key(), value()).prop_map(|(k, v)| vec!["APPEND".into(), k, v]),
        1 => (key(), 0i64..12, value()).prop_map(|(k, o, v)| vec!["SETRANGE".into(), k, o.to_string(), v]),
        2 => key().prop_map(|k| vec!["INCR".into(), k]),
        1 => (key(), -100i64..100).prop_map(|(k, n)| vec!["DECRBY".into(), k, n.to_string()]),
        1 => (key(), select(vec!["0.5", "-2", "1e3"])).prop_map(|(k, f)| vec!["INCRBYFLOAT".into(), k, f.to_string()]),
        2 => vec(key(), 1..4).prop_map(|ks| {
            let mut words = vec!["DEL".to_string()];
            words.extend(ks);
            words
        }),
        1 => (key(), key()).prop_map(|(a, b)| vec!["RENAME".into(), a, b]),
        1 => (key(), key()).prop_map(|(a, b)| vec!["RENAMENX".into(), a, b]),
        1 => (key(), key(), db(), any::<bool>()).prop_map(|(a, b, d, r)| {
            let mut words = vec!["COPY".to_string(), a, b, "DB".into(), d];
            if r {
                words.push("REPLACE".into());
            }
            words
        }),
        2 => (key(), ttl(), expire_flag).prop_map(|(k, t, f)| {
            let mut words = vec!["EXPIRE".to_string(), k, t.to_string()];
            if !f.is_empty() {
                words.push(f.to_string());
            }
            words
        }),
        1 => (key(), select(vec![far_unix_s, past_unix_s])).prop_map(|(k, at)| vec!["EXPIREAT".into(), k, at]),
        1 => key().prop_map(|k| vec!["PERSIST".into(), k]),
        1 => (key(), db()).prop_map(|(k, d)| vec!["MOVE".into(), k, d]),
        1 => (db(), db()).prop_map(|(a, b)| vec!["SWAPDB".into(), a, b]),
        1 => Just(vec!["FLUSHDB".to_string()]),
        2 => db().prop_map(|d| vec!["SELECT".into(), d]),
        1 => Just(vec!["MULTI".to_string()]),
        1 => Just(vec!["EXEC".to_string()]),
        2 => key().prop_map(|k| vec!["GET".into(), k]),
    ]
}

/// One command on lists, hashes, sets and sorted sets (and the key-level commands that
/// replace, move or expire them): the writes whose effects may be element edits.
fn collection_command() -> impl Strategy<Value = Vec<String>> {
    let key = || select(vec!["h", "s", "z", "l", "t"]).prop_map(str::to_string);
    let elem = || select(vec!["a", "b", "c", "1", "2", "3", "x\u{e9}"]).prop_map(str::to_string);
    let score = || select(vec!["1", "-2", "2.5", "inf", "-inf", "0"]).prop_map(str::to_string);
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    prop_oneof![
        3 => (key(), elem(), elem()).prop_map(|(k, f, v)| vec!["HSET".into(), k, f, v]),
        1 => (key(), elem(), elem()).prop_map(|(k, f, v)| vec!["HSETNX".into(), k, f, v]),
        2 => (key(), elem()).prop_map(|(k, f)| vec!["HDEL".into(), k, f]),
        1 => (key(), elem()).prop_map(|(k, f)| vec!["HINCRBY".into(), k, f, "3".into()]),
        1 => (key(), elem()).prop_map(|(k, f)| vec!["HINCRBYFLOAT".into(), k, f, "0.1".into()]),
        3 => (key(), elem(), elem()).prop_map(|(k, a, b)| vec!["SADD".into(), k, a, b]),
        2 => (key(), elem()).prop_map(|(k, m)| vec!["SREM".into(), k, m]),
        1 => key().prop_map(|k| vec!["SPOP".into(), k]),
        1 => (key(), key(), elem()).prop_map(|(a, b, m)| vec!["SMOVE".into(), a, b, m]),
        3 => (key(), score(), elem()).prop_map(|(k, s, m)| vec!["ZADD".into(), k, s, m]),
        1 => (key(), score(), elem()).prop_map(|(k, s, m)| vec!["ZADD".into(), k, "GT".into(), "CH".into(), s, m]),
        1 => (key(), elem()).prop_map(|(k, m)| vec!["ZINCRBY".into(), k, "2".into(), m]),
        2 => (key(), elem()).prop_map(|(k, m)| vec!["ZREM".into(), k, m]),
        1 => key().prop_map(|k| vec!["ZPOPMIN".into(), k]),
        1 => key().prop_map(|k| vec!["ZPOPMAX".into(), k, "2".into()]),
        2 => (key(), elem()).prop_map(|(k, v)| vec!["RPUSH".into(), k, v]),
        1 => key().prop_map(|k| vec!["LPOP".into(), k]),
        1 => (key(), key()).prop_map(|(a, b)| vec!["LMOVE".into(), a, b, "LEFT".into(), "RIGHT".into()]),
        1 => (key(), key()).prop_map(|(a, b)| vec!["SINTERSTORE".into(), a, b, "s".into()]),
        1 => (key(), key()).prop_map(|(a, b)| vec!["ZUNIONSTORE".into(), a, "2".into(), b, "z".into()]),
        1 => (key(), key()).prop_map(|(a, b)| vec!["RENAME".into(), a, b]),
        1 => key().prop_map(|k| vec!["DEL".into(), k]),
        1 => key().prop_map(|k| vec!["EXPIRE".into(), k, "1000".into()]),
        1 => key().prop_map(|k| vec!["SET".into(), k, "str".into()]),
        1 => Just(words(&["MULTI"])),
        1 => Just(words(&["EXEC"])),
    ]
}

fn node_with_recorder() -> (Node, Arc<Recorder>) {
    let node = Node::new(NodeConfig {
        databases: DATABASES,
        ..NodeConfig::default()
    });
    let recorder = Arc::new(Recorder::default());
    assert!(node.attach_sink(recorder.clone()));
    (node, recorder)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn replaying_recorded_effects_rebuilds_the_same_store(
        commands in vec(command(), 1..80),
    ) {
        let (node, recorder) = node_with_recorder();
        let mut session = session(&node);
        for words in &commands {
            session.execute(&node, &Request::new(words.iter().map(|w| Bytes::from(w.clone()))));
        }
        // A transaction left open publishes nothing: it never ran.
        let effects = recorder.take();
        let now = Instant::now();
        let replayed = Store::new(DATABASES, 4);
        for effect in &effects {
            prop_assert!(effect.apply(&replayed, now).is_ok(), "{:?}", effect);
        }
        prop_assert_eq!(dump_at(&node.store, now), dump_at(&replayed, now), "{:?}", commands);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Collections' effects (element edits for hashes, sets and sorted sets) rebuild the same
    /// store, and, being final values, converge when replayed again from an earlier point over
    /// a later state (a log replayed over a snapshot taken while it was written).
    #[test]
    fn collection_effects_rebuild_and_converge_when_replayed_over_a_later_state(
        commands in vec(collection_command(), 1..80),
        cut in any::<proptest::sample::Index>(),
        back in any::<proptest::sample::Index>(),
    ) {
        let (node, recorder) = node_with_recorder();
        let mut session = session(&node);
        for words in &commands {
            session.execute(&node, &Request::new(words.iter().map(|w| Bytes::from(w.clone()))));
        }
        let effects = recorder.take();
        let now = Instant::now();
        let want = dump_at(&node.store, now);
        let replayed = Store::new(DATABASES, 4);
        for effect in &effects {
            prop_assert!(effect.apply(&replayed, now).is_ok(), "{:?}", effect);
        }
        prop_assert_eq!(&want, &dump_at(&replayed, now), "{:?}", commands);
        // State after effects[..k], then effects[i..] again for some i <= k.
        let k = cut.index(effects.len() + 1);
        let i = back.index(k + 1);
        let fuzzy = Store::new(DATABASES, 4);
        for effect in effects[..k].iter().chain(&effects[i..]) {
            prop_assert!(effect.apply(&fuzzy, now).is_ok(), "{:?}", effect);
        }
        prop_assert_eq!(&want, &dump_at(&fuzzy, now), "k={} i={} {:?}", k, i, commands);
    }
}

#[test]
fn a_transaction_is_one_batch_and_reads_record_nothing() {
    let (node, recorder) = node_with_recorder();
    let mut session = session(&node);
    let run = |session: &mut Session, words: &[&str]| {
        session.execute(
            &node,
            &Request::new(words.iter().map(|w| Bytes::from(w.to_string()))),
        );
    };
    run(&mut session, &["GET", "a"]);
    run(&mut session, &["EXISTS", "a"]);
    assert_eq!(recorder.batches(), 0);
    run(&mut session, &["MULTI"]);
    run(&mut session, &["SET", "a", "1"]);
    run(&mut session, &["INCR", "a"]);
    run(&mut session, &["DEL", "a", "b"]);
    assert_eq!(recorder.batches(), 0, "queued, not run");
    run(&mut session, &["EXEC"]);
    assert_eq!(recorder.batches(), 1);
    let effects = recorder.take();
    assert_eq!(effects.len(), 3, "{effects:?}");
    assert!(matches!(&effects[1], Effect::Put { value: Value::String(v), .. } if v == "2"));
    assert!(matches!(&effects[2], Effect::Del { key, .. } if key == "a"));
    // A write that changes nothing (DEL of a missing key) publishes nothing.
    run(&mut session, &["DEL", "missing"]);
    assert_eq!(recorder.batches(), 1);
}

#[test]
fn writes_to_an_existing_collection_record_only_what_changed() {
    use minikv::effect::{Edit, Effect};
    let (node, recorder) = node_with_recorder();
    let mut session = session(&node);
    for words in [
        &["HSET", "h", "a", "1"][..],
        &["HSET", "h", "b", "2"],
        &["HDEL", "h", "a", "missing"],
        &["HDEL", "h", "b"],
        &["ZADD", "z", "1", "m"],
        &["ZINCRBY", "z", "2", "m"],
        &["SADD", "s", "x"],
        &["SADD", "s", "x", "y"],
    ] {
        session.execute(
            &node,
            &Request::new(words.iter().map(|w| Bytes::from(w.to_string()))),
        );
    }
    let effects = recorder.take();
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    assert!(
        matches!(&effects[0], Effect::Put { .. }),
        "a new key is a whole value"
    );
    assert_eq!(
        effects[1],
        Effect::Edit {
            db: 0,
            key: b("h"),
            edit: Edit::HashSet(vec![(b("b"), b("2"))])
        }
    );
    assert_eq!(
        effects[2],
        Effect::Edit {
            db: 0,
            key: b("h"),
            edit: Edit::HashDel(vec![b("a")])
        }
    );
    assert_eq!(
        effects[3],
        Effect::Del { db: 0, key: b("h") },
        "emptied: deleted"
    );
    assert!(
        matches!(
            &effects[5],
            Effect::Edit { edit: Edit::ZSetPut(p), .. } if p.len() == 1 && p[0].1.get() == 3.0
        ),
        "ZINCRBY records the resulting score"
    );
    assert_eq!(
        effects[7],
        Effect::Edit {
            db: 0,
            key: b("s"),
            edit: Edit::SetAdd(vec![b("y")])
        },
        "only the member that was new"
    );
}
