//! The meta group's side of the cluster (issue 11): the table it keeps, changed by
//! compare-and-set on its leader ([`Cluster::change_table`]), read back by every node
//! (`watch_table`), and asked for fresh when a decision must not rest on a table this node
//! has not caught up with ([`Cluster::refresh_table`]).

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::group::Role;
use super::table::{self, Table};
use super::{Answer, Call, Cluster, CALL_TIMEOUT, META};
use crate::effect::Effect;
use crate::replication::Batch;
use crate::store::{Store, Value};

impl Cluster {
    /// Changes the table through the meta group's leader (wherever it is); returns the new
    /// table, also taken here.
    ///
    /// # Errors
    /// The text of a refusal (`ERR ...`) or of a failure to reach the leader (`TRYAGAIN ...`).
    pub async fn change_table(&self, change: table::Change) -> Result<Arc<Table>, String> {
        match self
            .call_leader(META, &Call::ChangeTable(change), CALL_TIMEOUT)
            .await?
        {
            Answer::Table(bytes) => {
                let table = Table::decode(&bytes)?;
                self.offer_table(table);
                Ok(self.table())
            }
            Answer::Failed(e) => Err(e),
            other => Err(format!("TRYAGAIN unexpected answer {other:?}")),
        }
    }

    /// On the meta group's leader: applies `change` to the table (compare-and-set: the
    /// change checks the table it finds) and commits it.
    pub(crate) async fn change_table_here(&self, change: table::Change) -> Answer {
        if self.meta.role() != Role::Leader {
            return Answer::NotLeader(self.leader_of(META));
        }
        let _serial = self.table_lock.lock().await;
        // The applied table: everything this leader committed is in it.
        let current = stored_table(&self.meta_store).unwrap_or_else(|| (*self.table()).clone());
        let next = match change.apply(&current) {
            Ok(Some(next)) => next,
            Ok(None) => return Answer::Table(current.encode().unwrap_or_default()),
            Err(e) => return Answer::Failed(e),
        };
        let bytes = match next.encode() {
            Ok(b) => b,
            Err(e) => return Answer::Failed(format!("ERR {e}")),
        };
        let put = Effect::Put {
            db: 0,
            key: bytes::Bytes::from_static(table::TABLE_KEY),
            value: Value::String(bytes::Bytes::from(bytes.clone())),
            expires_at_ms: None,
        };
        match self.meta.raft().client_write(Batch::of(vec![put])).await {
            Ok(_) => {
                self.offer_table(next);
                Answer::Table(bytes)
            }
            Err(e) => Answer::Failed(format!("TRYAGAIN the table change did not commit: {e}")),
        }
    }

    /// The table as the meta group's leader has applied it (taken here too when newer):
    /// `None` when no leader answered. Unlike [`Cluster::table`], it cannot be behind a change
    /// the meta group committed before the call.
    pub async fn refresh_table(&self) -> Option<Arc<Table>> {
        match self.call_leader(META, &Call::Table, CALL_TIMEOUT).await {
            Ok(Answer::Table(bytes)) => {
                let table = Table::decode(&bytes).ok()?;
                self.offer_table(table.clone());
                Some(Arc::new(table))
            }
            _ => None,
        }
    }

    /// On the meta group's leader (ready: everything committed before is applied): its
    /// table, for [`Cluster::refresh_table`].
    pub(crate) fn table_here(&self) -> Answer {
        if self.meta.role() != Role::Leader {
            return Answer::NotLeader(self.leader_of(META));
        }
        let table = stored_table(&self.meta_store).unwrap_or_else(|| (*self.table()).clone());
        match table.encode() {
            Ok(bytes) => Answer::Table(bytes),
            Err(e) => Answer::Failed(format!("ERR {e}")),
        }
    }
}

/// The table the meta store holds, if it holds one that decodes.
pub(crate) fn stored_table(store: &Store) -> Option<Table> {
    decode_stored(&stored_bytes(store)?)
}

/// The table's bytes in the meta store, if it holds any.
fn stored_bytes(store: &Store) -> Option<bytes::Bytes> {
    let db = store.db(0)?;
    let mut shard = db.shard(table::TABLE_KEY);
    shard
        .value(table::TABLE_KEY, tokio::time::Instant::now())?
        .into_string()
        .ok()
}

fn decode_stored(bytes: &[u8]) -> Option<Table> {
    match Table::decode(bytes) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!("the meta group holds a table this node cannot read: {e}");
            None
        }
    }
}

/// Takes every table the meta group applies (decoding it only when its bytes changed). Ends
/// with the node.
pub(crate) async fn watch_table(cluster: Weak<Cluster>, shutdown: CancellationToken) {
    let mut seen = bytes::Bytes::new();
    loop {
        let Some(c) = cluster.upgrade() else {
            return;
        };
        if let Some(bytes) = stored_bytes(&c.meta_store).filter(|b| *b != seen) {
            if let Some(table) = decode_stored(&bytes) {
                c.offer_table(table);
            }
            seen = bytes;
        }
        drop(c);
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}
