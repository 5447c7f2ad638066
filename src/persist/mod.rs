//! Snapshots: the whole keyspace as one JSON file, written atomically and restored on start.
//!
//! Saving copies entries out of the store one shard at a time (a memcpy per entry under short
//! locks), then serialises and writes with no lock held, so requests are never blocked behind
//! the disk. The file is written to a temporary name, fsynced, renamed over the old one
//! (rename is atomic on POSIX filesystems) and the directory fsynced: a crash at any instant
//! leaves either the old or the new complete file. Format: `docs/persistence.md`.
//!
//! Rooms: this file owns the [`Persister`] (one node's snapshot file, its save and load entry
//! points and the last save's outcome); `write` serialises, `load` parses and restores,
//! `saver` runs saves on a low-priority thread and on a timer. Nothing here knows about
//! commands or sockets.

mod load;
mod saver;
mod write;

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use tokio::time::Instant;

use crate::aof::Aof;
use crate::stats::latency::{self, LatencyMonitor};
use crate::store::{clock, Store};

pub use saver::run;
use saver::set_priority;

/// The `format` field every snapshot carries.
pub const FORMAT: &str = "minikv-snapshot";
/// The snapshot format version this build writes. Versions 1 (before values had types: its
/// entries are all strings) and 2 (before collections) are still read.
pub const VERSION: u32 = 3;

/// Saving or loading a snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The file could not be read, written, synced or renamed (permissions, full disk).
    #[error("cannot {action} {}: {cause}", path.display())]
    Io {
        /// What was being done, as words that fit "cannot ...": `read the snapshot`.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error (in the message, not chained, so it prints once).
        cause: std::io::Error,
    },
    /// The file exists but is not a valid snapshot (truncated, edited, another format).
    #[error(
        "cannot load the snapshot {}: {reason}. Refusing to start; move the file away to start \
         empty",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
}

/// The snapshot file of one node and the outcome of its last save.
#[derive(Debug)]
pub struct Persister {
    path: PathBuf,
    server_id: u64,
    /// Serialises saves (periodic, SAVE, shutdown) so two never race on the temp file.
    saving: Mutex<()>,
    /// The append-only log, when enabled: snapshots record the log offset they cover and
    /// compact the log after they are safely on disk.
    aof: OnceLock<Arc<Aof>>,
    /// The log offset the snapshot that was loaded covers (replay skips records before it).
    loaded_aof_offset: AtomicU64,
    /// The background saver thread's queue, started on first use (see [`Persister::background`]).
    saver: OnceLock<Mutex<mpsc::Sender<saver::SaveJob>>>,
    /// Set when a periodic save has waited too long at idle priority; the saver thread then
    /// switches to normal priority (checked between shards while writing).
    urgent: AtomicBool,
    /// The store's change counter at the last successful save.
    saved_dirty: AtomicU64,
    last_save_unix: AtomicI64,
    last_save_ok: AtomicBool,
    saves: AtomicU64,
    in_progress: AtomicBool,
    last_duration_ms: AtomicU64,
    /// The node's latency monitor: a save records its copy step (`snapshot-copy`).
    latency: Arc<LatencyMonitor>,
}

/// The state INFO's persistence section reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistStatus {
    /// Unix seconds of the last successful save (or of start).
    pub last_save_unix: i64,
    /// Whether the last attempt succeeded.
    pub last_save_ok: bool,
    /// Successful saves since start.
    pub saves: u64,
    /// A save is running now.
    pub in_progress: bool,
    /// How long the last save took.
    pub last_duration_ms: u64,
}

impl Persister {
    /// A persister writing `path` for node `server_id`.
    pub fn new(path: PathBuf, server_id: u64) -> Self {
        Persister {
            path,
            server_id,
            saving: Mutex::new(()),
            saver: OnceLock::new(),
            urgent: AtomicBool::new(false),
            aof: OnceLock::new(),
            loaded_aof_offset: AtomicU64::new(0),
            saved_dirty: AtomicU64::new(0),
            last_save_unix: AtomicI64::new(clock::unix_ms() / 1000),
            last_save_ok: AtomicBool::new(true),
            saves: AtomicU64::new(0),
            in_progress: AtomicBool::new(false),
            last_duration_ms: AtomicU64::new(0),
            latency: Arc::default(),
        }
    }

