//! One shard of the in-flight count: its word, every operation on it, and the
//! [`Guard`] that holds one count in it.
//!
//! A slot word holds, from the low bits up: the `TRIPPED`, `FORCED` and
//! `UNWOUND` bits, the count of requests in flight, and the generation of the
//! drain the slot's block serves now. The count and the bit that guards it
//! share the word, so admission checks the bit and takes a count in one
//! compare-and-swap (no request slips in after a trip has set the bit, P2),
//! and the generation is checked in that same compare-and-swap (a service
//! that outlived its drain never counts into the next one, see `pool.rs`).
//! Release is one `fetch_sub`.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::{OnceLock, PoisonError};
use std::task::{Context, Waker};

use slab::Slab;

use super::Block;
use crate::sync::{AtomicUsize, Mutex, Ordering};

/// Set in every slot word when the drain trips: admission fails from then on.
const TRIPPED: usize = 1;
/// Set in every slot word at the drain deadline: a request that is waiting
/// is cut (its task is woken for it); one that has something ready goes on,
/// for the unwind.
const FORCED: usize = 2;
/// Set in every slot word when the unwind after the deadline is over: every
/// body is cut on its next poll, ready or not.
const UNWOUND: usize = 4;
/// One admitted request in a slot word.
const ONE: usize = 8;
/// Where the generation starts in a slot word. Below it, the count: 2^37
/// requests at once per slot on 64-bit targets, 2^21 on 32-bit ones.
#[cfg(target_pointer_width = "64")]
const GENERATION_SHIFT: u32 = 40;
#[cfg(not(target_pointer_width = "64"))]
const GENERATION_SHIFT: u32 = 24;
/// The generation bits of a slot word.
const GENERATION: usize = usize::MAX << GENERATION_SHIFT;
/// The count bits of a slot word.
const COUNT: usize = !GENERATION & !(TRIPPED | FORCED | UNWOUND);

#[inline]
fn count(word: usize) -> usize {
    (word & COUNT) / ONE
}

/// The generation after `generation` (it wraps after 2^24 drains of one
/// block on 64-bit targets, 2^8 on 32-bit ones).
pub(super) fn next_generation(generation: usize) -> usize {
    generation.wrapping_add(1 << GENERATION_SHIFT) & GENERATION
}

/// What [`Slot::try_admit`] decided.
pub(crate) enum Admission {
    /// Counted until the guard is dropped.
    Admitted(Guard),
    /// The drain has tripped (or this slot is full).
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
    /// Requests refused, in the count bits, tagged with the generation of
    /// the drain that refused them (a service that outlived its drain must
    /// not count into the next one, even while the block moves on).
    refused: AtomicUsize,
    cut: AtomicUsize,
    /// Admitted streams a body wrapper ended early, cleanly.
    ended_early: AtomicUsize,
    /// Wakers of this slot's requests that are waiting (a pending response or
    /// body), so the deadline can wake them. A request registers only once it
    /// has to wait, keeps its key, and removes it when it ends; the slab's
    /// storage is reused, so registering allocates only past the most requests
    /// ever waiting at once on this slot.
    waiting: Mutex<Slab<Waker>>,
    /// Wakers of services whose inner service made a caller wait, so the trip
    /// can wake them: from then on they refuse instead of waiting.
    backpressured: Mutex<Slab<Waker>>,
}

impl Slot {
    pub(super) fn new() -> Self {
        Self {
            word: AtomicUsize::new(0),
            block: OnceLock::new(),
            refused: AtomicUsize::new(0),
            cut: AtomicUsize::new(0),
            ended_early: AtomicUsize::new(0),
            waiting: Mutex::new(Slab::new()),
            backpressured: Mutex::new(Slab::new()),
        }
    }

    /// Records the block this slot is part of, once it has its place.
    pub(super) fn place(&self, block: &'static Block) {
        let _ = self.block.set(block);
    }

