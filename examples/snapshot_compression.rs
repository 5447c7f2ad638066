//! Measures a group snapshot's image on the wire: its JSON size, the zstd frame's size at
//! levels 1 and 3, and the CPU time to serialise, compress, decompress and parse. Used for
//! "Snapshot compression between nodes (issue 10)" in docs/performance.md.
//!
//! ```text
//! cargo run --release --example snapshot_compression -- [KEYS...]
//! cargo run --release --example snapshot_compression -- 100000 1000000
//! ```
//! Keys are 16 bytes (`key:000000000042`), values 32 to 64 random alphanumeric bytes (less
//! compressible than most real text), one key in four with a TTL. Single-threaded.

use std::time::Instant;

use bytes::Bytes;
use minikv::replication::snapshot::{self, DbImage, EntryImage, Image};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let counts: Vec<usize> = match std::env::args().skip(1).map(|a| a.parse()).collect() {
        Ok(v) if !Vec::is_empty(&v) => v,
        Ok(_) => vec![100_000, 1_000_000],
        Err(e) => return Err(format!("KEYS must be numbers: {e}").into()),
    };
    println!("keys\tlevel\tjson_bytes\tframe_bytes\tratio\tserialise_ms\tcompress_ms\tdecompress_ms\tparse_ms");
    for keys in counts {
        let image = image(keys);
        let t = Instant::now();
        let json = serde_json::to_vec(&image)?;
        let serialise = t.elapsed();
        for level in [1, 3] {
            let t = Instant::now();
            let payload = zstd::bulk::compress(&json, level)?;
            let compress = t.elapsed();
            // The frame as the state machine sends it (level 1), decoded as a member does.
            let frame = match level {
                snapshot::LEVEL => snapshot::compress(&json)?,
                _ => frame_of(&payload, json.len()),
            };
            let t = Instant::now();
            let raw = snapshot::decompress(&frame)?;
            let decompress = t.elapsed();
            let t = Instant::now();
            let back: Image = serde_json::from_slice(&raw)?;
            let parse = t.elapsed();
            assert_eq!(back.dbs[0].entries.len(), keys);
            println!(
                "{keys}\t{level}\t{}\t{}\t{:.2}\t{}\t{}\t{}\t{}",
                json.len(),
                frame.len(),
                json.len() as f64 / frame.len() as f64,
                serialise.as_millis(),
                compress.as_millis(),
                decompress.as_millis(),
                parse.as_millis(),
            );
        }
    }
    Ok(())
}

/// `keys` entries in database 0, as a group's snapshot holds them.
fn image(keys: usize) -> Image {
    let mut rng = fastrand::Rng::with_seed(10);
    let entries = (0..keys)
        .map(|i| {
            let len = rng.usize(32..=64);
            let value: String = (0..len).map(|_| rng.alphanumeric()).collect();
            EntryImage {
                key: Bytes::from(format!("key:{i:012}")),
                kind: "string".to_owned(),
                data: Bytes::from(value),
                expires_at_ms: (i % 4 == 0).then(|| 1_900_000_000_000 + i as i64),
            }
        })
        .collect();
    Image {
        slots: None,
        dbs: vec![DbImage { db: 0, entries }],
    }
}

/// A frame around a payload compressed at another level than the state machine's.
fn frame_of(payload: &[u8], raw_len: usize) -> Vec<u8> {
    let mut out = b"MINIKV-SNAP 1\n".to_vec();
    out.extend_from_slice(&(raw_len as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}
