//! The append-only log: every change to the data, written to `kv_store_server{ID}.aof` before
//! (policy `always`) or shortly after (`everysec`, `no`) it is acknowledged, replayed on start
//! after the snapshot, and compacted after each snapshot.
//!
//! What is logged is the *effect* of a write, not the command: after a write command runs,
//! the state of each key it touched is read back under that key's shard lock and appended as
//! `SET key value [PXAT unix-ms]` or `DEL key` (plus `SELECT db`; FLUSHDB, FLUSHALL and SWAPDB
//! as themselves). Replaying such records is deterministic and idempotent: relative TTLs are
//! already absolute, INCRBYFLOAT's result is stored as computed, and records already reflected
//! in the snapshot can be applied again harmlessly. Reading back under the shard lock orders
//! the records of one key as its writes happened. A transaction's records form one record.
//!
//! File format (docs/persistence.md): a header `MINIKV-AOF 1\n` plus the absolute offset of the
//! file's first record (8 bytes, little endian), then records `[len u32][crc32 u32][payload]`,
//! the payload being RESP multibulk commands. Offsets are absolute across compactions: a
//! snapshot stores the offset its data covers, and replay skips records that end before it.
//!
//! A single writer thread owns the file: it writes what commands appended to a shared buffer,
//! fsyncs by the policy, publishes how far the file is synced (commands under `always` wait
//! for that before their replies are sent), and compacts the file on request.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant as StdInstant};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::persist::PersistError;
use crate::protocol::resp::RespLimits;
use crate::protocol::{Incoming, RespCodec};
use crate::store::{clock, Store};

/// How often the writer hands accumulated records to the OS under `everysec` and `no`: what
/// a process crash (not a machine crash) can lose under those policies.
const WRITE_EVERY: Duration = Duration::from_millis(10);

/// The header every log file starts with (followed by the 8-byte base offset).
pub const MAGIC: &[u8] = b"MINIKV-AOF 1\n";
const HEADER_LEN: u64 = MAGIC.len() as u64 + 8;

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
                "appendfsync must be always, everysec or no, not {other:?}"
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
    policy: FsyncPolicy,
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

/// A write's records, collected while its locks are held and appended as one record.
#[derive(Debug, Default)]
pub struct Batch {
    payload: BytesMut,
    db: Option<usize>,
}

impl Batch {
    /// Records the state of `key` in `db` as it is now: `SET key value [PXAT ms]`, or `DEL key`.
    pub fn state(&mut self, db: usize, key: &[u8], entry: Option<(&[u8], Option<Instant>)>) {
        self.select(db);
        match entry {
            Some((value, Some(deadline))) => {
                let at = clock::unix_ms_at(deadline).to_string();
                command(
                    &mut self.payload,
                    &[b"SET", key, value, b"PXAT", at.as_bytes()],
                );
            }
            Some((value, None)) => command(&mut self.payload, &[b"SET", key, value]),
            None => command(&mut self.payload, &[b"DEL", key]),
        }
    }

    /// Records a command that is replayed as itself (FLUSHDB, FLUSHALL, SWAPDB).
    pub fn verbatim(&mut self, db: usize, args: &[Bytes]) {
        self.select(db);
        let parts: Vec<&[u8]> = args.iter().map(|a| a.as_ref()).collect();
        command(&mut self.payload, &parts);
    }

    /// Adds another batch's records after this one's.
    pub fn extend(&mut self, other: Batch) {
        if other.payload.is_empty() {
            return;
        }
        // `other` starts with its own SELECT, so the selection after it is `other`'s.
        self.payload.extend_from_slice(&other.payload);
        self.db = other.db;
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }

    fn select(&mut self, db: usize) {
        if self.db != Some(db) {
            command(&mut self.payload, &[b"SELECT", db.to_string().as_bytes()]);
            self.db = Some(db);
        }
    }
}