    /// Admits one request for the drain of `generation`, or counts a refusal
    /// if it has tripped.
    #[inline]
    pub(super) fn try_admit(&'static self, generation: usize) -> Admission {
        self.admit::<true>(generation)
    }

    /// Admits counted work: as a request, but a refusal is the caller's to
    /// handle, not a request refused.
    pub(super) fn try_admit_work(&'static self, generation: usize) -> Admission {
        self.admit::<false>(generation)
    }

    #[inline]
    fn admit<const COUNT_REFUSAL: bool>(&'static self, generation: usize) -> Admission {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if word & GENERATION != generation {
                return Admission::Stale;
            }
            // Full: one more would carry into the generation.
            if word & TRIPPED != 0 || word & COUNT == COUNT {
                if COUNT_REFUSAL {
                    self.count_refusal(generation);
                }
                return Admission::Refused;
            }
            match self.word.compare_exchange_weak(
                word,
                word + ONE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Admission::Admitted(Guard::new(self)),
                Err(actual) => word = actual,
            }
        }
    }

    /// Whether the drain of `generation` has tripped; `None` if this slot
    /// serves another drain now (that one is gone).
    #[inline]
    pub(super) fn tripped(&self, generation: usize) -> Option<bool> {
        let word = self.word.load(Ordering::Acquire);
        (word & GENERATION == generation).then_some(word & TRIPPED != 0)
    }

    /// Counts a request refused by the drain of `generation`, if that is
    /// still the drain this slot's counters belong to.
    pub(super) fn count_refusal(&self, generation: usize) {
        let mut refused = self.refused.load(Ordering::Relaxed);
        // Checked in the same compare-and-swap as the count: the block may
        // move on between a refusal and its count.
        while refused & GENERATION == generation && refused & !GENERATION != !GENERATION {
            match self.refused.compare_exchange_weak(
                refused,
                refused + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => refused = actual,
            }
        }
    }

    /// Counts an admitted stream ended early (see `EarlyEnd`: the request's
    /// guard is alive, so the slot still serves its drain).
    pub(crate) fn count_ended_early(&self) {
        self.ended_early.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets `TRIPPED`; returns the count in flight then if this call set it.
    pub(super) fn trip(&self) -> Option<usize> {
        let prev = self.word.fetch_or(TRIPPED, Ordering::AcqRel);
        (prev & TRIPPED == 0).then(|| count(prev))
    }

    /// Sets `FORCED`.
    pub(super) fn force(&self) {
        self.word.fetch_or(FORCED, Ordering::AcqRel);
    }

    /// Sets `UNWOUND`.
    pub(super) fn end_unwind(&self) {
        self.word.fetch_or(UNWOUND, Ordering::AcqRel);
    }

    pub(super) fn in_flight(&self) -> usize {
        count(self.word.load(Ordering::Acquire))
    }

    pub(super) fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed) & !GENERATION
    }

    pub(super) fn cut(&self) -> usize {
        self.cut.load(Ordering::Relaxed)
    }

    pub(super) fn ended_early(&self) -> usize {
        self.ended_early.load(Ordering::Relaxed)
    }

    /// Moves this slot from the drain of `from` to the drain of `to` (see
    /// `Block::recycle`): only with nothing in flight, and clearing the
    /// bits. Returns the word it had, to put back should another slot fail.
    pub(super) fn move_on(&self, from: usize, to: usize) -> Option<usize> {
        let word = self.word.load(Ordering::Acquire);
        let idle = count(word) == 0 && word & GENERATION == from;
        (idle
            && self
                .word
                .compare_exchange(word, to, Ordering::AcqRel, Ordering::Acquire)
                .is_ok())
        .then_some(word)
    }

    /// Puts back a word [`move_on`](Self::move_on) replaced. Nothing was
    /// admitted under the new generation: the block had not been handed out.
    pub(super) fn restore(&self, word: usize) {
        self.word.store(word, Ordering::Release);
    }

    /// Zeroes the counters for the drain of `generation`.
    pub(super) fn reset_counters(&self, generation: usize) {
        // A read-modify-write, so that it is ordered with a late refusal's
        // compare-and-swap: one of the two sees the other.
        self.refused.swap(generation, Ordering::AcqRel);
        self.cut.store(0, Ordering::Relaxed);
        self.ended_early.store(0, Ordering::Relaxed);
    }

    /// Wakes the requests waiting on this slot (for the deadline).
    pub(super) fn wake_waiting(&self) {
        wake_all(&self.waiting);
    }

    /// Wakes the services waiting on their inner service (for the trip).
    pub(super) fn wake_backpressured(&self) {
        wake_all(&self.backpressured);
    }

    /// Registers `cx`'s task to be woken at the trip, in `registration`
    /// (made here on first use, kept for the next call). Returns whether the
    /// drain of `generation` has tripped, read after registering: `trip`
    /// sets the bit before it wakes the registered, so one of the two sees
    /// the other.
    pub(super) fn wait_for_trip(
        &'static self,
        generation: usize,
        registration: &mut Option<Registration>,
        cx: &mut Context<'_>,
    ) -> Option<bool> {
        match registration {
            Some(registration) if std::ptr::eq(registration.slot, self) => {
                registration.update(cx.waker());
            }
            _ => *registration = Registration::new(self, cx.waker()),
        }
        self.tripped(generation)
    }
}

