//! The append-only log: every change to the data, written to `kv_store_server{ID}.aof` before
//! (policy `always`) or shortly after (`everysec`, `no`) it is acknowledged, replayed on start
//! after the snapshot, and compacted after each snapshot.
//!
//! The log is a consumer of the effect stream ([`crate::effect`]): each command's effects (a
//! transaction's, together) become one record, appended while the command still holds the
//! locks of the keys it changed, so the records of one key are in write order. Replaying them
//! is deterministic: relative TTLs are already absolute, INCRBYFLOAT's result is stored as
//! computed, and per-key records already reflected in the snapshot apply again harmlessly.
//!
//! Rooms: this file owns [`Aof`] (the appenders' side and the policy); `record` is the file
//! format, `writer` the thread that owns the file, `replay` the start-up path. File format:
//! `record.rs` and docs/persistence.md. Offsets are absolute across compactions: a snapshot
//! stores the offset its data covers, and replay skips records that end before it.

mod record;
mod replay;
mod writer;

use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant as StdInstant;

use bytes::BytesMut;
use tokio::sync::watch;

use crate::effect::{Effect, EffectSink};
use record::{read_header, HEADER_LEN};
use writer::{write_new, Writer};

pub use record::{MAGIC, MAGIC_V1, MAGIC_V2};

/// Reading, writing or replaying the log failed.
#[derive(Debug, thiserror::Error)]
pub enum AofError {
    /// The log could not be read, written, synced or renamed (permissions, full disk).
    #[error("cannot {action} the append-only log {}: {cause}", path.display())]
    Io {
        /// What was being done, as words that fit "cannot ... the append-only log": `open`.
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error (in the message, not chained, so it prints once).
        cause: std::io::Error,
    },
    /// The log exists but cannot be replayed (damaged before its last record, or not a log).
    #[error(
        "the append-only log {} is corrupt: {reason}. Refusing to start rather than drop the \
         writes after it; move the file away to start from the snapshot alone",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
}

/// When the log is fsynced (Redis's `appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every write, before its reply is sent: no acknowledged write is ever lost.
    Always,
    /// Once a second: a machine crash loses at most about the last second.
    EverySec,
    /// Never explicitly: the operating system decides.
    No,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Ok(FsyncPolicy::Always),
            "everysec" => Ok(FsyncPolicy::EverySec),
            "no" => Ok(FsyncPolicy::No),
            other => Err(format!(
                "appendfsync must be always, everysec or no, not \"{}\"",
                other.escape_debug()
            )),
        }
    }
}

impl FsyncPolicy {
    /// The name CONFIG GET reports.
    pub fn name(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::EverySec => "everysec",
            FsyncPolicy::No => "no",
        }
    }
}

