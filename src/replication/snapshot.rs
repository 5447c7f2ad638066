//! The bytes of a group's snapshot: the [`Image`] in postcard (frame version 2; version 1, JSON,
//! where every byte of a key or value took up to four, still decodes) compressed with zstd in
//! a small checksummed frame, which is what members send each other, and the snapshot file
//! that keeps one frame with its [`SnapshotMeta`] in a member's directory.
//!
//! ```text
//! frame: "MINIKV-SNAP 2\n" | image length: u64 LE | crc32 of the payload: u32 LE | zstd payload
//! file:  "MINIKV-SNAPFILE 1\n" | meta length: u32 LE | crc32 of the meta: u32 LE | meta JSON
//!        | frame
//! ```
//!
//! Everything read here comes from a peer or a disk: every length is checked before it is
//! used, the image length against [`MAX_IMAGE_LEN`] too, and decompression never produces
//! more than the header announced. Errors are values ([`SnapshotError`]), never panics. The
//! file is replaced atomically (temp file, fsync, rename, directory fsync) and read back
//! whole; a damaged file is refused, never overwritten or cut. This module does blocking
//! I/O and CPU-heavy work: callers on the executor run it in `spawn_blocking`.

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use openraft::{BasicNode, SnapshotMeta};
use serde::{Deserialize, Serialize};

use super::disk_log::write_atomically;
use super::slots::GroupSlots;
use super::types::NodeId;
use crate::store::{clock, dump_entries};

/// The serialised snapshot: every live entry of every non-empty database (of the group's keys).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Image {
    /// The databases that hold keys, in index order.
    pub dbs: Vec<DbImage>,
    /// What the group holds (issue 11); absent in JSON images written before slots, which
    /// hold a group's genesis share.
    #[serde(default)]
    pub slots: Option<GroupSlots>,
}

/// One database in an [`Image`].
#[derive(Debug, Serialize, Deserialize)]
pub struct DbImage {
    /// The database's index (`SELECT n`).
    pub db: usize,
    /// Its entries.
    pub entries: Vec<EntryImage>,
}

/// One key in an [`Image`].
#[derive(Debug, Serialize, Deserialize)]
pub struct EntryImage {
    /// The key.
    pub key: Bytes,
    /// The value's type, as `TYPE` names it.
    pub kind: String,
    /// The value in its dumped form (for a string, its bytes).
    pub data: Bytes,
    /// The deadline in Unix milliseconds, if the key has a TTL.
    pub expires_at_ms: Option<i64>,
}

