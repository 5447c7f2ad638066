//! Key routing, exactly as the spec computes it:
//! `int(hashlib.md5(key.encode()).hexdigest(), 16) % N`.
//!
//! ```
//! // Index 0 is server 1 of the configured list.
//! assert_eq!(minikv::node_for(b"user:alice", 3), minikv::node_for(b"user:alice", 3));
//! assert!(minikv::node_for(b"anything", 3) < 3);
//! ```

use md5::{Digest, Md5};

/// The index (0-based) of the server that owns `key` among `servers` servers: the MD5 digest
/// read as a 128-bit big-endian integer, modulo the count. A pure function.
///
/// # Panics
/// If `servers` is 0.
pub fn node_for(key: &[u8], servers: usize) -> usize {
    assert!(servers > 0, "node_for needs at least one server");
    let digest: [u8; 16] = Md5::digest(key).into();
    (u128::from_be_bytes(digest) % servers as u128) as usize
}

/// The slot of `key` in a replicated cluster: the same MD5 integer as [`node_for`], modulo
/// [`SLOTS`]. A pure function.
pub fn slot_of(key: &[u8]) -> u16 {
    let digest: [u8; 16] = Md5::digest(key).into();
    // The remainder is below SLOTS, which fits a u16.
    (u128::from_be_bytes(digest) % u128::from(SLOTS)) as u16
}

/// Number of slots of a replicated cluster; every slot belongs to exactly one shard.
pub const SLOTS: u16 = 12288;

#[cfg(test)]
mod tests {
    use super::{node_for, slot_of, SLOTS};

    /// Computed independently with Python:
    /// `int(hashlib.md5(k.encode()).hexdigest(), 16) % n`.
    #[test]
    fn matches_python_hashlib_vectors() {
        let vectors: &[(&str, usize, usize)] = &[
            ("user:alice", 3, 0),
            ("user:bob", 3, 0),
            ("user:charlie", 3, 2),
            ("session:xyz", 3, 2),
            ("", 3, 0),
            ("user:1", 3, 1),
            ("key:000000001", 3, 2),
            ("user:alice", 5, 3),
            ("ключ", 3, 1),
        ];
        for (key, n, want) in vectors {
            assert_eq!(node_for(key.as_bytes(), *n), *want, "key {key:?} n {n}");
        }
    }

    /// Computed with Python: `int(hashlib.md5(k.encode()).hexdigest(), 16) % 12288`.
    #[test]
    fn slot_of_matches_python_hashlib_vectors() {
        let vectors: &[(&str, u16)] = &[
            ("user:alice", 4131),
            ("user:bob", 11235),
            ("", 4734),
            ("foo", 1240),
            ("key:000000001", 8438),
        ];
        for (key, want) in vectors {
            assert_eq!(slot_of(key.as_bytes()), *want, "key {key:?}");
            assert!(slot_of(key.as_bytes()) < SLOTS);
        }
    }
}
