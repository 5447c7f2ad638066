//! Snapshots: the whole keyspace as one JSON file, written atomically and restored on start.
//!
//! Saving copies entries out of the store one shard at a time (cheap reference-counted
//! clones under short locks), then serialises and writes with no lock held, so requests are
//! never blocked behind the disk. The file is written to a temporary name, fsynced, renamed
//! over the old one (rename is atomic on POSIX filesystems) and the directory fsynced: a crash
//! at any instant leaves either the old or the new complete file. Format: `docs/persistence.md`.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::borrow::Cow;

use base64::Engine as _;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::aof::Aof;
use crate::store::{clock, dump_entries, Prepared, Store};

/// The `format` field every snapshot carries.
pub const FORMAT: &str = "minikv-snapshot";
/// The snapshot format version this build writes and reads.
pub const VERSION: u32 = 1;

/// Saving or loading a snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The file could not be read, written, synced or renamed (permissions, full disk).
    #[error("snapshot {path}: {cause}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error (in the message, not chained, so it prints once).
        cause: std::io::Error,
    },
    /// The file exists but is not a valid snapshot (truncated, edited, another format).
    #[error(
        "snapshot {path} is corrupt: {reason}; refusing to start (move it away to start empty)"
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
    saver: OnceLock<Mutex<mpsc::Sender<SaveJob>>>,
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
            last_save_unix: AtomicI64::new(unix_ms() / 1000),
            last_save_ok: AtomicBool::new(true),
            saves: AtomicU64::new(0),
            in_progress: AtomicBool::new(false),
            last_duration_ms: AtomicU64::new(0),
        }
    }

    /// Saves on the node's background saver thread (periodic saves, BGSAVE): `force` saves
    /// even when nothing changed. The thread runs at the lowest CPU priority (SCHED_IDLE, see
    /// `lower_priority`), so on a busy machine serialising a snapshot takes CPU time the
    /// request path does not need, rather than competing with it; it still progresses under
    /// full load, only slower.
    /// The returned receiver gets the outcome; dropping it is fine.
    pub fn background(
        self: &Arc<Self>,
        store: Arc<Store>,
        force: bool,
    ) -> tokio::sync::oneshot::Receiver<Result<Option<usize>, PersistError>> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        let job = SaveJob {
            persister: self.clone(),
            store,
            force,
            done,
        };
        let queue = self
            .saver
            .get_or_init(|| Mutex::new(start_saver(self.server_id)));
        if let Err(mpsc::SendError(job)) =
            queue.lock().expect("saver queue lock poisoned").send(job)
        {
            // The thread could not be started or died: save on a blocking-pool thread instead.
            std::thread::spawn(move || job.run());
        }
        outcome
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
                    path: self.path.clone(),
                    cause,
                })
            }
        };
        // Entries go straight from the parser into the store (no intermediate tree), with
        // strings borrowed from the file's bytes wherever they need no unescaping.
        let mut loader = Loader {
            store,
            server_id: self.server_id,
            aof_offset: 0,
            now: Instant::now(),
            loaded: 0,
        };
        let mut de = serde_json::Deserializer::from_slice(&data);
        (&mut loader)
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|e| PersistError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        self.saved_dirty.store(store.dirty(), Ordering::Relaxed);
        self.loaded_aof_offset
            .store(loader.aof_offset, Ordering::Relaxed);
        Ok(loader.loaded)
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
                .store(unix_ms() / 1000, Ordering::Relaxed);
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
        let gate = (!gate_held).then(|| store.gate().shared(u64::MAX));
        // Every log record before this offset was applied before the copy below started, so
        // the snapshot covers it (records after it are idempotent on top of the snapshot).
        let aof_offset = self.aof.get().map_or(0, |aof| aof.end());
        let dumps: Vec<(usize, Vec<Vec<u8>>)> = store
            .dbs()
            .iter()
            .enumerate()
            .map(|(i, db)| (i, db.dump(now)))
            .filter(|(_, shards)| shards.iter().any(|d| !d.is_empty()))
            .collect();
        drop(gate);

        let tmp = self.path.with_extension("json.tmp");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |cause| PersistError::Io { path, cause }
        };
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        let boost = || {
            if self.urgent.load(Ordering::Relaxed) {
                set_priority(true);
            }
        };
        let count = write_snapshot(&mut writer, self.server_id, aof_offset, &dumps, &boost)
            .map_err(io(&tmp))?;
        let file = writer.into_inner().map_err(|e| PersistError::Io {
            path: tmp.clone(),
            cause: e.into_error(),
        })?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        // Persist the rename itself: fsync the directory entry.
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))?;
        if let Some(aof) = self.aof.get() {
            aof.compact(aof_offset);
        }
        Ok(count)
    }
}