/// The image of a snapshot build's dumps (`(db, shard dumps)` pairs), borrowing every key and
/// value from them.
pub fn borrow<'a>(
    slots: Option<&'a GroupSlots>,
    dumps: &'a [(usize, Vec<Vec<u8>>)],
) -> ImageRef<'a> {
    ImageRef {
        slots,
        dbs: dumps
            .iter()
            .map(|(db, shards)| DbImageRef {
                db: *db,
                entries: shards
                    .iter()
                    .flat_map(|d| dump_entries(d))
                    .map(|e| EntryImageRef {
                        key: Raw(e.key),
                        kind: e.kind.name(),
                        data: Raw(e.data),
                        expires_at_ms: e.deadline.map(clock::unix_ms_at),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// A group snapshot's meta: its last log id and membership, and its id.
pub type Meta = SnapshotMeta<NodeId, BasicNode>;

/// A snapshot frame or file that cannot be used. Nothing was changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not start with the frame's (or the file's) magic: not a minikv snapshot,
    /// or one of a version this build does not read.
    #[error("not a minikv snapshot of a version this build reads (bad magic)")]
    BadMagic,
    /// The bytes end before a header does: a truncated transfer or file.
    #[error("snapshot truncated: {0}")]
    Truncated(&'static str),
    /// A checksum does not match: the bytes were damaged in transit or on disk.
    #[error("snapshot {what} checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// Which part: "payload" or "meta".
        what: &'static str,
        /// The checksum the header holds.
        stored: u32,
        /// The checksum of the bytes that follow it.
        computed: u32,
    },
    /// The header announces an image larger than [`MAX_IMAGE_LEN`]: damage, or a peer
    /// configured far beyond what this member can hold.
    #[error("snapshot image of {0} bytes is over the limit of {MAX_IMAGE_LEN} bytes")]
    TooLarge(u64),
    /// The payload is not a zstd stream, or decompresses to another length than announced.
    #[error("snapshot payload does not decompress: {0}")]
    Decompress(String),
    /// The decompressed image or the meta is not the JSON this module writes.
    #[error("snapshot {what} does not parse: {source}")]
    Json {
        /// Which part: "image" or "meta".
        what: &'static str,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The decompressed image is not the postcard this module writes.
    #[error("snapshot image does not decode: {0}")]
    Postcard(postcard::Error),
    /// The image parses but holds an entry this member refuses (an unknown type, a deadline
    /// out of range, a key of another group).
    #[error("snapshot image refused: {0}")]
    Refused(String),
    /// A blocking task did not finish (the runtime is shutting down, or it panicked), or a
    /// build was dropped because the state machine was reset meanwhile.
    #[error("snapshot work interrupted: {0}")]
    Interrupted(String),
    /// Reading or writing the snapshot file failed (permissions, a full disk), or the file
    /// holds a damaged snapshot (the inner error says which part).
    #[error("snapshot file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: Box<FileError>,
    },
}

/// What went wrong with a snapshot file (see [`SnapshotError::File`]).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// An I/O call failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file's contents are damaged.
    #[error("{0}")]
    Damaged(#[from] SnapshotError),
}

/// An [`Image`] that borrows its keys and values from the dumps a build copied out of the
/// store: it serialises to the same JSON as the `Image` holding copies would, without a second
/// copy of the group's data in memory.
#[derive(Debug, Serialize)]
pub struct ImageRef<'a> {
    /// The databases that hold keys, in index order.
    pub dbs: Vec<DbImageRef<'a>>,
    /// What the group holds.
    pub slots: Option<&'a GroupSlots>,
}

/// One database in an [`ImageRef`].
#[derive(Debug, Serialize)]
pub struct DbImageRef<'a> {
    /// The database's index.
    pub db: usize,
    /// Its entries.
    pub entries: Vec<EntryImageRef<'a>>,
}

/// One key in an [`ImageRef`] (see [`EntryImage`]).
#[derive(Debug, Serialize)]
pub struct EntryImageRef<'a> {
    /// The key.
    pub key: Raw<'a>,
    /// The value's type, as `TYPE` names it.
    pub kind: &'static str,
    /// The value in its dumped form.
    pub data: Raw<'a>,
    /// The deadline in Unix milliseconds, if the key has a TTL.
    pub expires_at_ms: Option<i64>,
}

/// Borrowed bytes that serialise as [`Bytes`] does (`serialize_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a>(pub &'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Serialises `image` and compresses it into a frame, streaming the JSON through the
/// compressor: the image's JSON (several times the data, as bytes are written as numbers) is
/// never whole in memory, only the compressed frame is.
///
/// # Errors
/// [`SnapshotError::Json`] if serialising fails (it does not for these types) and
/// [`SnapshotError::Decompress`] if zstd reports an error compressing.
pub fn encode<T: Serialize + ?Sized>(image: &T) -> Result<Vec<u8>, SnapshotError> {
    use std::io::Write;
    let zstd_error = |e: std::io::Error| SnapshotError::Decompress(format!("compressing: {e}"));
    let mut out = Vec::with_capacity(FRAME_HEADER + 4096);
    out.extend_from_slice(FRAME_MAGIC);
    out.extend_from_slice(&[0; FRAME_HEADER - FRAME_MAGIC.len()]);
    let encoder = zstd::stream::write::Encoder::new(out, LEVEL).map_err(zstd_error)?;
    let mut writer = std::io::BufWriter::with_capacity(
        64 << 10,
        Counted {
            inner: encoder,
            bytes: 0,
        },
    );
    postcard::to_io(image, &mut writer).map_err(|e| match e {
        postcard::Error::SerdeSerCustom => SnapshotError::Postcard(e),
        _ => SnapshotError::Decompress(format!("compressing: {e}")),
    })?;
    writer.flush().map_err(zstd_error)?;
    let counted = writer
        .into_inner()
        .map_err(|e| zstd_error(e.into_error()))?;
    let len = counted.bytes;
    let mut out = counted.inner.finish().map_err(zstd_error)?;
    let crc = crc32fast::hash(&out[FRAME_HEADER..]);
    let at = FRAME_MAGIC.len();
    out[at..at + 8].copy_from_slice(&len.to_le_bytes());
    out[at + 8..FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// A writer that counts what passes through it (the image's length, for the frame header).
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Compresses `raw` (an image in postcard) into a frame, at [`LEVEL`].
///
/// # Errors
/// [`SnapshotError::Decompress`] if zstd reports an error (it does not for in-memory input).
pub fn compress(raw: &[u8]) -> Result<Vec<u8>, SnapshotError> {
    let payload = zstd::bulk::compress(raw, LEVEL)
        .map_err(|e| SnapshotError::Decompress(format!("compressing: {e}")))?;
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(FRAME_MAGIC);
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Checks a frame and parses the image inside.
///
/// # Errors
/// Any [`SnapshotError`] but `File` and `Refused`: a bad magic, a truncated header, a checksum
/// mismatch, a length over the limit, a payload that does not decompress to the announced
/// length, or an image that does not parse.
pub fn decode(frame: &[u8]) -> Result<Image, SnapshotError> {
    let raw = decompress(frame)?;
    if frame.starts_with(FRAME_MAGIC_JSON) {
        return serde_json::from_slice(&raw).map_err(|source| SnapshotError::Json {
            what: "image",
            source,
        });
    }
    let (image, rest) = postcard::take_from_bytes(&raw).map_err(SnapshotError::Postcard)?;
    if !rest.is_empty() {
        return Err(SnapshotError::Postcard(
            postcard::Error::DeserializeBadEncoding,
        ));
    }
    Ok(image)
}

/// Checks a frame and returns the image's encoding (JSON in version 1, postcard after).
///
/// # Errors
/// As [`decode`], but for parsing.
pub fn decompress(frame: &[u8]) -> Result<Vec<u8>, SnapshotError> {
    let (len, payload) = check_frame(frame)?;
    // The checksum covers the payload, not the length: allocate as the output grows past a
    // first chunk, and read one byte more than announced to catch a longer stream.
    let mut raw = Vec::with_capacity(len.min(FIRST_CHUNK) as usize);
    zstd::stream::read::Decoder::new(payload)
        .and_then(|d| d.take(len + 1).read_to_end(&mut raw))
        .map_err(|e| SnapshotError::Decompress(e.to_string()))?;
    if raw.len() as u64 != len {
        return Err(SnapshotError::Decompress(format!(
            "{} bytes where the header announced {len}",
            raw.len()
        )));
    }
    Ok(raw)
}

/// Replaces `dir/snapshot.bin` atomically with `frame` and its `meta`.
///
/// # Errors
/// [`SnapshotError::File`] naming the file when writing, syncing or renaming fails.
pub fn write_file(dir: &Path, meta: &Meta, frame: &[u8]) -> Result<(), SnapshotError> {
    let path = file_path(dir);
    let meta = serde_json::to_vec(meta).map_err(|source| SnapshotError::Json {
        what: "meta",
        source,
    })?;
    let mut bytes = Vec::with_capacity(FILE_MAGIC.len() + 8 + meta.len() + frame.len());
    bytes.extend_from_slice(FILE_MAGIC);
    bytes.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&meta).to_le_bytes());
    bytes.extend_from_slice(&meta);
    bytes.extend_from_slice(frame);
    write_atomically(&path, &bytes).map_err(|e| file_error(&path, e.into()))
}

/// Reads `dir/snapshot.bin`: its meta and its frame (checked: magic, lengths, checksums), or
/// `None` when there is no such file.
///
/// # Errors
/// [`SnapshotError::File`] naming the file when it cannot be read or is damaged.
pub fn read_file(dir: &Path) -> Result<Option<(Meta, Vec<u8>)>, SnapshotError> {
    let path = file_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_error(&path, e.into())),
    };
    let parsed = parse_file(&bytes).map_err(|e| file_error(&path, e.into()))?;
    Ok(Some(parsed))
}

