//! The writer thread: owns the log file, writes what commands appended, fsyncs by the policy,
//! publishes how far the file is synced, rolls back failed writes and compacts on request.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use tokio::sync::watch;

use super::record::{HEADER_LEN, MAGIC};
use super::{FsyncPolicy, Shared};
use crate::stats::latency::event;

/// How often the writer hands accumulated records to the OS under `everysec` and `no`: what
/// a process crash (not a machine crash) can lose under those policies.
const WRITE_EVERY: Duration = Duration::from_millis(10);

/// Writes a complete log file (header + `records`) atomically: temp file, fsync, rename.
pub(super) fn write_new(path: &Path, base: u64, records: &[u8]) -> std::io::Result<()> {
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
pub(super) struct Writer {
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) shared: Arc<Shared>,
    pub(super) synced: watch::Sender<u64>,
    /// Absolute offset written to the file so far.
    pub(super) written: u64,
    /// Absolute offset of the file's first record (from its header).
    pub(super) base: u64,
    pub(super) last_fsync: StdInstant,
}

impl Writer {
    pub(super) fn run(mut self) {
        loop {
            let (chunk, end, compact_to, closing) = {
                let mut state = self.shared.state.lock().expect("aof lock poisoned");
                while state.buf.is_empty() && state.compact_to.is_none() && !state.closing {
                    // `everysec` wakes up to fsync what `no`-style writes left unsynced.
                    state.writer_sleeping = true;
                    let nap = match self.shared.policy() {
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
                    if self.shared.policy() == FsyncPolicy::EverySec && self.synced_behind() {
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
        let latency = self.shared.latency.get();
        if !chunk.is_empty() {
            let started = StdInstant::now();
            self.file.write_all(chunk)?;
            self.written = end;
            if let Some(latency) = latency {
                latency.record(event::AOF_WRITE, started.elapsed());
            }
        }
        let policy = self.shared.policy();
        let due = match policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::EverySec => self.last_fsync.elapsed() >= Duration::from_secs(1),
            FsyncPolicy::No => false,
        };
        if (due || closing) && self.synced_behind() {
            let started = StdInstant::now();
            self.file.sync_data()?;
            self.last_fsync = StdInstant::now();
            if let (Some(latency), FsyncPolicy::Always) = (latency, policy) {
                // Only `always` makes writes wait for this fsync (Redis records it likewise).
                latency.record(event::AOF_FSYNC_ALWAYS, self.last_fsync - started);
            }
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