/// Writes the snapshot JSON (format in `docs/persistence.md`) for the dumped shards; returns
/// the number of entries written.
fn write_snapshot(
    w: &mut impl Write,
    server_id: u64,
    aof_offset: u64,
    dumps: &[(usize, Vec<Vec<u8>>)],
    between_shards: &dyn Fn(),
) -> std::io::Result<usize> {
    write!(
        w,
        "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"server_id\":{server_id},\
         \"saved_at_ms\":{},\"aof_offset\":{aof_offset},\"databases\":[",
        unix_ms()
    )?;
    let mut count = 0;
    for (n, (db, shards)) in dumps.iter().enumerate() {
        if n > 0 {
            w.write_all(b",")?;
        }
        write!(w, "{{\"db\":{db},\"entries\":[")?;
        let mut first = true;
        for (key, value, deadline) in shards
            .iter()
            .inspect(|_| between_shards())
            .flat_map(|d| dump_entries(d))
        {
            w.write_all(if first { b"\n{" } else { b",\n{" })?;
            first = false;
            write_bytes_field(w, "key", key)?;
            w.write_all(b",")?;
            write_bytes_field(w, "value", value)?;
            if let Some(d) = deadline {
                w.write_all(b",\"expires_at_ms\":")?;
                w.write_all(itoa::Buffer::new().format(clock::unix_ms_at(d)).as_bytes())?;
            }
            w.write_all(b"}")?;
            count += 1;
        }
        w.write_all(b"]}")?;
    }
    w.write_all(b"]}\n")?;
    Ok(count)
}

/// `"name":"text"` for UTF-8 data, else `"name_base64":"..."`. Plain printable ASCII (the
/// common case) is copied as is; anything needing escapes goes through serde_json.
fn write_bytes_field(w: &mut impl Write, name: &str, data: &[u8]) -> std::io::Result<()> {
    let plain = data
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    w.write_all(b"\"")?;
    w.write_all(name.as_bytes())?;
    if plain {
        w.write_all(b"\":\"")?;
        w.write_all(data)?;
        return w.write_all(b"\"");
    }
    match std::str::from_utf8(data) {
        Ok(text) => {
            w.write_all(b"\":")?;
            serde_json::to_writer(&mut *w, text).map_err(std::io::Error::from)
        }
        Err(_) => {
            w.write_all(b"_base64\":\"")?;
            w.write_all(
                base64::engine::general_purpose::STANDARD
                    .encode(data)
                    .as_bytes(),
            )?;
            w.write_all(b"\"")
        }
    }
}

/// Streams a snapshot into a store: checks the header, then inserts each entry as it is
/// parsed. `"format"` and `"version"` must come before `"databases"`, and each database's
/// `"db"` before its `"entries"` (as minikv writes them).
struct Loader<'s> {
    store: &'s Store,
    server_id: u64,
    aof_offset: u64,
    now: Instant,
    loaded: usize,
}

impl<'de> DeserializeSeed<'de> for &mut Loader<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(SnapshotVisitor(self))
    }
}

struct SnapshotVisitor<'a, 's>(&'a mut Loader<'s>);

