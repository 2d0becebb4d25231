//! The shared state behind a [`Drain`](crate::Drain).
//!
//! The in-flight count is sharded into slots, one cache line each, and a thread
//! always admits into the same slot, so two cores serving requests never write
//! the same line. Each slot word holds the count *and* the `TRIPPED` bit that
//! guards it: admission checks the bit and takes a count in one
//! compare-and-swap, so no request can slip in after a trip has set the bit
//! (P2). Release is one `fetch_sub`. That is the whole hot path: two atomic
//! read-modify-writes on a line the current core already owns. The word's
//! high bits carry the generation of the drain the block serves (see
//! `pool.rs`), checked in the same compare-and-swap.
//!
//! Once every slot has its bit, no slot count can grow again, so "drained"
//! (tripped and every count zero) is a state that, once reached, holds for good.
//! Waiters re-check it whenever a tripped slot reaches zero.

mod guard;
#[cfg(all(test, loom))]
mod loom;
mod pool;
mod wait;

pub(crate) use guard::Guard;
pub(crate) use pool::{Handle, ServiceRef};
pub(crate) use wait::{Event, Wait};

use std::fmt;
use std::sync::{OnceLock, PoisonError};
use std::task::Waker;

use slab::Slab;

use crate::sync::{AtomicBool, AtomicUsize, Mutex, Notified, Notify, Ordering};

/// Set in every slot word when the drain trips: admission fails from then on.
const TRIPPED: usize = 1;
/// Set in every slot word at the drain deadline: admitted work is cut.
const FORCED: usize = 2;
/// One admitted request in a slot word.
const ONE: usize = 4;
/// Where the generation starts in a slot word: which drain the block serves
/// now (see `pool.rs`). Below it, the count: 2^38 requests per slot on 64-bit
/// targets, 2^22 on 32-bit ones.
#[cfg(target_pointer_width = "64")]
const GENERATION_SHIFT: u32 = 40;
#[cfg(not(target_pointer_width = "64"))]
const GENERATION_SHIFT: u32 = 24;
/// The generation bits of a slot word.
const GENERATION: usize = usize::MAX << GENERATION_SHIFT;
/// The count bits of a slot word.
const COUNT: usize = !GENERATION & !(TRIPPED | FORCED);

#[inline]
fn count(word: usize) -> usize {
    (word & COUNT) / ONE
}

/// What [`Block::try_admit`] decided.
pub(crate) enum Admission {
    /// Counted until the guard is dropped.
    Admitted(Guard),
    /// The drain has tripped.
    Refused,
    /// The drain the caller was made for is gone (its block serves another
    /// drain now): nothing can trip it any more, so the request passes,
    /// uncounted.
    Stale,
}

/// One shard of the in-flight count, alone on its cache line (128 bytes covers
/// the adjacent-line prefetch of current x86 parts).
#[repr(align(128))]
pub(crate) struct Slot {
    word: AtomicUsize,
    /// The block this slot belongs to, set once when the block is placed.
    /// Only the slow path (the last release of a tripped slot) reads it, so a
    /// guard carries one pointer.
    block: OnceLock<&'static Block>,
    rejected: AtomicUsize,
    cut: AtomicUsize,
    /// Wakers of this slot's requests that are waiting (a pending response or
    /// body), so the deadline can wake them. A request registers only once it
    /// has to wait, keeps its key, and removes it when it ends; the slab's
    /// storage is reused, so registering allocates only past the most requests
    /// ever waiting at once on this slot.
    waiting: Mutex<Slab<Waker>>,
}

impl Slot {
    fn new() -> Self {
        Self {
            word: AtomicUsize::new(0),
            block: OnceLock::new(),
            rejected: AtomicUsize::new(0),
            cut: AtomicUsize::new(0),
            waiting: Mutex::new(Slab::new()),
        }
    }

