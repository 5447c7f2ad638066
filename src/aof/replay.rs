//! Replay on start: the records after the snapshot's offset are decoded into effects and
//! applied; a torn last record (a crash mid-write) is cut off, damage anywhere else refuses to
//! start.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;

use tokio::time::Instant;

use super::record::{decode, read_header, HEADER_LEN};
use super::{Aof, AofError};
use crate::store::Store;

impl Aof {
    /// Replays the log at `path` into `store`, skipping records that end at or before
    /// `covered` (already in the snapshot). A damaged last record (a crash mid-write) is
    /// reported and cut off; damage before the last record refuses to start. Returns the
    /// number of records applied.
    ///
    /// # Errors
    /// [`AofError::Corrupt`] naming the file and the offset of the bad record.
    pub fn replay(path: &Path, store: &Store, covered: u64) -> Result<usize, AofError> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(cause) => {
                return Err(AofError::Io {
                    action: "open",
                    path: path.to_path_buf(),
                    cause,
                })
            }
        };
        let (_version, base) = read_header(&mut file, path)?;
        // The log was compacted past what the snapshot covers (an older snapshot restored
        // beside a newer log, or the snapshot deleted): the writes in between are in neither
        // file. Refuse rather than start without them.
        if base > covered {
            return Err(AofError::Corrupt {
                path: path.to_path_buf(),
                reason: format!(
                    "it starts at offset {base}, but the snapshot covers the log only up to \
                     offset {covered}, so the writes in between are missing (restore the \
                     snapshot and the log that were saved together)"
                ),
            });
        }
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|cause| AofError::Io {
            action: "read",
            path: path.to_path_buf(),
            cause,
        })?;
        let corrupt = |at: usize, what: &str| AofError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("bad record at offset {} ({what})", HEADER_LEN as usize + at),
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
                // The whole record is decoded before any of it is applied: a transaction's
                // effects go in together or not at all.
                let effects = decode(payload).map_err(|e| corrupt(pos, &e))?;
                for effect in &effects {
                    effect
                        .apply(store, now)
                        .map_err(|e| corrupt(pos, &e.to_string()))?;
                }
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
) -> Result<usize, AofError> {
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
    file.map_err(|cause| AofError::Io {
        action: "truncate the torn tail of",
        path: path.to_path_buf(),
        cause,
    })?;
    Ok(applied)
}
