//! The files behind a durable [`LogStore`](super::LogStore): blocking I/O only, called from
//! `spawn_blocking` so no fsync runs on the async executor. It never looks inside entries
//! beyond their log id, and it knows nothing of openraft's scheduling.
//!
//! ```text
//! raft-meta.json  {"vote":..,"committed":..,"last_purged":..}   replaced atomically:
//!                 temp file, fsync, rename, fsync of the directory
//! raft-log        magic records
//! magic           "MINIKV-RAFT 2\n"   (or "MINIKV-RAFT 1\n", the first format)
//! record          len:u32 crc32:u32 payload    both little endian; crc32 of the payload
//! payload         one openraft Entry in postcard (format 1: serde_json, where every byte
//!                 of a key or value took up to four); indexes ascending and contiguous
//! ```
//! A format 1 file still opens and is appended to in format 1 until its next purge rewrites
//! it in format 2.
//! A torn last record (a crash mid-append, never acknowledged) is cut off when the log is
//! opened; damage before the last record is refused with the file and offset, like the
//! append-only log's replay. Entries at or below `last_purged` left by a crash between the
//! meta write and the log rewrite of a purge are dropped on open.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use openraft::{AnyError, Entry, LogId, StorageError, StorageIOError, Vote};
use serde::{Deserialize, Serialize};

use super::types::{NodeId, TypeConfig};

/// The name of the log file inside a member's directory.
pub const LOG_FILE: &str = "raft-log";
/// The name of the vote / committed / purged file inside a member's directory.
pub const META_FILE: &str = "raft-meta.json";

/// What `raft-meta.json` holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The last vote saved.
    pub vote: Option<Vote<NodeId>>,
    /// The last committed id saved.
    pub committed: Option<LogId<NodeId>>,
    /// Everything up to this id is purged.
    pub last_purged: Option<LogId<NodeId>>,
}

/// An open log file and where each of its records starts.
#[derive(Debug)]
pub struct DiskLog {
    dir: PathBuf,
    file: File,
    /// Log index -> offset of its record, for `truncate`.
    offsets: BTreeMap<u64, u64>,
    /// The file's length: where the next record goes.
    len: u64,
    /// How the file's records are encoded.
    format: Format,
}

/// A log file's record encoding, named by its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `MINIKV-RAFT 1`: serde_json.
    Json,
    /// `MINIKV-RAFT 2`: postcard.
    Postcard,
}

impl Format {
    fn magic(self) -> &'static [u8] {
        match self {
            Format::Json => MAGIC_JSON,
            Format::Postcard => MAGIC,
        }
    }

    fn of(bytes: &[u8]) -> Option<Format> {
        [Format::Postcard, Format::Json]
            .into_iter()
            .find(|f| bytes.starts_with(f.magic()))
    }

    fn encode(self, entry: &Entry<TypeConfig>) -> Result<Vec<u8>, LogFileError> {
        match self {
            Format::Json => serde_json::to_vec(entry).map_err(|e| write_err(e.to_string())),
            Format::Postcard => postcard::to_allocvec(entry).map_err(|e| write_err(e.to_string())),
        }
    }

    fn decode(self, payload: &[u8]) -> Result<Entry<TypeConfig>, String> {
        match self {
            Format::Json => serde_json::from_slice(payload).map_err(|e| e.to_string()),
            Format::Postcard => postcard::from_bytes(payload).map_err(|e| e.to_string()),
        }
    }
}

/// An error from the log's files. Its message names the file, and the offset for damage.
#[derive(Debug, thiserror::Error)]
pub enum LogFileError {
    /// An I/O call (or encoding an entry) failed: a full disk, permissions, a failing device.
    #[error("{0}")]
    Io(String),
    /// A file holds what the log never writes: damage before the last record, or another
    /// program's file in the directory. Nothing was changed.
    #[error("{0}")]
    Damaged(String),
}

impl From<LogFileError> for StorageError<NodeId> {
    fn from(e: LogFileError) -> Self {
        match e {
            LogFileError::Io(msg) => StorageIOError::write_logs(AnyError::error(msg)).into(),
            LogFileError::Damaged(msg) => StorageIOError::read_logs(AnyError::error(msg)).into(),
        }
    }
}

