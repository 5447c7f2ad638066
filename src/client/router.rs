//! Key routing, exactly as the spec computes it:
//! `int(hashlib.md5(key.encode()).hexdigest(), 16) % N`, and the slot of a key in a
//! replicated cluster: the same integer modulo [`SLOTS`].
//!
//! ```
//! // Index 0 is server 1 of the configured list.
//! assert_eq!(minikv::node_for(b"user:alice", 3), minikv::node_for(b"user:alice", 3));
//! assert!(minikv::node_for(b"anything", 3) < 3);
//! // 3 divides SLOTS, so the slot agrees with the spec's server.
//! assert_eq!(minikv::slot_of(b"user:alice") as usize % 3, minikv::node_for(b"user:alice", 3));
//! ```

use md5::{Digest, Md5};

/// The index (0-based) of the server that owns `key` among `servers` servers: the MD5 digest
/// read as a 128-bit big-endian integer, modulo the count. A pure function.
///
/// # Panics
/// If `servers` is 0.
pub fn node_for(key: &[u8], servers: usize) -> usize {
    assert!(servers > 0, "node_for needs at least one server");
    (digest(key) % servers as u128) as usize
}

/// The slot of `key` in a replicated cluster, in `0..SLOTS`: the MD5 integer of [`node_for`]
/// modulo [`SLOTS`]. As [`SLOTS`] is a multiple of 1, 2, 3, 4, 6, 8 and 12, for those cluster
/// sizes `slot_of(key) % n == node_for(key, n)`. A pure function.
pub fn slot_of(key: &[u8]) -> u16 {
    // The remainder is below SLOTS, so it fits a u16.
    (digest(key) % u128::from(SLOTS)) as u16
}

/// How many slots a replicated cluster's keyspace is cut into: `12288` (3 * 2^12, so that 3,
/// 6 or 12 shards own equal shares).
pub const SLOTS: u16 = 12288;

/// The MD5 digest of `key` read as a 128-bit big-endian integer.
fn digest(key: &[u8]) -> u128 {
    let digest: [u8; 16] = Md5::digest(key).into();
    u128::from_be_bytes(digest)
}

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

    #[test]
    fn slot_of_is_the_md5_integer_modulo_slots() {
        // `int(hashlib.md5(k.encode()).hexdigest(), 16) % 12288`, with Python.
        let vectors: &[(&str, u16)] = &[("user:alice", 4131), ("", 4734)];
        for (key, want) in vectors {
            assert_eq!(slot_of(key.as_bytes()), *want, "key {key:?}");
        }
    }

    #[test]
    fn slot_of_agrees_with_node_for_when_n_divides_slots() {
        for i in 0..2000 {
            let key = format!("key:{i}");
            let slot = slot_of(key.as_bytes());
            assert!(slot < SLOTS);
            for n in [1, 2, 3, 4, 6, 8, 12] {
                assert_eq!(
                    slot as usize % n,
                    node_for(key.as_bytes(), n),
                    "key {key:?} n {n}"
                );
            }
        }
    }
}