impl<'de> Visitor<'de> for SnapshotVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a minikv snapshot object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut format, mut version) = (None, None);
        let mut saw_databases = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "format" => format = Some(map.next_value::<Cow<'de, str>>()?.into_owned()),
                "version" => version = Some(map.next_value::<u32>()?),
                "aof_offset" => self.0.aof_offset = map.next_value::<u64>()?,
                "server_id" => {
                    let id = map.next_value::<u64>()?;
                    if id != self.0.server_id {
                        // Allowed (nodes may be renumbered on purpose), but keys routed by MD5
                        // to another node will not be found here: say so.
                        tracing::warn!(
                            "snapshot was written by node {id}, loading it into node {}",
                            self.0.server_id
                        );
                    }
                }
                "databases" => {
                    check_header(format.as_deref(), version)?;
                    saw_databases = true;
                    map.next_value_seed(DatabasesSeed(&mut *self.0))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        check_header(format.as_deref(), version)?;
        if !saw_databases {
            return Err(de::Error::missing_field("databases"));
        }
        Ok(())
    }
}

fn check_header<E: de::Error>(format: Option<&str>, version: Option<u32>) -> Result<(), E> {
    match (format, version) {
        (Some(FORMAT), Some(VERSION)) => Ok(()),
        (None, _) => Err(E::custom(
            "no \"format\" field before the data: not a minikv snapshot",
        )),
        (Some(f), v) => Err(E::custom(format!(
            "format {f:?} version {v:?} is not {FORMAT:?} version {VERSION}"
        ))),
    }
}

struct DatabasesSeed<'a, 's>(&'a mut Loader<'s>);

impl<'de> DeserializeSeed<'de> for DatabasesSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for DatabasesSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of databases")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(DbSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct DbSeed<'a, 's>(&'a mut Loader<'s>);

impl<'de> DeserializeSeed<'de> for DbSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DbSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a database object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut db = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "db" => {
                    let index = map.next_value::<usize>()?;
                    if self.0.store.db(index).is_none() {
                        return Err(de::Error::custom(format!(
                            "database {index} exceeds the configured count"
                        )));
                    }
                    db = Some(index);
                }
                "entries" => {
                    let db =
                        db.ok_or_else(|| de::Error::custom("\"db\" must precede \"entries\""))?;
                    map.next_value_seed(EntriesSeed {
                        loader: &mut *self.0,
                        db,
                    })?;
                }
                other => return Err(de::Error::unknown_field(other, &["db", "entries"])),
            }
        }
        Ok(())
    }
}

struct EntriesSeed<'a, 's> {
    loader: &'a mut Loader<'s>,
    db: usize,
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some(db) = self.loader.store.db(self.db) else {
            return Err(de::Error::custom("database vanished"));
        };
        let now = self.loader.now;
        // Entries are grouped by shard and inserted shard by shard afterwards: each table is
        // sized once and filled while it is in cache.
        let mut by_shard: Vec<Vec<Prepared>> = (0..db.shard_count()).map(|_| Vec::new()).collect();
        while let Some(e) = seq.next_element::<EntryIn<'de>>()? {
            let key = decode_field(e.key, e.key_base64, "key").map_err(de::Error::custom)?;
            let value =
                decode_field(e.value, e.value_base64, "value").map_err(de::Error::custom)?;
            let deadline = match e.expires_at_ms {
                None => None,
                Some(at) => match clock::instant_at_unix_ms(at) {
                    Some(d) if d <= now => continue,
                    Some(d) => Some(d),
                    None => {
                        return Err(de::Error::custom(format!(
                            "expires_at_ms {at} is out of range"
                        )))
                    }
                },
            };
            let (shard, prepared) = db.prepare(&key, &value, deadline);
            by_shard[shard].push(prepared);
            self.loader.loaded += 1;
        }
        db.load(by_shard);
        Ok(())
    }
}

/// Runs until `shutdown`, saving every `interval` when something changed. Failures are
/// logged and retried on the next tick; the previous file stays intact.
pub async fn run(
    persister: Arc<Persister>,
    store: Arc<Store>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        // Shutdown wins over a due tick: the caller writes the final snapshot itself.
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let mut outcome = persister.background(store.clone(), false);
        // A save still queued or running after this long is starved of idle CPU: boost it
        // to normal priority, so that snapshot-only durability stays about one interval.
        let patience = interval.max(Duration::from_secs(1));
        let result = match tokio::time::timeout(patience, &mut outcome).await {
            Ok(result) => result,
            Err(_) => {
                persister.urgent.store(true, Ordering::Relaxed);
                outcome.await
            }
        };
        match result {
            Ok(Ok(Some(keys))) => tracing::debug!(keys, "snapshot saved"),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!("snapshot failed, will retry: {e}"),
            Err(_) => tracing::error!("snapshot thread stopped before answering"),
        }
    }
}