fn lock(slab: &Mutex<Slab<Waker>>) -> impl std::ops::DerefMut<Target = Slab<Waker>> + '_ {
    slab.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wakes every waker in `slab`, outside its lock: a waker may poll its task
/// in place, and that poll takes this lock again.
fn wake_all(slab: &Mutex<Slab<Waker>>) {
    let wakers: Vec<Waker> = lock(slab).iter().map(|(_, w)| w.clone()).collect();
    wakers.into_iter().for_each(Waker::wake);
}

/// A key in one of a slot's slabs, plus one (so that `Option` of it is
/// small).
fn key(key: usize) -> Option<NonZeroU32> {
    u32::try_from(key + 1).ok().and_then(NonZeroU32::new)
}

/// One admitted request's count. It moves from the response future into the
/// response body and is given back when the body ends, errors or is dropped.
///
/// A plain reference, not a reference count: blocks are never freed (see
/// `pool.rs`), so carrying a request costs no atomic operation of its own.
pub(crate) struct Guard {
    slot: &'static Slot,
    /// Its key in the slot's `waiting` slab, once it has had to wait.
    waiting: Option<NonZeroU32>,
    /// What it counts (for the metrics' protocol label).
    counted: crate::metrics::Counted,
}

impl Guard {
    fn new(slot: &'static Slot) -> Self {
        Self {
            slot,
            waiting: None,
            counted: crate::metrics::Counted::Http,
        }
    }

    /// Labels this count as counted work in the metrics.
    pub(crate) fn set_work(&mut self) {
        self.counted = crate::metrics::Counted::Work;
    }

    /// Labels this request gRPC in the metrics.
    #[inline]
    pub(crate) fn set_grpc(&mut self, grpc: bool) {
        if grpc {
            self.counted = crate::metrics::Counted::Grpc;
        }
    }

    /// The drain has tripped since this request was admitted.
    #[inline]
    pub(crate) fn is_tripped(&self) -> bool {
        self.slot.word.load(Ordering::Relaxed) & TRIPPED != 0
    }

    #[inline]
    fn is_forced(&self) -> bool {
        self.slot.word.load(Ordering::Acquire) & FORCED != 0
    }

    /// The drain deadline has passed: what is still in flight is being cut.
    pub(crate) fn is_past_deadline(&self) -> bool {
        self.is_forced()
    }

