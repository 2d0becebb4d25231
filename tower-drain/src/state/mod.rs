//! The shared state behind a [`Drain`](crate::Drain).
//!
//! A request, followed forward through the files:
//!
//! - `slot.rs`: the in-flight count is sharded into slots, one cache line
//!   each, and a thread always admits into the same slot, so two cores
//!   serving requests never write the same line. Admission is one
//!   compare-and-swap on the slot's word, which holds the count *and* the
//!   `TRIPPED` bit that guards it, so no request slips in after a trip
//!   (P2). The [`Guard`] it returns rides in the response future and body
//!   and gives the count back with one `fetch_sub`: two atomic
//!   read-modify-writes on a line the current core already owns, the whole
//!   hot path. The last release of a tripped slot wakes the waiters.
//! - `block.rs`: a drain's slots together, and the moments of its life: the
//!   trip, the lame duck, the deadline, the end of the unwind, each setting
//!   its bit in every slot and waking who waits for it.
//! - `wait.rs`: the futures that wait for those moments (`drained()`,
//!   `tripped()`, `not_ready()`).
//! - `connections.rs`: the connections of the servers serving the drain
//!   (`tower_drain::serve`), counted once each for the report.
//! - `pool.rs`: where blocks come from and go back to (they are never
//!   freed, so that a guard needs no reference count).
//!
//! Once every slot has its bit, no slot count can grow again, so "drained"
//! (tripped and every count zero) is a state that, once reached, holds for good.
//! Waiters re-check it whenever a tripped slot reaches zero.

mod block;
mod connections;
#[cfg(all(test, loom))]
mod loom;
mod pool;
mod slot;
mod wait;

pub(crate) use block::{Block, ServiceRef};
pub(crate) use pool::Handle;
pub(crate) use slot::{Admission, Guard, Registration, Slot};
pub(crate) use wait::{Event, Wait};

/// The slot this thread admits into. Threads are numbered in the order they
/// first admit a request, so a runtime's workers land on distinct slots.
#[inline]
pub(crate) fn current_slot() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        let mut i = index.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Ordering::Relaxed);
            index.set(i);
        }
        i
    })
}

/// How many slots a block gets: twice the cores, so that threads beyond the
/// runtime's workers (blocking pools, other runtimes) rarely share a slot.
fn slots_for_this_machine() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 2).clamp(2, 128)
}