impl Aof {
    /// Opens (creating if needed) the log at `path` and starts its writer thread. Call
    /// [`Aof::replay`] first so that a damaged tail is truncated before anything is appended.
    ///
    /// # Errors
    /// The file cannot be created or opened for appending.
    pub fn open(path: PathBuf, policy: FsyncPolicy, server_id: u64) -> Result<Aof, PersistError> {
        let io = |cause| PersistError::Io {
            path: path.clone(),
            cause,
        };
        let (file, base, end) = match OpenOptions::new().read(true).append(true).open(&path) {
            Ok(mut file) => {
                let base = read_header(&mut file, &path)?;
                let len = file.metadata().map_err(io)?.len();
                (file, base, base + len - HEADER_LEN)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_new(&path, 0, &[]).map_err(io)?;
                let file = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(&path)
                    .map_err(io)?;
                (file, 0, 0)
            }
            Err(e) => return Err(io(e)),
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
        });
        let (synced_tx, synced) = watch::channel(end);
        let writer = Writer {
            path: path.clone(),
            file,
            policy,
            shared: shared.clone(),
            synced: synced_tx,
            written: end,
            base,
            last_fsync: StdInstant::now(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("minikv-aof-{server_id}"))
            .spawn(move || writer.run())
            .map_err(io)?;
        Ok(Aof {
            path,
            policy,
            shared,
            synced,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The fsync policy.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a batch as one record; returns the absolute offset just past it. Call it while
    /// still holding the locks under which the batch's states were read.
    pub fn append(&self, batch: Batch) -> u64 {
        let mut state = self.shared.state.lock().expect("aof lock poisoned");
        if batch.payload.is_empty() {
            return state.end;
        }
        // Every batch starts with its own SELECT (see `Batch::select`), so a record never
        // depends on the one before it: replay may start at any record after a compaction.
        let payload = batch.payload;
        let crc = crc32fast::hash(&payload);
        state
            .buf
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        state.buf.extend_from_slice(&crc.to_le_bytes());
        state.buf.extend_from_slice(&payload);
        state.end += 8 + payload.len() as u64;
        let end = state.end;
        // Under `always` a reply waits for this record: wake the writer if it sleeps (a busy
        // writer picks it up on its next round). Otherwise the writer comes by every few
        // milliseconds and writes what accumulated in one go: a futex wake and a `write` per
        // command would cost more than the command.
        let wake = state.writer_sleeping && self.policy == FsyncPolicy::Always;
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

    /// Replays the log at `path` into `store`, skipping records that end at or before
    /// `covered` (already in the snapshot). A damaged last record (a crash mid-write) is
    /// reported and cut off; damage before the last record refuses to start. Returns the
    /// number of records applied.
    ///
    /// # Errors
    /// [`PersistError::Corrupt`] naming the file and the offset of the bad record.
    pub fn replay(path: &Path, store: &Store, covered: u64) -> Result<usize, PersistError> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(cause) => {
                return Err(PersistError::Io {
                    path: path.to_path_buf(),
                    cause,
                })
            }
        };
        let base = read_header(&mut file, path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|cause| PersistError::Io {
                path: path.to_path_buf(),
                cause,
            })?;
        let corrupt = |at: usize, what: &str| PersistError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "bad record at offset {} ({what}); refusing to start rather than drop the \
                 writes after it",
                HEADER_LEN as usize + at
            ),
        };
        let mut pos = 0;
        let mut applied = 0;
        let now = Instant::now();
        while pos < data.len() {
            let header = data.get(pos..pos + 8);
            let Some(header) = header else {
                return truncate(path, pos, data.len(), "a record header cut short", applied);
            };
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let Some(payload) = data.get(pos + 8..pos + 8 + len) else {
                return truncate(path, pos, data.len(), "a record cut short", applied);
            };
            let last = pos + 8 + len == data.len();
            if crc32fast::hash(payload) != crc {
                if last {
                    return truncate(path, pos, data.len(), "a checksum mismatch", applied);
                }
                return Err(corrupt(pos, "checksum mismatch"));
            }
            let end = base + (pos + 8 + len) as u64;
            if end > covered {
                apply(store, payload, now).map_err(|e| corrupt(pos, &e))?;
                applied += 1;
            }
            pos += 8 + len;
        }
        Ok(applied)
    }
}