    fn waiting(&self) -> impl std::ops::DerefMut<Target = Slab<Waker>> + '_ {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything one `Drain` shares with its layers, services, guards and futures.
pub(crate) struct Block {
    slots: Box<[Slot]>,
    /// `slots.len() - 1`; the length is a power of two.
    mask: usize,
    /// Set once every slot carries `TRIPPED`.
    tripped: AtomicBool,
    /// Set once every slot carries `FORCED`.
    forced: AtomicBool,
    /// Set by `Drain::lame_duck`: readiness fails, requests are still served.
    lame_duck: AtomicBool,
    /// The generation bits every slot word carries while this block serves
    /// its current drain; services compare theirs to it on admission.
    generation: AtomicUsize,
    /// Requests in flight at the trip: each slot's count when its bit was set.
    at_trip: AtomicUsize,
    /// Notified at the trip and at the lame duck.
    on_trip: Notify,
    /// Notified when a tripped slot reaches zero, and at the trip itself.
    on_release: Notify,
    /// Live [`Handle`]s; when it reaches zero the block goes back to the pool.
    handles: AtomicUsize,
}

impl Block {
    /// A new block with room for `slots` shards (rounded up to a power of
    /// two), placed for good: blocks are never freed (see `pool.rs`).
    pub(crate) fn leak(slots: usize) -> &'static Self {
        #[cfg(all(test, not(loom)))]
        pool::tests::LEAKED.with(|n| n.set(n.get() + 1));
        let block: &'static Block = Box::leak(Box::new(Block::new(slots)));
        for slot in block.slots.iter() {
            let _ = slot.block.set(block);
        }
        block
    }

    fn new(slots: usize) -> Self {
        let slots = slots.max(1).next_power_of_two();
        Self {
            slots: (0..slots).map(|_| Slot::new()).collect(),
            mask: slots - 1,
            tripped: AtomicBool::new(false),
            forced: AtomicBool::new(false),
            lame_duck: AtomicBool::new(false),
            generation: AtomicUsize::new(0),
            at_trip: AtomicUsize::new(0),
            on_trip: Notify::new(),
            on_release: Notify::new(),
            handles: AtomicUsize::new(1),
        }
    }

    /// Admits one request into slot `index` (any number; it is masked) for
    /// the drain of `generation`, or counts a rejection there if the drain
    /// has tripped.
    #[inline]
    pub(crate) fn try_admit(&'static self, index: usize, generation: usize) -> Admission {
        let slot = &self.slots[index & self.mask];
        let mut word = slot.word.load(Ordering::Relaxed);
        loop {
            // The generation is checked in the same word as the count: a
            // block cannot move on to another drain under an admission.
            if word & GENERATION != generation {
                return Admission::Stale;
            }
            // Full: one more would carry into the generation. (2^38 requests
            // at once on one slot on 64-bit targets; 2^22 on 32-bit ones.)
            if word & TRIPPED != 0 || word & COUNT == COUNT {
                slot.rejected.fetch_add(1, Ordering::Relaxed);
                return Admission::Refused;
            }
            match slot.word.compare_exchange_weak(
                word,
                word + ONE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Admission::Admitted(Guard::new(slot)),
                Err(actual) => word = actual,
            }
        }
    }

    /// Whether the drain of `generation` has tripped, as slot `index` shows
    /// it; `None` if the block serves another drain now (that one is gone).
    #[inline]
    pub(crate) fn tripped(&self, index: usize, generation: usize) -> Option<bool> {
        let word = self.slots[index & self.mask].word.load(Ordering::Acquire);
        (word & GENERATION == generation).then_some(word & TRIPPED != 0)
    }