/// What opening a directory found.
#[derive(Debug)]
pub struct Opened {
    /// The open log.
    pub disk: DiskLog,
    /// The saved vote, committed and purged ids.
    pub meta: Meta,
    /// The entries in the log, past `meta.last_purged`.
    pub entries: Vec<Entry<TypeConfig>>,
}

impl DiskLog {
    /// Opens (or creates) the log in `dir`: reads the meta file and every record, cuts a torn
    /// last record off.
    ///
    /// # Errors
    /// An I/O error, an unreadable meta file, or a damaged record before the last one; the
    /// message names the file (and the offset).
    pub fn open(dir: &Path) -> Result<Opened, LogFileError> {
        fs::create_dir_all(dir).map_err(|e| io_err("create", dir, &e))?;
        let meta_path = dir.join(META_FILE);
        let meta = match fs::read(&meta_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                read_err(format!(
                    "{} is not a raft meta file: {e}",
                    meta_path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Meta::default(),
            Err(e) => return Err(io_err("read", &meta_path, &e)),
        };
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_err("open", &path, &e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io_err("read", &path, &e))?;
        if bytes.is_empty() {
            file.write_all(MAGIC)
                .and_then(|_| file.sync_all())
                .and_then(|_| sync_dir(dir))
                .map_err(|e| io_err("write the header of", &path, &e))?;
            bytes.extend_from_slice(MAGIC);
        }
        let Some(format) = Format::of(&bytes) else {
            return Err(read_err(format!(
                "{} does not start with a minikv raft log header",
                path.display()
            )));
        };
        let (records, end) = scan(&bytes, &path)?;
        if end < bytes.len() {
            // A torn last record: it was never fsynced whole, so never acknowledged.
            tracing::warn!(
                path = %path.display(),
                offset = end,
                cut = bytes.len() - end,
                "cutting a torn record off the raft log"
            );
            file.set_len(end as u64)
                .and_then(|_| file.sync_all())
                .map_err(|e| io_err("cut the torn tail of", &path, &e))?;
        }
        let mut offsets = BTreeMap::new();
        let mut entries = Vec::new();
        let mut prev: Option<u64> = None;
        for (offset, payload) in records {
            let entry = format.decode(payload).map_err(|e| {
                read_err(format!(
                    "{}: the record at offset {offset} is not a log entry: {e}",
                    path.display()
                ))
            })?;
            let index = entry.log_id.index;
            if prev.is_some_and(|p| p.checked_add(1) != Some(index)) {
                return Err(read_err(format!(
                    "{}: the record at offset {offset} holds index {index} after {}",
                    path.display(),
                    prev.unwrap_or_default()
                )));
            }
            prev = Some(index);
            if meta.last_purged.is_some_and(|p| index <= p.index) {
                continue;
            }
            offsets.insert(index, offset as u64);
            entries.push(entry);
        }
        let disk = DiskLog {
            dir: dir.to_path_buf(),
            file,
            offsets,
            len: end as u64,
            format,
        };
        Ok(Opened {
            disk,
            meta,
            entries,
        })
    }

    /// Appends `entries` as records and fsyncs them.
    ///
    /// # Errors
    /// The write or the fsync failed; the file is cut back to where it was.
    pub fn append(&mut self, entries: &[Entry<TypeConfig>]) -> Result<(), LogFileError> {
        let mut buf = Vec::new();
        let mut starts = Vec::with_capacity(entries.len());
        for entry in entries {
            let payload = self.format.encode(entry)?;
            starts.push((entry.log_id.index, self.len + buf.len() as u64));
            frame(&payload, &mut buf);
        }
        let path = self.path();
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data())
        {
            // Best effort: a partial write is cut off now, or as a torn tail on the next open.
            let _ = self.file.set_len(self.len);
            return Err(io_err("append to", &path, &e));
        }
        self.len += buf.len() as u64;
        self.offsets.extend(starts);
        Ok(())
    }

    /// Removes the entries from `index` on (conflicting entries a new leader replaces).
    ///
    /// # Errors
    /// Cutting or syncing the file failed.
    pub fn truncate(&mut self, index: u64) -> Result<(), LogFileError> {
        // The first record at or after `index`: entries are contiguous, so all of them go.
        match self.offsets.range(index..).next() {
            Some((_, &offset)) => self.cut(offset, index),
            None => Ok(()),
        }
    }

    /// Rewrites the log with only `kept` (the entries past a purge), atomically: temp file,
    /// fsync, rename, directory fsync. `meta` (with the new `last_purged`) is written first,
    /// so a crash in between leaves purged entries that the next open drops.
    ///
    /// # Errors
    /// Writing either file failed; the old log is then still in place.
    pub fn purge(&mut self, meta: &Meta, kept: &[Entry<TypeConfig>]) -> Result<(), LogFileError> {
        write_meta(&self.dir, meta)?;
        let path = self.path();
        // Rewritten whole, so in the current format whatever the file held.
        let format = Format::Postcard;
        let mut buf = format.magic().to_vec();
        let mut offsets = BTreeMap::new();
        for entry in kept {
            let payload = format.encode(entry)?;
            offsets.insert(entry.log_id.index, buf.len() as u64);
            frame(&payload, &mut buf);
        }
        write_atomically(&path, &buf).map_err(|e| io_err("rewrite", &path, &e))?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err("reopen", &path, &e))?;
        self.len = buf.len() as u64;
        self.offsets = offsets;
        self.format = format;
        Ok(())
    }