    /// The persister, recording its saves' copy step in `latency` (the node's monitor).
    pub fn with_latency(mut self, latency: Arc<LatencyMonitor>) -> Self {
        self.latency = latency;
        self
    }

    /// Attaches the append-only log (once, at start).
    pub fn attach_aof(&self, aof: Arc<Aof>) {
        // A second attach would be a programming error; the first log stays in use.
        let _ = self.aof.set(aof);
    }

    /// The append-only log offset covered by the snapshot [`Persister::load`] read (0 if none).
    pub fn loaded_aof_offset(&self) -> u64 {
        self.loaded_aof_offset.load(Ordering::Relaxed)
    }

    /// The snapshot file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes since the last successful save.
    pub fn changes_since_save(&self, store: &Store) -> u64 {
        store
            .dirty()
            .saturating_sub(self.saved_dirty.load(Ordering::Relaxed))
    }

    /// The last save's outcome.
    pub fn status(&self) -> PersistStatus {
        PersistStatus {
            last_save_unix: self.last_save_unix.load(Ordering::Relaxed),
            last_save_ok: self.last_save_ok.load(Ordering::Relaxed),
            saves: self.saves.load(Ordering::Relaxed),
            in_progress: self.in_progress.load(Ordering::Relaxed),
            last_duration_ms: self.last_duration_ms.load(Ordering::Relaxed),
        }
    }

    /// Restores the snapshot into `store`; a missing file means an empty store. Returns the
    /// number of keys loaded. Expired keys are dropped, TTLs keep their absolute deadlines.
    ///
    /// # Errors
    /// [`PersistError::Corrupt`] for an invalid file, [`PersistError::Io`] when it cannot be read.
    pub fn load(&self, store: &Store) -> Result<usize, PersistError> {
        let data = match fs::read(&self.path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(cause) => {
                return Err(PersistError::Io {
                    action: "read the snapshot",
                    path: self.path.clone(),
                    cause,
                })
            }
        };
        // Entries go straight from the parser into the store (no intermediate tree), with
        // strings borrowed from the file's bytes wherever they need no unescaping.
        let name = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let loaded = load::snapshot(&data, &name, store, self.server_id).map_err(|reason| {
            PersistError::Corrupt {
                path: self.path.clone(),
                reason,
            }
        })?;
        self.saved_dirty.store(store.dirty(), Ordering::Relaxed);
        self.loaded_aof_offset
            .store(loaded.aof_offset, Ordering::Relaxed);
        Ok(loaded.keys)
    }

    /// Saves if anything changed since the last successful save. Blocking: call it from
    /// `spawn_blocking` in async code. Returns the number of keys written, `None` if skipped.
    ///
    /// # Errors
    /// [`PersistError::Io`] when the file cannot be written; the old file is left intact.
    pub fn save_if_dirty(&self, store: &Store) -> Result<Option<usize>, PersistError> {
        if self.changes_since_save(store) == 0 {
            return Ok(None);
        }
        self.save(store).map(Some)
    }

    /// Saves unconditionally (SAVE, shutdown). Blocking. Returns the number of keys written.
    ///
    /// # Errors
    /// [`PersistError::Io`] when the file cannot be written; the old file is left intact.
    pub fn save(&self, store: &Store) -> Result<usize, PersistError> {
        self.save_with(store, false)
    }

