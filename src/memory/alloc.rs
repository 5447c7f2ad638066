//! The allocator's view of the process: bytes in use according to glibc's `mallinfo2()`, the
//! figure Redis calls `used_memory` (it asks jemalloc; minikv runs on glibc malloc).
//!
//! `uordblks` (bytes in chunks handed out by every arena's heap) plus `hblkhd` (bytes in
//! blocks allocated with mmap, the large ones) is what the program holds, headers and
//! rounding included; freed chunks leave it at once, even when glibc keeps their pages (RSS).
//! The call walks every arena's free lists under its lock, so it costs tens of microseconds to
//! a few milliseconds with many free chunks: callers sample it (see `super::Budget`).
//!
//! [`give_back`] asks glibc to return the pages of free chunks to the kernel (`malloc_trim`):
//! glibc keeps them after a free, so without it the resident set of a node that evicts stays
//! at its high-water mark, fragmented across the worker threads' arenas.
//!
//! These are the crate's only `unsafe` blocks: foreign calls with plain arguments.

/// Bytes the allocator has handed out and not got back, or `None` where glibc's
/// `mallinfo2` is unavailable (then callers fall back to the resident set size).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn in_use() -> Option<u64> {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value; glibc
    // (2.33 and later) serialises it against other allocator calls with the arenas' locks.
    let info = unsafe { libc::mallinfo2() };
    Some((info.uordblks as u64).saturating_add(info.hblkhd as u64))
}

/// Not glibc: no allocator statistics (see the glibc version).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn in_use() -> Option<u64> {
    None
}

/// Returns the free pages of every arena to the kernel (glibc's `malloc_trim(0)`); `true`
/// when some memory was released. It walks every arena under its lock, as `mallinfo2` does.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn give_back() -> bool {
    // SAFETY: malloc_trim takes a size and touches only the allocator's own state, under the
    // arenas' locks; 0 keeps no padding at the top of the main heap.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Not glibc: nothing to ask (see the glibc version).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back() -> bool {
    false
}

/// Resident set size of this process: `VmRSS` of `/proc/self/status`, which the kernel gives
/// in kB whatever the page size (0 where unavailable).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocator_count_follows_allocations() {
        let Some(before) = in_use() else {
            return;
        };
        let block: Vec<u8> = vec![1; 4 << 20];
        let during = in_use().unwrap_or(0);
        // Loose: other test threads allocate and free meanwhile.
        assert!(during >= before + (2 << 20), "{before} -> {during}");
        drop(block);
        assert!(rss_bytes() > 0);
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_small_chunks_are_given_back() {
        // 16 MiB in chunks below mmap's threshold, so they live in an arena's heap; every
        // other one kept, so the heap cannot just shrink from the top.
        let mut chunks: Vec<Vec<u8>> = (0..16 * 1024).map(|_| vec![7; 1024]).collect();
        let kept: Vec<Vec<u8>> = chunks.iter_mut().step_by(64).map(std::mem::take).collect();
        drop(chunks);
        assert!(
            give_back(),
            "malloc_trim released nothing after 16 MiB were freed"
        );
        assert!(kept.len() == 256 && kept.iter().all(|c| c[0] == 7));
    }
}