    /// Writes `meta` atomically.
    ///
    /// # Errors
    /// Writing, syncing or renaming the file failed.
    pub fn save_meta(&self, meta: &Meta) -> Result<(), LogFileError> {
        write_meta(&self.dir, meta)
    }

    fn cut(&mut self, offset: u64, index: u64) -> Result<(), LogFileError> {
        let path = self.path();
        self.file
            .set_len(offset)
            .and_then(|_| self.file.sync_all())
            .map_err(|e| io_err("truncate", &path, &e))?;
        self.len = offset;
        self.offsets.split_off(&index);
        Ok(())
    }

    fn path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }
}

/// The records [`scan`] found, (offset, payload) each, and the end of the last whole one.
type Scanned<'a> = (Vec<(usize, &'a [u8])>, usize);

/// The header of every raft log file.
const MAGIC: &[u8] = b"MINIKV-RAFT 2\n";
/// The header of a log in the first format (JSON records); as long as [`MAGIC`].
const MAGIC_JSON: &[u8] = b"MINIKV-RAFT 1\n";
/// Bytes before a record's payload.
const FRAME_LEN: usize = 8;

/// Splits `bytes` (header included) into records: (offset, payload) each, and the end of the
/// last whole record. A bad record (cut short, empty, or failing its checksum) is a torn tail
/// when no whole record follows it; one that a whole record follows is damage (its length
/// field may be what was hit, so "it reaches the end of the file" proves nothing).
fn scan<'a>(bytes: &'a [u8], path: &Path) -> Result<Scanned<'a>, LogFileError> {
    let mut records = Vec::new();
    let mut at = MAGIC.len();
    while at < bytes.len() {
        let Some(payload) = record_at(bytes, at) else {
            if let Some(next) = (at + 1..bytes.len()).find(|&o| record_at(bytes, o).is_some()) {
                return Err(read_err(format!(
                    "{}: the record at offset {at} is damaged and a whole record follows at \
                     offset {next}; refusing to drop acknowledged entries (move the file \
                     away to rejoin empty)",
                    path.display()
                )));
            }
            break; // a torn tail: the last append, never acknowledged
        };
        records.push((at, payload));
        at += FRAME_LEN + payload.len();
    }
    Ok((records, at.min(bytes.len())))
}

/// The payload of a whole record at `at`: its frame fits, it is not empty (an entry never
/// is; zeros are what a crash may leave past the data), and its checksum matches.
fn record_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let rest = bytes.get(at..)?;
    let word = |i: usize| -> Option<u32> {
        let b = rest.get(i..i + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let len = word(0)? as usize;
    let crc = word(4)?;
    let payload = rest.get(FRAME_LEN..FRAME_LEN.checked_add(len)?)?;
    (len > 0 && crc32fast::hash(payload) == crc).then_some(payload)
}

/// Frames a payload as a record: length, checksum, payload.
fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn write_meta(dir: &Path, meta: &Meta) -> Result<(), LogFileError> {
    let path = dir.join(META_FILE);
    let bytes = serde_json::to_vec(meta).map_err(|e| write_err(e.to_string()))?;
    write_atomically(&path, &bytes).map_err(|e| io_err("write", &path, &e))
}

/// Temp file, fsync, rename (atomic on POSIX: readers see the old file or the new one),
/// then fsync of the directory so the rename itself survives a crash.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn io_err(action: &str, path: &Path, e: &std::io::Error) -> LogFileError {
    write_err(format!("cannot {action} {}: {e}", path.display()))
}