    /// [`Persister::save`] for a caller that already holds the store's gate exclusively
    /// (SAVE inside EXEC) when `gate_held` is true.
    ///
    /// # Errors
    /// As [`Persister::save`].
    pub fn save_with(&self, store: &Store, gate_held: bool) -> Result<usize, PersistError> {
        let _guard = self.saving.lock().expect("snapshot lock poisoned");
        self.in_progress.store(true, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let dirty = store.dirty();
        let result = self.write(store, gate_held);
        self.in_progress.store(false, Ordering::Relaxed);
        self.last_save_ok.store(result.is_ok(), Ordering::Relaxed);
        if result.is_ok() {
            self.saved_dirty.store(dirty, Ordering::Relaxed);
            self.last_save_unix
                .store(clock::unix_ms() / 1000, Ordering::Relaxed);
            self.saves.fetch_add(1, Ordering::Relaxed);
            let ms = started.elapsed().as_millis() as u64;
            self.last_duration_ms.store(ms, Ordering::Relaxed);
        }
        result
    }

    fn write(&self, store: &Store, gate_held: bool) -> Result<usize, PersistError> {
        let now = Instant::now();
        // A shared gate slot for the copy: transactions (EXEC) are either wholly in it or
        // wholly out of it, while ordinary commands keep running. The copy is one memcpy
        // per entry into a buffer per shard, each under its shard lock only.
        // The copy runs at normal priority even on the saver thread: it takes each shard's
        // lock in turn, and a lowered thread holding one must not wait for an idle core.
        let copy_started = std::time::Instant::now();
        let (aof_offset, dumps) = saver::at_normal_priority(|| {
            let _gate = (!gate_held).then(|| store.gate().shared(u64::MAX));
            // Every log record before this offset was applied before the copy below started,
            // so the snapshot covers it (records after it are idempotent on top of it).
            let aof_offset = self.aof.get().map_or(0, |aof| aof.end());
            let dumps: Vec<(usize, Vec<Vec<u8>>)> = store
                .dbs()
                .iter()
                .enumerate()
                .map(|(i, db)| (i, db.dump(now)))
                .filter(|(_, shards)| shards.iter().any(|d| !d.is_empty()))
                .collect();
            (aof_offset, dumps)
        });
        self.latency
            .record(latency::event::SNAPSHOT_COPY, copy_started.elapsed());

        let tmp = self.path.with_extension("json.tmp");
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |cause| PersistError::Io {
                action,
                path,
                cause,
            }
        };
        let file = File::create(&tmp).map_err(io("create the temporary snapshot file", &tmp))?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        let boost = || {
            if self.urgent.load(Ordering::Relaxed) {
                set_priority(true);
            }
        };
        let written = "write the temporary snapshot file";
        let count = write::snapshot(&mut writer, self.server_id, aof_offset, &dumps, &boost)
            .map_err(io(written, &tmp))?;
        let file = writer
            .into_inner()
            .map_err(|e| io(written, &tmp)(e.into_error()))?;
        file.sync_all()
            .map_err(io("fsync the temporary snapshot file", &tmp))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(io("rename the new snapshot to", &self.path))?;
        // Persist the rename itself: fsync the directory entry.
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync the snapshot's directory", &dir))?;
        if let Some(aof) = self.aof.get() {
            // Under the log's lock, which every write takes: same reason as the copy.
            saver::at_normal_priority(|| aof.compact(aof_offset));
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::store::{Entry, Value};

    fn set(store: &Store, key: &[u8], value: &[u8], ttl: Option<Duration>) {
        let now = Instant::now();
        let entry = Entry {
            value: Value::String(Bytes::copy_from_slice(value)),
            deadline: ttl.map(|t| now + t),
        };
        store.db(0).expect("db").shard(key).insert(key, entry, now);
        store.mark_dirty(1);
    }

    #[test]
    fn snapshot_round_trips_collections_as_readable_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kv_store_server1.json");
        let store = Store::new(16, 4);
        let now = Instant::now();
        let mut list = crate::store::List::new();
        list.push_back(b"a");
        list.push_back(b"\xff");
        let mut hash = crate::store::Hash::new();
        hash.insert(b"f", b"v");
        let mut set_ = crate::store::Set::new();
        set_.insert(b"7");
        let mut zset = crate::store::ZSet::new();
        zset.insert(b"m", 1.1);
        zset.insert(b"n", f64::NEG_INFINITY);
        let values = [
            (&b"l"[..], Value::List(list)),
            (b"h", Value::Hash(hash)),
            (b"s", Value::Set(set_)),
            (b"z", Value::ZSet(zset)),
        ];
        for (key, value) in &values {
            let entry = Entry {
                value: value.clone(),
                deadline: Some(now + Duration::from_secs(100)),
            };
            store.db(0).expect("db").shard(key).insert(key, entry, now);
        }
        store.mark_dirty(1);
        let p = Persister::new(path.clone(), 1);
        assert_eq!(p.save_if_dirty(&store).expect("save"), Some(4));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.contains(r#""type":"list","value":["a",{"base64":"/w=="}]"#),
            "{text}"
        );
        assert!(
            text.contains(r#""type":"hash","value":[["f","v"]]"#),
            "{text}"
        );
        assert!(text.contains(r#""type":"set","value":["7"]"#), "{text}");
        assert!(
            text.contains(r#"["n","-inf"]"#) && text.contains(r#"["m",1.1]"#),
            "{text}"
        );
        let restored = Store::new(16, 4);
        assert_eq!(Persister::new(path, 1).load(&restored).expect("load"), 4);
        let db = restored.db(0).expect("db");
        for (key, value) in values {
            let got = db.shard(key).get(key, now).expect("restored");
            assert_eq!(got.value, value);
            assert!(got.deadline.is_some());
        }
    }

    #[test]
    fn snapshot_round_trips_binary_data_and_ttls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kv_store_server1.json");
        let store = Store::new(16, 4);
        set(&store, b"plain", b"Alice", None);
        set(&store, b"\xff\x00bin", b"\x01\x02\xfe", None);
        set(&store, b"ttl", b"x", Some(Duration::from_secs(100)));
        let p = Persister::new(path.clone(), 1);
        assert_eq!(p.save_if_dirty(&store).expect("save"), Some(3));
        assert_eq!(p.save_if_dirty(&store).expect("no-op"), None);

        let restored = Store::new(16, 4);
        assert_eq!(Persister::new(path, 1).load(&restored).expect("load"), 3);
        let db = restored.db(0).expect("db");
        let now = Instant::now();
        assert_eq!(
            db.shard(b"\xff\x00bin")
                .get(b"\xff\x00bin", now)
                .map(|e| e.value.clone()),
            Some(Value::String(Bytes::from_static(b"\x01\x02\xfe")))
        );
        let ttl = db
            .shard(b"ttl")
            .get(b"ttl", now)
            .and_then(|e| e.deadline)
            .expect("deadline");
        let left = ttl - now;
        assert!(
            left > Duration::from_secs(98) && left <= Duration::from_secs(100),
            "{left:?}"
        );
    }

    #[test]
    fn a_failed_save_says_what_it_could_not_do_to_which_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kv_store_server1.json");
        let tmp = dir.path().join("kv_store_server1.json.tmp");
        // A directory where the temporary file must be created.
        fs::create_dir(&tmp).expect("blocker");
        let store = Store::new(1, 1);
        set(&store, b"k", b"v", None);
        let err = Persister::new(path, 1).save(&store).expect_err("blocked");
        let want = format!(
            "cannot create the temporary snapshot file {}: ",
            tmp.display()
        );
        assert!(err.to_string().starts_with(&want), "{err}");
    }

    #[test]
    fn corrupt_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kv_store_server1.json");
        fs::write(
            &path,
            b"{\"format\": \"minikv-snapshot\", \"version\": 1, \"datab",
        )
        .expect("write");
        let err = Persister::new(path.clone(), 1)
            .load(&Store::new(1, 1))
            .expect_err("corrupt");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot load the snapshot {}: it ends early, at line 1, column 50 (cut short?). \
                 Refusing to start; move the file away to start empty",
                path.display()
            )
        );
        assert!(matches!(err, PersistError::Corrupt { .. }));
        assert_eq!(fs::read(&path).expect("still there").len(), 50);
    }
}