    /// The unwind after the deadline is over: the request is cut now,
    /// whether it waits or not.
    #[inline]
    pub(crate) fn is_unwound(&self) -> bool {
        self.slot.word.load(Ordering::Relaxed) & UNWOUND != 0
    }

    /// Whether the deadline has passed for this request, which has to wait;
    /// if not, the task in `cx` is woken when it does.
    pub(crate) fn poll_deadline(&mut self, cx: &mut Context<'_>) -> bool {
        if self.is_forced() {
            return true;
        }
        {
            let mut waiting = lock(&self.slot.waiting);
            match self
                .waiting
                .and_then(|key| waiting.get_mut(key.get() as usize - 1))
            {
                Some(waker) => waker.clone_from(cx.waker()),
                None => self.waiting = key(waiting.insert(cx.waker().clone())),
            }
        }
        // Checked again after registering: `force` sets the bit before it
        // wakes the registered, so one of the two sees the other.
        self.is_forced()
    }

    /// The slot this request counts in.
    pub(crate) fn slot(&self) -> &'static Slot {
        self.slot
    }

    /// Records that the deadline cut this request. Called once what it cut
    /// has been dropped, before the guard is, while the count still holds
    /// the block: a request counts as cut or unfinished, never both.
    pub(crate) fn record_cut(&self) {
        self.slot.cut.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cut(self.counted);
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        if let Some(key) = self.waiting {
            lock(&self.slot.waiting).try_remove(key.get() as usize - 1);
        }
        let prev = self.slot.word.fetch_sub(ONE, Ordering::Release);
        if prev & TRIPPED != 0 && count(prev) == 1 {
            // The last request of a tripped slot: waiters re-check for drained.
            // (Should the block be recycled in between, this is a spurious
            // wake-up for its next owner's waiters, who re-check too.)
            if let Some(block) = self.slot.block.get() {
                block.released_last();
            }
        }
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("tripped", &self.is_tripped())
            .field("forced", &self.is_forced())
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
}

/// A service's place in a slot's `backpressured` slab, removed when dropped.
pub(crate) struct Registration {
    slot: &'static Slot,
    key: NonZeroU32,
}

impl Registration {
    fn new(slot: &'static Slot, waker: &Waker) -> Option<Self> {
        let key = key(lock(&slot.backpressured).insert(waker.clone()))?;
        Some(Self { slot, key })
    }

    fn update(&self, waker: &Waker) {
        if let Some(registered) =
            lock(&self.slot.backpressured).get_mut(self.key.get() as usize - 1)
        {
            registered.clone_from(waker);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.slot.backpressured).try_remove(self.key.get() as usize - 1);
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Admission, Slot, COUNT, GENERATION, ONE};
    use crate::state::Block;
    use crate::sync::Ordering;

    /// A slot whose count is full refuses rather than carry into the
    /// generation bits (2^21 requests at once on one slot of a 32-bit
    /// target would have done so).
    #[test]
    fn a_full_slot_refuses_instead_of_overflowing_into_the_generation() {
        let block = Block::leak(1);
        let generation = block.generation();
        let slot: &'static Slot = block.slot(0);
        slot.word
            .store(generation | (COUNT - ONE), Ordering::Relaxed);
        let last = match slot.try_admit(generation) {
            Admission::Admitted(guard) => guard,
            _ => panic!("one more fits"),
        };
        assert!(matches!(slot.try_admit(generation), Admission::Refused));
        assert_eq!(slot.word.load(Ordering::Relaxed) & GENERATION, generation);
        assert_eq!(slot.refused(), 1);
        slot.count_refusal(generation.wrapping_add(1 << super::GENERATION_SHIFT));
        assert_eq!(slot.refused(), 1, "another drain's refusal does not count");
        drop(last);
        assert!(!block.is_tripped(), "a full slot is not a trip");
        slot.word.store(generation, Ordering::Relaxed);
    }
}