    /// Counts a request refused without an admission attempt (see
    /// `DrainService::poll_ready`), if `generation` is still this block's.
    pub(crate) fn count_refusal(&self, index: usize, generation: usize) {
        let slot = &self.slots[index & self.mask];
        if slot.word.load(Ordering::Relaxed) & GENERATION == generation {
            slot.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The generation bits of the drain this block serves now.
    pub(crate) fn generation(&self) -> usize {
        self.generation.load(Ordering::Acquire)
    }

    /// Sets `TRIPPED` in every slot. Returns `true` for the call that tripped
    /// the drain; later (or concurrent losing) calls return `false`. Either way,
    /// once it returns, no request is admitted again.
    pub(crate) fn trip(&self) -> bool {
        for slot in self.slots.iter() {
            let prev = slot.word.fetch_or(TRIPPED, Ordering::AcqRel);
            if prev & TRIPPED == 0 {
                self.at_trip.fetch_add(count(prev), Ordering::Relaxed);
            }
        }
        let first = !self.tripped.swap(true, Ordering::AcqRel);
        if first {
            self.on_trip.notify_waiters();
            self.on_release.notify_waiters();
        }
        first
    }

    /// Trips, then sets `FORCED` in every slot and wakes every waiting guard.
    /// Returns `true` for the call that forced the drain.
    pub(crate) fn force(&self) -> bool {
        self.trip();
        // The flag before the slot bits: a guard that sees its bit knows
        // that a `DrainSignal` (a body wrapper inside the layer) sees the
        // flag, so both judge a frame alike.
        let first = !self.forced.swap(true, Ordering::AcqRel);
        for slot in self.slots.iter() {
            slot.word.fetch_or(FORCED, Ordering::AcqRel);
        }
        if first {
            for slot in self.slots.iter() {
                // Woken outside the lock: a waker may poll its task in place,
                // and that poll takes this lock again.
                let wakers: Vec<Waker> = slot.waiting().iter().map(|(_, w)| w.clone()).collect();
                wakers.into_iter().for_each(Waker::wake);
            }
        }
        first
    }

    /// Marks the drain lame-duck: readiness fails from now on. Returns `true`
    /// for the first call.
    pub(crate) fn lame_duck(&self) -> bool {
        let first = !self.lame_duck.swap(true, Ordering::AcqRel);
        if first {
            // Shared with the trip's waiters, who re-check and wait on.
            self.on_trip.notify_waiters();
        }
        first
    }

    /// Neither lame-duck nor tripped.
    pub(crate) fn is_ready(&self) -> bool {
        !self.lame_duck.load(Ordering::Acquire) && !self.is_tripped()
    }

    #[inline]
    pub(crate) fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn is_forced(&self) -> bool {
        self.forced.load(Ordering::Acquire)
    }

    /// Tripped, and nothing in flight. Once true, true for good.
    pub(crate) fn is_drained(&self) -> bool {
        self.is_tripped() && self.in_flight() == 0
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.sum(|slot| count(slot.word.load(Ordering::Acquire)))
    }

    pub(crate) fn in_flight_at_trip(&self) -> usize {
        self.at_trip.load(Ordering::Acquire)
    }

    pub(crate) fn rejected(&self) -> usize {
        self.sum(|slot| slot.rejected.load(Ordering::Relaxed))
    }

    pub(crate) fn cut(&self) -> usize {
        self.sum(|slot| slot.cut.load(Ordering::Relaxed))
    }

    pub(crate) fn notified(&self, event: Event) -> Notified<'_> {
        match event {
            Event::NotReady | Event::Tripped => self.on_trip.notified(),
            Event::Drained => self.on_release.notified(),
        }
    }

    fn sum(&self, f: impl Fn(&Slot) -> usize) -> usize {
        self.slots.iter().map(f).sum()
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("tripped", &self.is_tripped())
            .field("forced", &self.is_forced())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Admission, Block, COUNT, GENERATION, ONE};
    use crate::sync::Ordering;

    /// A slot whose count is full refuses rather than carry into the
    /// generation bits (2^22 requests at once on one slot of a 32-bit
    /// target would have done so).
    #[test]
    fn a_full_slot_refuses_instead_of_overflowing_into_the_generation() {
        let block = Block::leak(1);
        let generation = block.generation();
        let slot = &block.slots[0];
        slot.word
            .store(generation | (COUNT - ONE), Ordering::Relaxed);
        let last = match block.try_admit(0, generation) {
            Admission::Admitted(guard) => guard,
            _ => panic!("one more fits"),
        };
        assert!(matches!(block.try_admit(0, generation), Admission::Refused));
        assert_eq!(slot.word.load(Ordering::Relaxed) & GENERATION, generation);
        assert_eq!(block.rejected(), 1);
        drop(last);
        assert!(!block.is_tripped(), "a full slot is not a trip");
        slot.word.store(generation, Ordering::Relaxed);
    }
}