/// Cuts a torn tail off the log (a crash while a record was being written).
fn truncate(
    path: &Path,
    at: usize,
    len: usize,
    what: &str,
    applied: usize,
) -> Result<usize, PersistError> {
    tracing::warn!(
        "{}: the last record at offset {} is incomplete ({what}): a crash while it was being \
         written; truncating {} bytes",
        path.display(),
        HEADER_LEN as usize + at,
        len - at
    );
    let file = OpenOptions::new().write(true).open(path).and_then(|f| {
        f.set_len(HEADER_LEN + at as u64)?;
        f.sync_all()
    });
    file.map_err(|cause| PersistError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    Ok(applied)
}

/// Applies one record's commands to the store.
fn apply(store: &Store, payload: &[u8], now: Instant) -> Result<(), String> {
    let mut codec = RespCodec::new(RespLimits::default());
    let mut buf = BytesMut::from(payload);
    let mut db = 0usize;
    while !buf.is_empty() {
        let request = match tokio_util::codec::Decoder::decode(&mut codec, &mut buf) {
            Ok(Some(Incoming::Request(r, _))) => r,
            Ok(Some(Incoming::CrossProtocol)) => return Err("a POST or Host: command".into()),
            Ok(_) => return Err("a command cut short inside a record".into()),
            Err(e) => return Err(e.to_string()),
        };
        let args = &request.args;
        let name = args
            .first()
            .map(|a| a.to_ascii_uppercase())
            .unwrap_or_default();
        let target = store.db(db).ok_or("database out of range")?;
        match (name.as_slice(), args.len()) {
            (b"SELECT", 2) => {
                db = parse(&args[1])?;
                store.db(db).ok_or("SELECT past the configured databases")?;
            }
            (b"SET", 3) => {
                target.shard(&args[1]).put(&args[1], &args[2], None, now);
            }
            (b"SET", 5) => {
                let at: i64 = parse(&args[4])?;
                match clock::instant_at_unix_ms(at) {
                    Some(d) if d > now => {
                        target.shard(&args[1]).put(&args[1], &args[2], Some(d), now);
                    }
                    _ => {
                        target.shard(&args[1]).delete(&args[1], now);
                    }
                }
            }
            (b"DEL", 2) => {
                target.shard(&args[1]).delete(&args[1], now);
            }
            (b"FLUSHDB", _) => {
                target.clear();
            }
            (b"FLUSHALL", _) => store.dbs().iter().for_each(|d| {
                d.clear();
            }),
            (b"SWAPDB", 3) => {
                if !store.swap_dbs(parse(&args[1])?, parse(&args[2])?) {
                    return Err("SWAPDB past the configured databases".into());
                }
            }
            _ => {
                return Err(format!(
                    "unexpected command {:?}",
                    String::from_utf8_lossy(&name)
                ))
            }
        }
    }
    store.mark_dirty(1);
    Ok(())
}

fn parse<T: std::str::FromStr>(arg: &[u8]) -> Result<T, String> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not a number: {:?}", String::from_utf8_lossy(arg)))
}

/// Appends one RESP multibulk command.
fn command(out: &mut BytesMut, parts: &[&[u8]]) {
    let mut n = itoa::Buffer::new();
    out.reserve(16 + parts.iter().map(|p| p.len() + 16).sum::<usize>());
    out.put_u8(b'*');
    out.put_slice(n.format(parts.len()).as_bytes());
    out.put_slice(b"\r\n");
    for part in parts {
        out.put_u8(b'$');
        out.put_slice(n.format(part.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(part);
        out.put_slice(b"\r\n");
    }
}

fn read_header(file: &mut File, path: &Path) -> Result<u64, PersistError> {
    let mut header = [0u8; HEADER_LEN as usize];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_exact(&mut header))
        .map_err(|e| PersistError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("no log header: {e}"),
        })?;
    if &header[..MAGIC.len()] != MAGIC {
        return Err(PersistError::Corrupt {
            path: path.to_path_buf(),
            reason: "not a minikv append-only log (bad header)".into(),
        });
    }
    let mut base = [0u8; 8];
    base.copy_from_slice(&header[MAGIC.len()..]);
    Ok(u64::from_le_bytes(base))
}

