//! Comparing stores: every live entry of every database, in a form two stores (on one node or
//! on several) can be compared in.

use std::collections::BTreeMap;

use bytes::Bytes;
use minikv::store::{clock, Store, Value};
use tokio::time::Instant;

/// Every live entry of a store: `(db, key) -> (value, deadline in Unix ms)`. Deadlines are in
/// Unix milliseconds, as effects carry them, so stores that got the same effects compare equal.
pub type Dump = BTreeMap<(usize, Bytes), (Value, Option<i64>)>;

/// The live entries of `store` as of `now`.
pub fn dump_at(store: &Store, now: Instant) -> Dump {
    store
        .dbs()
        .iter()
        .enumerate()
        .flat_map(|(i, db)| {
            db.export(now)
                .into_iter()
                .map(move |(k, e)| ((i, k), (e.value, e.deadline.map(clock::unix_ms_at))))
        })
        .collect()
}

/// The live entries of `store` as of now.
pub fn dump(store: &Store) -> Dump {
    dump_at(store, Instant::now())
}