fn write_err(msg: String) -> LogFileError {
    LogFileError::Io(msg)
}

fn read_err(msg: String) -> LogFileError {
    LogFileError::Damaged(msg)
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::effect::Effect;
    use crate::replication::types::Batch;

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Batch::default()),
        }
    }

    fn indexes(entries: &[Entry<TypeConfig>]) -> Vec<(u64, u64)> {
        entries
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect()
    }

    fn open(dir: &Path) -> Opened {
        DiskLog::open(dir).expect("log opens")
    }

    #[test]
    fn appended_entries_and_meta_come_back_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut disk = open(dir.path()).disk;
        disk.append(&[entry(1, 1), entry(1, 2)]).expect("append");
        disk.append(&[entry(2, 3)]).expect("append");
        let meta = Meta {
            vote: Some(Vote::new(2, 3)),
            committed: Some(LogId::new(CommittedLeaderId::new(1, 1), 2)),
            last_purged: None,
        };
        disk.save_meta(&meta).expect("meta");
        drop(disk);

        let opened = open(dir.path());
        assert_eq!(indexes(&opened.entries), [(1, 1), (1, 2), (2, 3)]);
        assert_eq!(opened.meta, meta);
    }

    fn big(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Batch {
                origin: 7,
                seq: index,
                effects: vec![Effect::Del {
                    db: 0,
                    key: bytes::Bytes::from(vec![0xe9; 1000]),
                }],
            }),
        }
    }

    #[test]
    fn a_first_format_log_opens_takes_appends_and_its_purge_rewrites_it_compact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut old = MAGIC_JSON.to_vec();
        for i in 1..=3 {
            let json = serde_json::to_vec(&big(1, i)).expect("json");
            frame(&json, &mut old);
        }
        fs::write(dir.path().join(LOG_FILE), &old).expect("write");
        let mut disk = open(dir.path()).disk;
        assert_eq!(disk.format, Format::Json);
        disk.append(&[big(1, 4)]).expect("append");
        drop(disk);
        let opened = open(dir.path());
        assert_eq!(indexes(&opened.entries), [(1, 1), (1, 2), (1, 3), (1, 4)]);
        let (mut disk, entries) = (opened.disk, opened.entries);
        let meta = Meta {
            last_purged: Some(entries[0].log_id),
            ..Meta::default()
        };
        disk.purge(&meta, &entries[1..]).expect("purge");
        disk.append(&[big(2, 5)]).expect("append");
        drop(disk);
        let bytes = fs::read(dir.path().join(LOG_FILE)).expect("read");
        assert!(bytes.starts_with(MAGIC), "rewritten in the current format");
        assert!(
            bytes.len() * 2 < old.len(),
            "four 1000-byte keys in {} bytes, three took {} as JSON",
            bytes.len(),
            old.len()
        );
        let opened = open(dir.path());
        assert_eq!(indexes(&opened.entries), [(1, 2), (1, 3), (1, 4), (2, 5)]);
        assert_eq!(
            serde_json::to_vec(&opened.entries[3]).expect("json"),
            serde_json::to_vec(&big(2, 5)).expect("json")
        );
    }

    #[test]
    fn truncate_drops_the_entries_from_an_index_and_appends_go_on_after_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut disk = open(dir.path()).disk;
        disk.append(&[entry(1, 1), entry(1, 2), entry(1, 3)])
            .expect("append");
        disk.truncate(2).expect("truncate");
        disk.append(&[entry(2, 2)]).expect("append");
        drop(disk);
        assert_eq!(indexes(&open(dir.path()).entries), [(1, 1), (2, 2)]);
    }

    #[test]
    fn purge_rewrites_the_log_without_the_purged_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut disk = open(dir.path()).disk;
        disk.append(&[entry(1, 1), entry(1, 2), entry(1, 3)])
            .expect("append");
        let before = fs::metadata(dir.path().join(LOG_FILE)).expect("stat").len();
        let meta = Meta {
            last_purged: Some(entry(1, 2).log_id),
            ..Meta::default()
        };
        disk.purge(&meta, &[entry(1, 3)]).expect("purge");
        disk.append(&[entry(1, 4)]).expect("append");
        drop(disk);
        let after = fs::metadata(dir.path().join(LOG_FILE)).expect("stat").len();
        assert!(
            after < before + 100,
            "the purged records are gone from the file"
        );
        let opened = open(dir.path());
        assert_eq!(indexes(&opened.entries), [(1, 3), (1, 4)]);
        assert_eq!(opened.meta.last_purged, meta.last_purged);
    }

    #[test]
    fn entries_a_crash_left_behind_a_purge_are_dropped_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut disk = open(dir.path()).disk;
        disk.append(&[entry(1, 1), entry(1, 2)]).expect("append");
        // The meta write of a purge happened, the log rewrite did not.
        disk.save_meta(&Meta {
            last_purged: Some(entry(1, 1).log_id),
            ..Meta::default()
        })
        .expect("meta");
        drop(disk);
        assert_eq!(indexes(&open(dir.path()).entries), [(1, 2)]);
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_appends_go_on() {
        for cut in [1, 5, 9, 20] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut disk = open(dir.path()).disk;
            disk.append(&[big(1, 1), big(1, 2)]).expect("append");
            drop(disk);
            let path = dir.path().join(LOG_FILE);
            let len = fs::metadata(&path).expect("stat").len();
            let file = OpenOptions::new().write(true).open(&path).expect("open");
            file.set_len(len - cut).expect("tear");
            drop(file);

            let mut opened = open(dir.path());
            assert_eq!(indexes(&opened.entries), [(1, 1)], "cut {cut}");
            opened.disk.append(&[entry(1, 2)]).expect("append");
            drop(opened);
            assert_eq!(indexes(&open(dir.path()).entries), [(1, 1), (1, 2)]);
        }
    }

    #[test]
    fn damage_before_the_last_record_is_refused_with_the_file_and_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut disk = open(dir.path()).disk;
        disk.append(&[entry(1, 1), entry(1, 2)]).expect("append");
        drop(disk);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&path).expect("read");
        let first_payload = MAGIC.len() + FRAME_LEN;
        bytes[first_payload + 2] ^= 0x55;
        fs::write(&path, &bytes).expect("write");

        let err = DiskLog::open(dir.path()).expect_err("damage is refused");
        let msg = err.to_string();
        assert!(msg.contains(LOG_FILE), "{msg}");
        assert!(msg.contains(&format!("offset {}", MAGIC.len())), "{msg}");
        // Nothing was cut: the file is as it was.
        assert_eq!(fs::read(&path).expect("read"), bytes);
    }

    #[test]
    fn a_damaged_length_before_the_last_record_is_refused_not_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut disk = open(dir.path()).disk;
        disk.append(&[entry(1, 1), entry(1, 2), entry(1, 3)])
            .expect("append");
        drop(disk);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&path).expect("read");
        // The first record now claims to run past the end of the file.
        bytes[MAGIC.len() + 3] = 0x7f;
        fs::write(&path, &bytes).expect("write");

        let err = DiskLog::open(dir.path()).expect_err("damage is refused");
        assert!(
            err.to_string().contains(&format!("offset {}", MAGIC.len())),
            "{err}"
        );
        assert_eq!(fs::read(&path).expect("read"), bytes, "nothing was cut");
    }

    #[test]
    fn zeros_after_the_last_record_are_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut disk = open(dir.path()).disk;
        disk.append(&[entry(1, 1)]).expect("append");
        drop(disk);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&path).expect("read");
        let len = bytes.len();
        bytes.extend_from_slice(&[0u8; 4096]);
        fs::write(&path, &bytes).expect("write");

        assert_eq!(indexes(&open(dir.path()).entries), [(1, 1)]);
        assert_eq!(fs::metadata(&path).expect("stat").len(), len as u64);
    }

    #[test]
    fn a_file_that_is_not_a_raft_log_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(LOG_FILE), b"MINIKV-AOF 2\n").expect("write");
        let err = DiskLog::open(dir.path()).expect_err("refused");
        assert!(err.to_string().contains(LOG_FILE), "{err}");
    }
}