/// One save for the saver thread.
struct SaveJob {
    persister: Arc<Persister>,
    store: Arc<Store>,
    force: bool,
    done: tokio::sync::oneshot::Sender<Result<Option<usize>, PersistError>>,
}

impl SaveJob {
    fn run(self) {
        set_priority(self.persister.urgent.load(Ordering::Relaxed));
        let result = if self.force {
            self.persister.save(&self.store).map(Some)
        } else {
            self.persister.save_if_dirty(&self.store)
        };
        if let Err(e) = &result {
            tracing::error!("snapshot failed: {e}");
        }
        self.persister.urgent.store(false, Ordering::Relaxed);
        // The requester may have stopped waiting (BGSAVE does not wait).
        let _ = self.done.send(result);
    }
}

/// Puts the calling thread in Linux's SCHED_IDLE class (`urgent` false): it runs when a core
/// would otherwise idle and yields at once to any request-serving thread that wakes up, yet
/// still gets a small share under full load. `urgent` puts it back to normal priority: a
/// save that waited too long for idle CPU competes like any thread. Elsewhere: nice values.
fn set_priority(urgent: bool) {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    thread_local! {
        static CURRENT: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
    }
    if CURRENT.get() == Some(urgent) {
        return;
    }
    let (policy, priority) = if urgent {
        let normal = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
        let zero = ThreadPriorityValue::try_from(0u8).map(ThreadPriority::Crossplatform);
        (normal, zero.unwrap_or(ThreadPriority::Min))
    } else {
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        (idle, ThreadPriority::Min)
    };
    match set_thread_priority_and_policy(thread_native_id(), priority, policy) {
        Ok(()) => CURRENT.set(Some(urgent)),
        Err(e) => tracing::warn!("could not change the snapshot thread's priority: {e:?}"),
    }
}

/// Starts the saver thread at the lowest priority; it ends when the queue's sender is dropped.
fn start_saver(server_id: u64) -> mpsc::Sender<SaveJob> {
    let (queue, jobs) = mpsc::channel::<SaveJob>();
    let spawned = std::thread::Builder::new()
        .name(format!("minikv-save-{server_id}"))
        .spawn(move || {
            for job in jobs {
                job.run();
            }
        });
    if let Err(e) = spawned {
        // `background` falls back to a plain thread per save when the queue is closed.
        tracing::warn!("could not start the snapshot thread: {e}");
    }
    queue
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryIn<'a> {
    #[serde(borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    key_base64: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value_base64: Option<Cow<'a, str>>,
    expires_at_ms: Option<i64>,
}

fn decode_field<'a>(
    text: Option<Cow<'a, str>>,
    b64: Option<Cow<'a, str>>,
    name: &str,
) -> Result<Cow<'a, [u8]>, String> {
    match (text, b64) {
        (Some(Cow::Borrowed(t)), None) => Ok(Cow::Borrowed(t.as_bytes())),
        (Some(Cow::Owned(t)), None) => Ok(Cow::Owned(t.into_bytes())),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.as_bytes())
            .map(Cow::Owned)
            .map_err(|e| format!("{name}_base64 is not base64: {e}")),
        _ => Err(format!(
            "an entry needs exactly one of {name} and {name}_base64"
        )),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::store::Entry;

    fn set(store: &Store, key: &[u8], value: &[u8], ttl: Option<Duration>) {
        let now = Instant::now();
        let entry = Entry {
            value: Bytes::copy_from_slice(value),
            deadline: ttl.map(|t| now + t),
        };
        store.db(0).expect("db").shard(key).insert(key, entry, now);
        store.mark_dirty(1);
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
            Some(Bytes::from_static(b"\x01\x02\xfe"))
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
        assert!(err.to_string().contains("kv_store_server1.json"), "{err}");
        assert!(matches!(err, PersistError::Corrupt { .. }));
        assert_eq!(fs::read(&path).expect("still there").len(), 50);
    }
}
