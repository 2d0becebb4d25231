//! A global allocator that counts the allocations of each thread, for the
//! tests that assert a count ("no allocation per request"). Counting per
//! thread keeps the test harness's own threads out of the figure.
//!
//! A test binary installs it:
//!
//! ```ignore
//! #[global_allocator]
//! static COUNTING: tower_drain_tests::alloc::Counting = tower_drain_tests::alloc::Counting;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting.
#[derive(Debug)]
pub struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// count is a thread-local `Cell`, which allocates nothing once the thread
// has it, and is skipped while the thread's locals are being torn down.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations this thread has made so far (through [`Counting`], when it
/// is the global allocator).
pub fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}
