//! The Raft log and vote of one member (after openraft's `memstore` example): entries by
//! index, the last purged id, the vote and the committed id, held in memory and, for a log
//! opened with [`LogStore::open`], on disk too ([`disk_log`](super::disk_log) has the files).
//!
//! A durable log keeps openraft's storage v2 promise: appended entries are fsynced before the
//! append's callback fires, and the vote before `save_vote` returns. The blocking I/O runs in
//! `spawn_blocking`, off the executor. Reads are served from memory. It looks inside entries
//! only to weigh them: the bytes the in-memory copies hold are kept in a gauge
//! ([`LogStore::counted_in`]) that the node's memory budget leaves out of its eviction check
//! (see `memory`).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, LogState, RaftLogReader, StorageError, StorageIOError,
    Vote,
};

use super::disk_log::{DiskLog, LogFileError, Meta};
use super::types::{NodeId, TypeConfig};

/// A member's log; clones share it. `LogStore::default()` lives in memory only (a restarted
/// member gets the same log back only through a clone); [`LogStore::open`] keeps it in a
/// directory that a new process can open again.
#[derive(Debug, Clone, Default)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
    /// The files, for a durable log. A separate std mutex, held only inside `spawn_blocking`
    /// (an fsync under `inner` would stall readers); openraft calls the storage methods one
    /// at a time, so the two locks never race each other.
    disk: Option<Arc<Mutex<DiskLog>>>,
}

#[derive(Debug, Default)]
struct Inner {
    last_purged: Option<LogId<NodeId>>,
    log: BTreeMap<u64, Entry<TypeConfig>>,
    committed: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    /// What the entries in `log` weigh ([`entry_bytes`]).
    bytes: u64,
    /// Where `bytes` is added up, shared with other logs; a dropped log takes its share out.
    gauge: Arc<AtomicU64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.gauge.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Inner {
    /// Adds `entries`, replacing any at the same index.
    fn insert(&mut self, entries: Vec<Entry<TypeConfig>>) {
        let (mut added, mut replaced) = (0, 0);
        for entry in entries {
            added += entry_bytes(&entry);
            if let Some(old) = self.log.insert(entry.log_id.index, entry) {
                replaced += entry_bytes(&old);
            }
        }
        self.bytes = (self.bytes + added).saturating_sub(replaced);
        self.gauge.fetch_add(added, Ordering::Relaxed);
        self.gauge.fetch_sub(replaced, Ordering::Relaxed);
    }

    /// Drops the entries from `index` on.
    fn cut_from(&mut self, index: u64) {
        let cut = self.log.split_off(&index);
        let bytes = cut.values().map(entry_bytes).sum();
        self.bytes = self.bytes.saturating_sub(bytes);
        self.gauge.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Drops the entries up to and including `index`.
    fn drop_through(&mut self, index: u64) {
        let kept = self.log.split_off(&index.saturating_add(1));
        let dropped = std::mem::replace(&mut self.log, kept);
        let bytes = dropped.values().map(entry_bytes).sum();
        self.bytes = self.bytes.saturating_sub(bytes);
        self.gauge.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// What one entry held in memory weighs, roughly as the allocator sees it: its B-tree slot
/// twice (appended in order, the map's nodes are about half full), and per effect the effect,
/// its keys' and values' bytes and two allocations' headers and rounding.
pub(crate) fn entry_bytes(entry: &Entry<TypeConfig>) -> u64 {
    /// A heap allocation's header and rounding, with a `Bytes`' shared counter.
    const ALLOCATION: usize = 32;
    let payload = match &entry.payload {
        EntryPayload::Normal(batch) => {
            ALLOCATION
                + batch
                    .effects
                    .iter()
                    .map(|e| std::mem::size_of_val(e) + e.data_bytes() + 2 * ALLOCATION)
                    .sum::<usize>()
        }
        EntryPayload::Blank | EntryPayload::Membership(_) => 0,
    };
    (2 * std::mem::size_of::<(u64, Entry<TypeConfig>)>() + payload) as u64
}

impl LogStore {
    /// Opens the durable log in `dir` (created if missing): the vote, committed and purged
    /// ids and every entry come back; a torn last record is cut off.
    ///
    /// # Errors
    /// A [`StorageError`] naming the file (and the offset, for a damaged record before the
    /// last one) when the directory cannot be read or written, or holds damage.
    pub async fn open(dir: impl AsRef<Path>) -> Result<LogStore, StorageError<NodeId>> {
        let dir = dir.as_ref().to_path_buf();
        let opened = tokio::task::spawn_blocking(move || DiskLog::open(&dir))
            .await
            .map_err(join_err)??;
        let log: BTreeMap<u64, Entry<TypeConfig>> = opened
            .entries
            .into_iter()
            .map(|e| (e.log_id.index, e))
            .collect();
        let bytes = log.values().map(entry_bytes).sum();
        let inner = Inner {
            last_purged: opened.meta.last_purged,
            log,
            committed: opened.meta.committed,
            vote: opened.meta.vote,
            bytes,
            gauge: Arc::new(AtomicU64::new(bytes)),
        };
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
            disk: Some(Arc::new(Mutex::new(opened.disk))),
        })
    }

    /// The same log, adding what its entries in memory weigh to `gauge` from now on (the
    /// node's `memory::Logs::bytes`) instead of a gauge of its own.
    pub fn counted_in(self, gauge: Arc<AtomicU64>) -> LogStore {
        let mut inner = self.lock();
        inner.gauge.fetch_sub(inner.bytes, Ordering::Relaxed);
        gauge.fetch_add(inner.bytes, Ordering::Relaxed);
        inner.gauge = gauge;
        drop(inner);
        self
    }

    /// What the entries in memory weigh, in bytes (an estimate of their allocations).
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// A std mutex: every critical section is a map operation, never an `.await`.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("raft log lock poisoned")
    }

    /// How many entries the log holds (purged ones excluded).
    pub fn len(&self) -> usize {
        self.lock().log.len()
    }

    /// True when the log holds no entry.
    pub fn is_empty(&self) -> bool {
        self.lock().log.is_empty()
    }

    fn meta(&self) -> Meta {
        let inner = self.lock();
        Meta {
            vote: inner.vote,
            committed: inner.committed,
            last_purged: inner.last_purged,
        }
    }

    /// Runs `f` on the files in `spawn_blocking`; nothing for an in-memory log.
    async fn on_disk<F>(&self, f: F) -> Result<(), StorageError<NodeId>>
    where
        F: FnOnce(&mut DiskLog) -> Result<(), LogFileError> + Send + 'static,
    {
        let Some(disk) = self.disk.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || {
            f(&mut disk.lock().expect("raft log file lock poisoned"))
        })
        .await
        .map_err(join_err)?
        .map_err(StorageError::from)
    }
}