/// The log of one node.
#[derive(Debug)]
pub struct Aof {
    path: PathBuf,
    shared: Arc<Shared>,
    synced: watch::Receiver<u64>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// State shared by the appenders and the writer thread.
#[derive(Debug)]
struct Shared {
    state: Mutex<Pending>,
    wake: Condvar,
    /// The last write or fsync failed (checked by every write command: no lock).
    failing: AtomicBool,
    /// The fsync policy ([`crate::config::live::fsync_code`]): CONFIG SET appendfsync changes
    /// it while the writer runs.
    policy: std::sync::atomic::AtomicU8,
    /// The node's latency monitor (`aof-write`, `aof-fsync-always`), once attached.
    latency: std::sync::OnceLock<Arc<crate::stats::latency::LatencyMonitor>>,
}

impl Shared {
    fn policy(&self) -> FsyncPolicy {
        crate::config::live::fsync_from(self.policy.load(Ordering::Relaxed))
    }
}

#[derive(Debug)]
struct Pending {
    /// Records appended but not yet written to the file.
    buf: Vec<u8>,
    /// Absolute offset just past the last appended record.
    end: u64,
    /// A compaction requested up to this absolute offset.
    compact_to: Option<u64>,
    /// The writer is waiting on the condition variable (appenders notify only then).
    writer_sleeping: bool,
    /// The thread should write what is left and exit.
    closing: bool,
    /// Outcome of the last write/fsync, for INFO (`aof_last_write_status`).
    last_error: Option<String>,
}

impl Aof {
    /// Opens (creating if needed) the log at `path` and starts its writer thread. Call
    /// [`Aof::replay`] first so that a damaged tail is truncated before anything is appended.
    /// A version 1 log is rewritten as version 2 first (its records are valid version 2
    /// records), so that one file never mixes versions.
    ///
    /// # Errors
    /// The file cannot be created, converted or opened for appending.
    pub fn open(path: PathBuf, policy: FsyncPolicy, server_id: u64) -> Result<Aof, AofError> {
        let io = |action| {
            let path = path.clone();
            move |cause| AofError::Io {
                action,
                path,
                cause,
            }
        };
        let (file, base, end) = match OpenOptions::new().read(true).append(true).open(&path) {
            Ok(mut file) => {
                let (version, base) = read_header(&mut file, &path)?;
                if version < 3 {
                    let mut records = Vec::new();
                    file.read_to_end(&mut records)
                        .map_err(io("read the older records of"))?;
                    write_new(&path, base, &records).map_err(io("convert to version 3"))?;
                    file = OpenOptions::new()
                        .read(true)
                        .append(true)
                        .open(&path)
                        .map_err(io("reopen"))?;
                    tracing::info!(
                        "{}: converted from log format version {version} to 3",
                        path.display()
                    );
                }
                let len = file.metadata().map_err(io("read the size of"))?.len();
                (file, base, base + len.saturating_sub(HEADER_LEN))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_new(&path, 0, &[]).map_err(io("create"))?;
                let file = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(&path)
                    .map_err(io("open the new"))?;
                (file, 0, 0)
            }
            Err(e) => return Err(io("open")(e)),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(Pending {
                buf: Vec::new(),
                end,
                compact_to: None,
                writer_sleeping: false,
                closing: false,
                last_error: None,
            }),
            wake: Condvar::new(),
            failing: AtomicBool::new(false),
            policy: std::sync::atomic::AtomicU8::new(crate::config::live::fsync_code(policy)),
            latency: std::sync::OnceLock::new(),
        });
        let (synced_tx, synced) = watch::channel(end);
        let writer = Writer {
            path: path.clone(),
            file,
            shared: shared.clone(),
            synced: synced_tx,
            written: end,
            base,
            last_fsync: StdInstant::now(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("minikv-aof-{server_id}"))
            .spawn(move || writer.run())
            .map_err(io("start the writer thread of"))?;
        Ok(Aof {
            path,
            shared,
            synced,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Records the writer's slow writes and fsyncs in the node's latency monitor from now on
    /// (a second call is ignored).
    pub fn attach_latency(&self, latency: Arc<crate::stats::latency::LatencyMonitor>) {
        let _ = self.shared.latency.set(latency);
    }

    /// The fsync policy.
    pub fn policy(&self) -> FsyncPolicy {
        self.shared.policy()
    }

    /// Changes the fsync policy (CONFIG SET appendfsync): the writer follows from its next
    /// round; it is woken so that a switch to `always` takes effect at once.
    pub fn set_policy(&self, policy: FsyncPolicy) {
        self.shared
            .policy
            .store(crate::config::live::fsync_code(policy), Ordering::Relaxed);
        self.shared.wake.notify_one();
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record holding `payload`; returns the absolute offset just past it.
    fn append_payload(&self, payload: &[u8]) -> u64 {
        let mut state = self.shared.state.lock().expect("aof lock poisoned");
        if payload.is_empty() {
            return state.end;
        }
        record::frame(payload, &mut state.buf);
        state.end += (record::FRAME_LEN + payload.len()) as u64;
        let end = state.end;
        // Under `always` a reply waits for this record: wake the writer if it sleeps (a busy
        // writer picks it up on its next round). Otherwise the writer comes by every few
        // milliseconds and writes what accumulated in one go: a futex wake and a `write` per
        // command would cost more than the command.
        let wake = state.writer_sleeping && self.shared.policy() == FsyncPolicy::Always;
        drop(state);
        if wake {
            self.shared.wake.notify_one();
        }
        end
    }

    /// The absolute offset just past the last appended record: a snapshot taken from here on
    /// (under the store's gate) covers every record before it.
    pub fn end(&self) -> u64 {
        self.shared.state.lock().expect("aof lock poisoned").end
    }

    /// Waits until the file is fsynced at least up to `offset` (policy `always`).
    pub async fn synced(&self, offset: u64) {
        let mut rx = self.synced.clone();
        // An error means the writer thread is gone (shutdown); nothing more will be synced.
        let _ = rx.wait_for(|synced| *synced >= offset).await;
    }

    /// Asks the writer to drop every record before absolute offset `upto` (covered by a
    /// snapshot that is now safely on disk).
    pub fn compact(&self, upto: u64) {
        self.shared
            .state
            .lock()
            .expect("aof lock poisoned")
            .compact_to = Some(upto);
        self.shared.wake.notify_one();
    }

    /// The last write or fsync error, if the last attempt failed.
    pub fn last_error(&self) -> Option<String> {
        if !self.shared.failing.load(Ordering::Relaxed) {
            return None;
        }
        self.shared
            .state
            .lock()
            .expect("aof lock poisoned")
            .last_error
            .clone()
    }

    /// Writes and fsyncs everything appended, then stops the writer thread and waits for it
    /// (shutdown). Blocking.
    pub fn close(&self) {
        self.shared.state.lock().expect("aof lock poisoned").closing = true;
        self.shared.wake.notify_one();
        let thread = self.thread.lock().expect("aof thread lock poisoned").take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("{}: the log writer thread panicked", self.path.display());
            }
        }
    }
}

impl EffectSink for Aof {
    fn append(&self, effects: &[Effect]) -> u64 {
        let mut payload = BytesMut::new();
        record::encode(effects, &mut payload);
        self.append_payload(&payload)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::time::Instant;

    use super::*;
    use crate::store::{clock, Store, Value};

    fn store() -> Store {
        Store::new(4, 8)
    }

    fn framed(effects: &[Effect]) -> Vec<u8> {
        let mut payload = BytesMut::new();
        record::encode(effects, &mut payload);
        let mut out = Vec::new();
        record::frame(&payload, &mut out);
        out
    }

    fn set(key: &'static str) -> Effect {
        Effect::Put {
            db: 0,
            key: Bytes::from_static(key.as_bytes()),
            value: Value::String(Bytes::from_static(b"v")),
            expires_at_ms: None,
        }
    }

    #[test]
    fn records_replay_into_the_same_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kv.aof");
        let aof = Aof::open(path.clone(), FsyncPolicy::Always, 1).expect("open");
        let now = Instant::now();
        let in_a_minute = clock::unix_ms_at(now + Duration::from_secs(60));
        let end = aof.append(&[
            set("a"),
            Effect::Put {
                db: 2,
                key: Bytes::from_static(b"b"),
                value: Value::String(Bytes::from_static(b"2")),
                expires_at_ms: Some(in_a_minute),
            },
            Effect::Del {
                db: 0,
                key: Bytes::from_static(b"gone"),
            },
        ]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(aof.synced(end));
        aof.close();

        let restored = store();
        assert_eq!(Aof::replay(&path, &restored, 0).expect("replay"), 1);
        let now = Instant::now();
        let db0 = restored.db(0).expect("db0");
        assert_eq!(
            db0.shard(b"a").value(b"a", now),
            Some(Value::String(Bytes::from_static(b"v")))
        );
        let db2 = restored.db(2).expect("db2");
        assert!(db2.shard(b"b").deadline(b"b", now).flatten().is_some());
        assert_eq!(Aof::replay(&path, &store(), end).expect("covered"), 0);
    }

    #[test]
    fn torn_tail_is_cut_and_earlier_damage_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kv.aof");
        let record = framed(&[set("k")]);
        let mut two = record.clone();
        two.extend_from_slice(&record);
        // Torn: a second record cut in the middle.
        write_new(&path, 0, &two[..record.len() + 5]).expect("write");
        assert_eq!(
            Aof::replay(&path, &store(), 0).expect("torn tail tolerated"),
            1
        );
        assert_eq!(
            std::fs::metadata(&path).expect("file").len(),
            HEADER_LEN + record.len() as u64,
            "truncated to the last whole record"
        );
        // Damage in the first of two records: refused, file untouched.
        let mut bad = two.clone();
        bad[12] ^= 0xff;
        write_new(&path, 0, &bad).expect("write");
        let err = Aof::replay(&path, &store(), 0).expect_err("corrupt");
        assert_eq!(
            err.to_string(),
            format!(
                "the append-only log {} is corrupt: bad record at offset 21 (checksum \
                 mismatch). Refusing to start rather than drop the writes after it; move the \
                 file away to start from the snapshot alone",
                path.display()
            )
        );
        assert_eq!(
            std::fs::metadata(&path).expect("file").len(),
            HEADER_LEN + bad.len() as u64
        );
    }

    #[test]
    fn a_log_compacted_past_the_snapshot_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kv.aof");
        write_new(&path, 500, &framed(&[set("k")])).expect("write");
        let err = Aof::replay(&path, &store(), 100).expect_err("gap");
        assert!(
            err.to_string().contains("writes in between are missing"),
            "{err}"
        );
        assert_eq!(Aof::replay(&path, &store(), 500).expect("no gap"), 1);
    }

    #[test]
    fn a_version_1_log_replays_and_is_rewritten_as_version_2_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kv.aof");
        let record = framed(&[set("old")]);
        let mut file = MAGIC_V1.to_vec();
        file.extend_from_slice(&0u64.to_le_bytes());
        file.extend_from_slice(&record);
        std::fs::write(&path, &file).expect("write v1");
        let restored = store();
        assert_eq!(Aof::replay(&path, &restored, 0).expect("replay v1"), 1);
        let aof = Aof::open(path.clone(), FsyncPolicy::Always, 1).expect("open converts");
        aof.close();
        let after = std::fs::read(&path).expect("read");
        assert_eq!(&after[..MAGIC.len()], MAGIC);
        assert_eq!(&after[HEADER_LEN as usize..], &record[..]);
        assert_eq!(Aof::replay(&path, &store(), 0).expect("replay v2"), 1);
    }
}
