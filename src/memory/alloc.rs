//! The allocator's view of the process: bytes in use, the figure Redis calls `used_memory`
//! (it asks jemalloc; minikv runs on glibc malloc).
//!
//! **Counted** ([`Counting`], the binary's global allocator): every allocation and free adds
//! or subtracts the size of the chunk glibc hands out for it ([`chunk`]: the request plus an
//! 8-byte header, rounded up to 16, at least 32) to a counter of the thread, which is added to
//! the shared [`counted`] total once it has moved by [`FLUSH`] bytes either way. A request
//! that allocates and frees what it allocated touches only its thread's counter; the shared
//! total is at most [`FLUSH`] bytes per thread behind. Reading it is one load, so the
//! eviction check can ask before every write.
//!
//! **Sampled** ([`in_use`], glibc's `mallinfo2()`): `uordblks` (bytes in chunks handed out by
//! every arena's heap) plus `hblkhd` (bytes in blocks allocated with mmap, the large ones) is
//! what the program holds, headers and rounding included, and what C code allocated too. The
//! call walks every arena's free lists under its lock, tens of microseconds to a few
//! milliseconds with many free chunks, so `super::Budget` takes it now and then as a base and
//! adds what [`counted`] moved since.
//!
//! [`give_back`] asks glibc to return the pages of free chunks to the kernel (`malloc_trim`):
//! glibc keeps them after a free, so without it the resident set of a node that evicts stays
//! at its high-water mark, fragmented across the worker threads' arenas.
//!
//! These are the crate's only `unsafe` blocks: foreign calls with plain arguments, and the
//! global allocator, which hands every call to [`System`] unchanged.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

/// How far a thread's own count may move before it is added to the shared total.
pub const FLUSH: i64 = 32 << 10;

/// The shared total of every thread's flushed counts (bytes allocated less bytes freed since
/// the process started, in glibc chunk sizes).
static COUNTED: AtomicI64 = AtomicI64::new(0);

thread_local! {
    /// This thread's count since its last flush. No destructor, so reading it never allocates
    /// and works while the thread exits.
    static LOCAL: Cell<i64> = const { Cell::new(0) };
}

/// The global allocator of the `minikv` binary: [`System`] (glibc malloc), counting as the
/// module doc says.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counting;

/// The bytes glibc's heap uses for a request of `size` bytes: the request plus its 8-byte
/// size header, rounded up to 16, at least 32 (`request2size`). Blocks glibc maps on their own
/// (128 KiB and up) are page-rounded instead; the difference is under a page per block.
#[inline]
pub const fn chunk(size: usize) -> i64 {
    let rounded = (size + 8 + 15) & !15;
    if rounded < 32 {
        32
    } else {
        rounded as i64
    }
}

#[inline]
fn note(delta: i64) {
    // `try_with` fails only while the thread's locals are torn down; count directly then.
    let flushed = LOCAL.try_with(|local| {
        let now = local.get() + delta;
        if now.abs() >= FLUSH {
            local.set(0);
            COUNTED.fetch_add(now, Relaxed);
        } else {
            local.set(now);
        }
    });
    if flushed.is_err() {
        COUNTED.fetch_add(delta, Relaxed);
    }
}

// SAFETY: every call goes to `System` with the caller's arguments unchanged, so `System`'s
// guarantees are this allocator's; the bookkeeping around it never allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(chunk(layout.size()));
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(chunk(layout.size()));
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) };
        note(-chunk(layout.size()));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc`, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(chunk(new_size) - chunk(layout.size()));
        }
        p
    }
}

/// Bytes allocated less bytes freed through [`Counting`] since the process started, as far as
/// the threads have flushed their counts (each may hold back up to [`FLUSH`]), plus the
/// calling thread's own. Only differences between two readings mean anything: memory C code
/// allocates, or that was allocated before the first reading, is not in it.
#[inline]
pub fn counted() -> i64 {
    COUNTED.load(Relaxed) + LOCAL.try_with(Cell::get).unwrap_or(0)
}

/// Whether [`Counting`] is the global allocator (it is in the `minikv` binary; library tests
/// run on the default one): allocating a block must move this thread's count.
pub fn counting() -> bool {
    let before = LOCAL.try_with(Cell::get).unwrap_or(0);
    let block = std::hint::black_box(vec![0u8; 1024]);
    let after = LOCAL.try_with(Cell::get).unwrap_or(0);
    drop(block);
    before != after
}

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
    fn chunks_are_sized_as_glibc_sizes_them() {
        assert_eq!(chunk(0), 32);
        assert_eq!(chunk(24), 32);
        assert_eq!(chunk(25), 48);
        assert_eq!(chunk(1000), 1008);
        assert_eq!(chunk(4096), 4112);
    }

    #[test]
    #[allow(unsafe_code)]
    fn the_counting_allocator_counts_what_it_hands_out_and_gets_back() {
        // Library tests run on the default allocator: only these calls go through `Counting`,
        // so this thread's count moves by exactly what they do (or flushes, which `counted`
        // sees too).
        assert!(
            !counting(),
            "the library's tests have no counting allocator"
        );
        let before = counted();
        let layout = Layout::from_size_align(1000, 8).expect("layout");
        // SAFETY: a non-zero layout; the block is reallocated and freed with its layout.
        unsafe {
            let p = Counting.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(counted() - before, chunk(1000));
            let p = Counting.realloc(p, layout, 100_000);
            assert!(!p.is_null());
            assert_eq!(counted() - before, chunk(100_000));
            let big = Layout::from_size_align(100_000, 8).expect("layout");
            Counting.dealloc(p, big);
            let z = Counting.alloc_zeroed(big);
            assert!(!z.is_null() && *z.add(99_999) == 0);
            assert_eq!(counted() - before, chunk(100_000));
            Counting.dealloc(z, big);
        }
        assert_eq!(counted(), before);
    }

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