/// A blocking task that panicked or was cancelled (the runtime shutting down).
fn join_err(e: tokio::task::JoinError) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::error(format!("raft log file task failed: {e}"))).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self
            .lock()
            .log
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.lock();
        let last = inner.log.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut meta = self.meta();
        meta.vote = Some(*vote);
        // On disk first: a vote must never be forgotten once it was promised.
        self.on_disk(move |d| d.save_meta(&meta)).await?;
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // In memory only: the committed id is an optimisation (a restarted member re-applies
        // up to it without waiting for its leader), and an older one on disk is still a
        // committed one. It reaches the disk with the next vote or purge. Writing it here
        // cost two fsyncs and a rename on every commit.
        self.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        if self.disk.is_some() {
            let written = entries.clone();
            // Flushed before the callback fires: openraft may count these entries towards a
            // commit (or answer a leader) as soon as it does.
            if let Err(e) = self.on_disk(move |d| d.append(&written)).await {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                return Err(e);
            }
        }
        self.lock().insert(entries);
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let index = log_id.index;
        self.on_disk(move |d| d.truncate(index)).await?;
        self.lock().cut_from(index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let (meta, kept) = {
            let inner = self.lock();
            let mut meta = Meta {
                vote: inner.vote,
                committed: inner.committed,
                last_purged: inner.last_purged,
            };
            // openraft purges in increasing order; never move the mark back.
            if meta.last_purged < Some(log_id) {
                meta.last_purged = Some(log_id);
            }
            let from = log_id.index.saturating_add(1);
            // Only a durable log needs a copy of what stays (it rewrites its file with it).
            let kept: Vec<Entry<TypeConfig>> = match self.disk {
                Some(_) => inner.log.range(from..).map(|(_, e)| e.clone()).collect(),
                None => Vec::new(),
            };
            (meta, kept)
        };
        self.on_disk(move |d| d.purge(&meta, &kept)).await?;
        let mut inner = self.lock();
        inner.last_purged = meta.last_purged;
        inner.drop_through(log_id.index);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;

    #[tokio::test]
    async fn a_durable_log_keeps_its_vote_and_committed_id_across_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = LogStore::open(dir.path()).await.expect("open");
        let committed = Some(LogId::new(CommittedLeaderId::new(3, 2), 7));
        // The committed id is kept in memory and reaches the disk with the next vote.
        log.save_committed(committed).await.expect("committed");
        log.save_vote(&Vote::new_committed(3, 2))
            .await
            .expect("vote");
        drop(log);

        let mut log = LogStore::open(dir.path()).await.expect("reopen");
        assert_eq!(
            log.read_vote().await.expect("vote"),
            Some(Vote::new_committed(3, 2))
        );
        assert_eq!(log.read_committed().await.expect("committed"), committed);
        assert!(log.is_empty());
    }
}
