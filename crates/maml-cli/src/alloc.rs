//! The `maml` binary's allocator ([`CountingMiMalloc`], installed by the binary): mimalloc, which frees and reuses the many small
//! buffers of a meta step faster than glibc's allocator (docs/benchmarks.md), wrapped in
//! a counter of live heap bytes so that benchmarks can report the peak heap of a meta
//! step exactly (peak RSS hides it under allocator granularity).

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

use mimalloc::MiMalloc;

/// Counts live bytes and their peak.
pub struct Counting {
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl Counting {
    const fn new() -> Self {
        Self {
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Live heap bytes now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Peak live heap bytes since the last [`Counting::reset_peak`].
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Starts a new peak from the bytes live now.
    pub fn reset_peak(&self) {
        self.peak.store(self.live(), Ordering::Relaxed);
    }

    fn add(&self, n: usize) {
        let live = self.live.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.fetch_max(live, Ordering::Relaxed);
    }

    fn sub(&self, n: usize) {
        self.live.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The counter of the global allocator.
pub static HEAP: Counting = Counting::new();

/// mimalloc, counting live heap bytes in [`HEAP`]: the `maml` binary's global allocator.
pub struct CountingMiMalloc;

// SAFETY: every call is forwarded unchanged to MiMalloc, a correct allocator; the
// counters only observe sizes.
unsafe impl GlobalAlloc for CountingMiMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            HEAP.add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP.sub(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            HEAP.add(layout.size());
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            HEAP.sub(layout.size());
            HEAP.add(new_size);
        }
        p
    }
}