/// The snapshot file in `dir`.
pub fn file_path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

fn parse_file(bytes: &[u8]) -> Result<(Meta, Vec<u8>), SnapshotError> {
    let rest = bytes
        .strip_prefix(FILE_MAGIC.as_slice())
        .ok_or(SnapshotError::BadMagic)?;
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(SnapshotError::Truncated("no meta length"))?;
    let (crc, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(SnapshotError::Truncated("no meta checksum"))?;
    let (meta, frame) = rest
        .split_at_checked(u32::from_le_bytes(*len) as usize)
        .ok_or(SnapshotError::Truncated("the meta is cut short"))?;
    let (stored, computed) = (u32::from_le_bytes(*crc), crc32fast::hash(meta));
    if stored != computed {
        return Err(SnapshotError::Checksum {
            what: "meta",
            stored,
            computed,
        });
    }
    let meta = serde_json::from_slice(meta).map_err(|source| SnapshotError::Json {
        what: "meta",
        source,
    })?;
    // Check the frame's header and checksum now, so a damaged file is refused on open.
    check_frame(frame)?;
    Ok((meta, frame.to_vec()))
}

/// Checks a frame's magic, header and payload checksum without decompressing it; returns
/// the announced image length and the payload.
fn check_frame(frame: &[u8]) -> Result<(u64, &[u8]), SnapshotError> {
    let rest = frame
        .strip_prefix(FRAME_MAGIC.as_slice())
        .or_else(|| frame.strip_prefix(FRAME_MAGIC_JSON.as_slice()))
        .ok_or(SnapshotError::BadMagic)?;
    let (len, rest) = rest
        .split_first_chunk::<8>()
        .ok_or(SnapshotError::Truncated("no image length"))?;
    let (crc, payload) = rest
        .split_first_chunk::<4>()
        .ok_or(SnapshotError::Truncated("no checksum"))?;
    let len = u64::from_le_bytes(*len);
    if len > MAX_IMAGE_LEN {
        return Err(SnapshotError::TooLarge(len));
    }
    let (stored, computed) = (u32::from_le_bytes(*crc), crc32fast::hash(payload));
    if stored != computed {
        return Err(SnapshotError::Checksum {
            what: "payload",
            stored,
            computed,
        });
    }
    Ok((len, payload))
}

fn file_error(path: &Path, source: FileError) -> SnapshotError {
    SnapshotError::File {
        path: path.to_path_buf(),
        source: Box::new(source),
    }
}

/// The largest image (decompressed) a member accepts: 8 GiB, far past what a node of
/// this store holds in one group, small enough that a damaged length is caught.
pub const MAX_IMAGE_LEN: u64 = 8 << 30;

/// The zstd level: 1 (see docs/performance.md, "Snapshot compression between nodes").
pub const LEVEL: i32 = 1;

/// The snapshot file's name inside a member's directory.
pub const FILE_NAME: &str = "snapshot.bin";

/// The first bytes of a frame: format and version.
const FRAME_MAGIC: &[u8; 14] = b"MINIKV-SNAP 2\n";
/// The first bytes of a version 1 frame (a JSON image).
const FRAME_MAGIC_JSON: &[u8; 14] = b"MINIKV-SNAP 1\n";

/// The first bytes of a snapshot file: format and version.
const FILE_MAGIC: &[u8; 18] = b"MINIKV-SNAPFILE 1\n";

/// Magic, image length, checksum.
const FRAME_HEADER: usize = 14 + 8 + 4;

/// What decompression allocates before it has seen the output grow (64 MiB).
const FIRST_CHUNK: u64 = 64 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Image {
        Image {
            slots: None,
            dbs: vec![DbImage {
                db: 0,
                entries: (0..100)
                    .map(|i| EntryImage {
                        key: Bytes::from(format!("key:{i}")),
                        kind: "string".to_owned(),
                        data: Bytes::from(format!("value number {i}")),
                        expires_at_ms: (i % 2 == 0).then_some(1_900_000_000_000),
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn a_frame_decodes_to_the_same_image_and_is_smaller_than_its_json() {
        let frame = encode(&image()).expect("encodes");
        let json = serde_json::to_vec(&image()).expect("json");
        assert!(
            frame.len() < json.len() / 2,
            "{} vs {}",
            frame.len(),
            json.len()
        );
        let back = decode(&frame).expect("decodes");
        assert_eq!(
            serde_json::to_vec(&back).expect("json"),
            json,
            "same image back"
        );
    }

    #[test]
    fn a_borrowed_image_streams_to_the_frame_of_its_owned_copy() {
        let slots = crate::replication::slots::GroupSlots::default();
        let owned = Image {
            slots: Some(slots.clone()),
            ..image()
        };
        let borrowed = ImageRef {
            slots: Some(&slots),
            dbs: owned
                .dbs
                .iter()
                .map(|d| DbImageRef {
                    db: d.db,
                    entries: d
                        .entries
                        .iter()
                        .map(|e| EntryImageRef {
                            key: Raw(&e.key),
                            kind: "string",
                            data: Raw(&e.data),
                            expires_at_ms: e.expires_at_ms,
                        })
                        .collect(),
                })
                .collect(),
        };
        let (a, b) = (
            encode(&owned).expect("encodes"),
            encode(&borrowed).expect("encodes"),
        );
        assert_eq!(decompress(&a).expect("a"), decompress(&b).expect("b"));
        assert_eq!(
            serde_json::to_vec(&decode(&b).expect("decodes")).expect("json"),
            serde_json::to_vec(&owned).expect("json")
        );
    }

    #[test]
    fn a_bad_magic_a_flipped_byte_or_a_truncated_frame_is_refused() {
        let frame = encode(&image()).expect("encodes");
        let mut magic = frame.clone();
        magic[0] ^= 1;
        assert!(matches!(decode(&magic), Err(SnapshotError::BadMagic)));
        for at in [FRAME_HEADER, frame.len() / 2, frame.len() - 1] {
            let mut flipped = frame.clone();
            flipped[at] ^= 0x40;
            assert!(
                matches!(decode(&flipped), Err(SnapshotError::Checksum { .. })),
                "byte {at}"
            );
        }
        for len in [0, 10, FRAME_MAGIC.len() + 3, FRAME_HEADER - 1] {
            assert!(matches!(
                decode(&frame[..len]),
                Err(SnapshotError::BadMagic | SnapshotError::Truncated(_))
            ));
        }
        // Cut inside the payload: the checksum catches it before zstd sees it.
        assert!(matches!(
            decode(&frame[..frame.len() - 5]),
            Err(SnapshotError::Checksum { .. })
        ));
    }

    #[test]
    fn a_length_over_the_limit_or_unlike_the_payload_is_refused() {
        let frame = encode(&image()).expect("encodes");
        let mut huge = frame.clone();
        huge[14..22].copy_from_slice(&(MAX_IMAGE_LEN + 1).to_le_bytes());
        assert!(matches!(decode(&huge), Err(SnapshotError::TooLarge(_))));
        for wrong in [1, 1_000_000] {
            let mut other = frame.clone();
            other[14..22].copy_from_slice(&(wrong as u64).to_le_bytes());
            assert!(matches!(decode(&other), Err(SnapshotError::Decompress(_))));
        }
        // A payload that is not zstd, with a valid checksum.
        let not_zstd = b"definitely not zstd";
        let mut forged = FRAME_MAGIC.to_vec();
        forged.extend_from_slice(&19u64.to_le_bytes());
        forged.extend_from_slice(&crc32fast::hash(not_zstd).to_le_bytes());
        forged.extend_from_slice(not_zstd);
        assert!(matches!(decode(&forged), Err(SnapshotError::Decompress(_))));
        // Valid zstd of something that is not an image, in either version.
        let mut json = compress(b"[1,2,3]").expect("compresses");
        assert!(matches!(decode(&json), Err(SnapshotError::Postcard(_))));
        json[..FRAME_MAGIC.len()].copy_from_slice(FRAME_MAGIC_JSON);
        assert!(matches!(decode(&json), Err(SnapshotError::Json { .. })));
    }

    #[test]
    fn a_version_1_json_frame_still_decodes() {
        let json = serde_json::to_vec(&image()).expect("json");
        let mut frame = compress(&json).expect("compresses");
        frame[..FRAME_MAGIC.len()].copy_from_slice(FRAME_MAGIC_JSON);
        assert_eq!(
            serde_json::to_vec(&decode(&frame).expect("decodes")).expect("json"),
            json
        );
        assert!(
            encode(&image()).expect("encodes").len() < frame.len(),
            "version 2 is smaller"
        );
    }

    #[test]
    fn a_file_comes_back_and_a_damaged_one_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read_file(dir.path()).expect("reads").is_none());
        let meta = SnapshotMeta {
            snapshot_id: "1-5-1".to_owned(),
            ..Default::default()
        };
        let frame = encode(&image()).expect("encodes");
        write_file(dir.path(), &meta, &frame).expect("writes");
        let (back, got) = read_file(dir.path()).expect("reads").expect("a file");
        assert_eq!((back, got), (meta, frame));

        let path = file_path(dir.path());
        let good = std::fs::read(&path).expect("read");
        for at in [0, FILE_MAGIC.len() + 9, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).expect("write");
            let err = read_file(dir.path()).expect_err("refused");
            assert!(err.to_string().contains("snapshot.bin"), "{err}");
        }
        std::fs::write(&path, &good[..good.len() / 2]).expect("write");
        assert!(read_file(dir.path()).is_err(), "truncated");
    }
}