/// Writes a complete log file (header + `records`) atomically: temp file, fsync, rename.
fn write_new(path: &Path, base: u64, records: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("aof.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(MAGIC)?;
    file.write_all(&base.to_le_bytes())?;
    file.write_all(records)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The thread that owns the file.
struct Writer {
    path: PathBuf,
    file: File,
    policy: FsyncPolicy,
    shared: Arc<Shared>,
    synced: watch::Sender<u64>,
    /// Absolute offset written to the file so far.
    written: u64,
    /// Absolute offset of the file's first record (from its header).
    base: u64,
    last_fsync: StdInstant,
}

impl Writer {
    fn run(mut self) {
        loop {
            let (chunk, end, compact_to, closing) = {
                let mut state = self.shared.state.lock().expect("aof lock poisoned");
                while state.buf.is_empty() && state.compact_to.is_none() && !state.closing {
                    // `everysec` wakes up to fsync what `no`-style writes left unsynced.
                    state.writer_sleeping = true;
                    let nap = match self.policy {
                        FsyncPolicy::Always => Duration::from_millis(200),
                        _ => WRITE_EVERY,
                    };
                    let (next, _) = self
                        .shared
                        .wake
                        .wait_timeout(state, nap)
                        .expect("aof lock poisoned");
                    state = next;
                    state.writer_sleeping = false;
                    if self.policy == FsyncPolicy::EverySec && self.synced_behind() {
                        break;
                    }
                }
                (
                    std::mem::take(&mut state.buf),
                    state.end,
                    state.compact_to.take(),
                    state.closing,
                )
            };
            let result = self.write(&chunk, end, closing);
            let failed = result.is_err();
            if failed {
                // Roll back a partial write (a torn record in the middle of the log would
                // later refuse to load) and keep the records for the next attempt.
                let good = HEADER_LEN + (self.written - self.base);
                if let Err(e) = self.file.set_len(good) {
                    tracing::error!(
                        "{}: cannot roll back a failed write: {e}",
                        self.path.display()
                    );
                }
            } else if let Some(upto) = compact_to {
                if let Err(e) = self.compact(upto) {
                    tracing::error!(
                        "{}: compaction failed, keeping the full log: {e}",
                        self.path.display()
                    );
                }
            }
            let mut state = self.shared.state.lock().expect("aof lock poisoned");
            state.last_error = result.err().map(|e| {
                tracing::error!("{}: write failed, will retry: {e}", self.path.display());
                e.to_string()
            });
            self.shared.failing.store(failed, Ordering::Relaxed);
            if failed {
                let mut retry = chunk;
                retry.extend_from_slice(&state.buf);
                state.buf = retry;
                if compact_to.is_some() && state.compact_to.is_none() {
                    state.compact_to = compact_to;
                }
            }
            if closing && (state.buf.is_empty() || failed) {
                if failed {
                    tracing::error!("{}: closing with unwritten records", self.path.display());
                }
                return;
            }
            drop(state);
            if failed {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }

    fn synced_behind(&self) -> bool {
        *self.synced.borrow() < self.written
    }

    /// Writes `chunk` (ending at absolute `end`) and fsyncs as the policy says.
    fn write(&mut self, chunk: &[u8], end: u64, closing: bool) -> std::io::Result<()> {
        if !chunk.is_empty() {
            self.file.write_all(chunk)?;
            self.written = end;
        }
        let due = match self.policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::EverySec => self.last_fsync.elapsed() >= Duration::from_secs(1),
            FsyncPolicy::No => false,
        };
        if (due || closing) && self.synced_behind() {
            self.file.sync_data()?;
            self.last_fsync = StdInstant::now();
            self.synced.send_replace(self.written);
        }
        Ok(())
    }

    /// Rewrites the file without the records before absolute offset `upto`.
    fn compact(&mut self, upto: u64) -> std::io::Result<()> {
        let mut file = File::open(&self.path)?;
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact(&mut header)?;
        let mut base_bytes = [0u8; 8];
        base_bytes.copy_from_slice(&header[MAGIC.len()..]);
        let base = u64::from_le_bytes(base_bytes);
        if upto <= base {
            return Ok(());
        }
        // Records are kept whole: cut at the first record boundary at or after `upto`.
        let mut rest = Vec::new();
        file.read_to_end(&mut rest)?;
        let mut pos = 0usize;
        while pos + 8 <= rest.len() && base + (pos as u64) < upto {
            let len = u32::from_le_bytes([rest[pos], rest[pos + 1], rest[pos + 2], rest[pos + 3]]);
            pos += 8 + len as usize;
        }
        let pos = pos.min(rest.len());
        write_new(&self.path, base + pos as u64, &rest[pos..])?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)?;
        tracing::debug!(dropped = pos, "append-only log compacted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(4, 8)
    }

    #[test]
    fn records_replay_into_the_same_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kv.aof");
        let aof = Aof::open(path.clone(), FsyncPolicy::Always, 1).expect("open");
        let now = Instant::now();
        let mut batch = Batch::default();
        batch.state(0, b"a", Some((b"1", None)));
        batch.state(2, b"b", Some((b"2", Some(now + Duration::from_secs(60)))));
        batch.state(0, b"gone", None);
        let end = aof.append(batch);
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
            Some(Bytes::from_static(b"1"))
        );
        let db2 = restored.db(2).expect("db2");
        assert!(db2.shard(b"b").deadline(b"b", now).flatten().is_some());
        assert_eq!(Aof::replay(&path, &store(), end).expect("covered"), 0);
    }

    #[test]
    fn torn_tail_is_cut_and_earlier_damage_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kv.aof");
        let mut payload = BytesMut::new();
        command(&mut payload, &[b"SELECT", b"0"]);
        command(&mut payload, &[b"SET", b"k", b"v"]);
        let mut record = Vec::new();
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        let mut two = record.clone();
        two.extend_from_slice(&record);
        // Torn: a second record cut in the middle.
        write_new(&path, 0, &two[..record.len() + 5]).expect("write");
        assert_eq!(
            Aof::replay(&path, &store(), 0).expect("torn tail tolerated"),
            1
        );
        assert_eq!(
            fs::metadata(&path).expect("file").len(),
            HEADER_LEN + record.len() as u64,
            "truncated to the last whole record"
        );
        // Damage in the first of two records: refused, file untouched.
        let mut bad = two.clone();
        bad[12] ^= 0xff;
        write_new(&path, 0, &bad).expect("write");
        let err = Aof::replay(&path, &store(), 0).expect_err("corrupt");
        assert!(err.to_string().contains("offset 21"), "{err}");
        assert_eq!(
            fs::metadata(&path).expect("file").len(),
            HEADER_LEN + bad.len() as u64
        );
    }
}
