//! Where blocks come from and go back to.
//!
//! A guard holds a plain `&'static` to its block instead of an `Arc`: cloning
//! an `Arc` per request would write one shared cache line from every core on
//! every request, which is exactly what the sharded slots avoid. So a block is
//! never freed. When its last [`Handle`] is dropped it goes back to this pool,
//! and a later `Drain::new` reuses it once every request it admitted has ended.
//! The memory kept is bounded by the largest number of drains alive at once,
//! plus those whose requests never end; `Drain::new` takes the same time
//! however many of those there are (see [`Retired`]).
//!
//! Services do not count. A service is cloned per request where axum routes
//! it, and a count would be one more shared cache line written by every core
//! on every request. A service holds a [`ServiceRef`] instead: the block and
//! the *generation* of the drain it was made for. Each slot word carries the
//! generation in its high bits, so admission checks it in the same
//! compare-and-swap that takes the count. When a block moves on to a new
//! drain, every slot word moves to the next generation, and only if its
//! count is zero; a service that outlived its drain then finds its
//! generation gone and passes requests through uncounted, since nothing can
//! trip that drain any more. The generation wraps after 2^24 drains of one
//! block on 64-bit targets (2^8 on 32-bit ones): only a service outliving
//! its drain across that many reuses of its block could count into a later
//! drain.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::Context;

use super::{
    count, slots_for_this_machine, Admission, Block, Event, Wait, GENERATION, GENERATION_SHIFT,
};
use crate::sync::{fence, Ordering};

/// Blocks whose handles are all gone, waiting for a new drain.
static RETIRED: Mutex<Retired> = Mutex::new(Retired {
    idle: Vec::new(),
    pinned: VecDeque::new(),
});

/// The pool. A block retired with nothing in flight is *idle*, and almost
/// always reusable; one retired with requests still in flight is *pinned*
/// until they end. `Drain::new` costs the same whatever is pinned: it takes
/// an idle block, and looks again at one pinned block only, the
/// longest-waiting, so that each pinned block is retried in turn.
struct Retired {
    idle: Vec<&'static Block>,
    pinned: VecDeque<&'static Block>,
}

impl Retired {
    fn take(&mut self) -> Option<&'static Block> {
        // A service of an old drain may have admitted into an idle block
        // since it was retired; such a block waits with the pinned ones. Each
        // block moves so at most once per retirement, so the loop costs O(1)
        // per `Drain::new`, amortised.
        while let Some(block) = self.idle.pop() {
            if block.recycle() {
                return Some(block);
            }
            self.pinned.push_back(block);
        }
        let block = self.pinned.pop_front()?;
        if block.recycle() {
            return Some(block);
        }
        self.pinned.push_back(block);
        None
    }

    fn retire(&mut self, block: &'static Block) {
        if block.in_flight() == 0 {
            self.idle.push(block);
        } else {
            self.pinned.push_back(block);
        }
    }
}

fn retired() -> std::sync::MutexGuard<'static, Retired> {
    RETIRED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A counted reference to a block: what `Drain`, `DrainSignal` and
/// `DrainLayer` hold. It counts like an `Arc`, but on the last drop the block
/// is retired to the pool instead of freed.
pub(crate) struct Handle {
    block: &'static Block,
}

impl Handle {
    pub(crate) fn new() -> Self {
        let reused = retired().take();
        Self {
            block: reused.unwrap_or_else(|| Block::leak(slots_for_this_machine())),
        }
    }

    #[inline]
    pub(crate) fn block(&self) -> &'static Block {
        self.block
    }

    /// A reference for a service: no count, the current generation.
    pub(crate) fn service(&self) -> ServiceRef {
        ServiceRef {
            block: self.block,
            generation: self.block.generation(),
        }
    }
}

/// What a `DrainService` holds: its block and the generation of its drain.
/// `Copy`: cloning a service writes nothing shared.
#[derive(Clone, Copy)]
pub(crate) struct ServiceRef {
    block: &'static Block,
    generation: usize,
}

impl ServiceRef {
    /// Admits a request into the current thread's slot (see
    /// [`Block::try_admit`]).
    #[inline]
    pub(crate) fn try_admit(&self, index: usize) -> Admission {
        self.block.try_admit(index, self.generation)
    }

    /// Whether the drain has tripped. If it has not, the task in `cx` is
    /// woken when it does, through `waiting` (made here on first use, kept
    /// for the next call). A drain that is gone never trips.
    pub(crate) fn poll_tripped(
        &self,
        index: usize,
        waiting: &mut Option<Pin<Box<Wait>>>,
        cx: &mut Context<'_>,
    ) -> bool {
        loop {
            match self.block.tripped(index, self.generation) {
                Some(true) => return true,
                None => return false,
                Some(false) => {}
            }
            let wait =
                waiting.get_or_insert_with(|| Box::pin(Wait::new(self.block, Event::Tripped)));
            if wait.as_mut().poll(cx).is_pending() {
                return false;
            }
            // The block has tripped: this drain (checked again above), or,
            // once it is gone, a later one (`None` above).
            *waiting = None;
        }
    }

    /// Counts a request refused without an admission attempt.
    pub(crate) fn count_refusal(&self, index: usize) {
        self.block.count_refusal(index, self.generation);
    }
}

impl fmt::Debug for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.block.generation() == self.generation {
            self.block.fmt(f)
        } else {
            f.write_str("Drain(gone)")
        }
    }
}

impl Block {
    /// Moves a retired block on to a new drain: every slot word to the next
    /// generation, with no flags and a zero count, and the rest of the state
    /// back to that of `Block::new`. Fails, leaving the block to its old
    /// drain, if any slot has a request in flight.
    pub(crate) fn recycle(&self) -> bool {
        #[cfg(all(test, not(loom)))]
        tests::RECYCLE_ATTEMPTS.with(|n| n.set(n.get() + 1));
        let old = self.generation();
        let next = old.wrapping_add(1 << GENERATION_SHIFT) & GENERATION;
        let mut previous = Vec::with_capacity(self.slots.len());
        for slot in self.slots.iter() {
            let word = slot.word.load(Ordering::Acquire);
            let moved_on = count(word) == 0
                && word & GENERATION == old
                && slot
                    .word
                    .compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
            if !moved_on {
                // Back to the old drain. Nothing was admitted under the new
                // generation: the block has not been handed out.
                for (slot, word) in self.slots.iter().zip(previous) {
                    slot.word.store(word, Ordering::Release);
                }
                return false;
            }
            previous.push(word);
        }
        for slot in self.slots.iter() {
            slot.rejected.store(0, Ordering::Relaxed);
            slot.cut.store(0, Ordering::Relaxed);
        }
        self.tripped.store(false, Ordering::Relaxed);
        self.forced.store(false, Ordering::Relaxed);
        self.lame_duck.store(false, Ordering::Relaxed);
        self.at_trip.store(0, Ordering::Relaxed);
        self.handles.store(1, Ordering::Relaxed);
        self.generation.store(next, Ordering::Release);
        true
    }
}

#[cfg(all(test, not(loom)))]
impl Block {
    /// Live handles, for the tests.
    pub(crate) fn handles(&self) -> usize {
        self.handles.load(Ordering::Relaxed)
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        // As in `Arc::clone`: a new reference is made from an existing one, so
        // nothing needs ordering here.
        self.block.handles.fetch_add(1, Ordering::Relaxed);
        Self { block: self.block }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.block.handles.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        retired().retire(self.block);
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.block.fmt(f)
    }
}

#[cfg(all(test, not(loom)))]
pub(super) mod tests {
    use std::cell::Cell;

    use crate::test_support::{request, streaming};
    use crate::Drain;

    std::thread_local! {
        /// `Block::recycle` calls made on this thread.
        pub(super) static RECYCLE_ATTEMPTS: Cell<usize> = const { Cell::new(0) };
        /// Blocks placed (never freed) on this thread.
        pub(crate) static LEAKED: Cell<usize> = const { Cell::new(0) };
    }

    fn leaked() -> usize {
        LEAKED.with(Cell::get)
    }

    fn attempts() -> usize {
        RECYCLE_ATTEMPTS.with(Cell::get)
    }

    /// A request that never ends pins its block; new drains must not pay for
    /// every pinned block (each `Drain::new` used to try them all, under one
    /// global lock).
    #[tokio::test]
    async fn a_new_drain_looks_at_a_bounded_number_of_pinned_blocks() {
        const PINNED: usize = 2000;
        let mut never_ending = Vec::with_capacity(PINNED);
        for _ in 0..PINNED {
            let drain = Drain::new();
            never_ending.push(streaming(&drain).await);
            // The drain's last handle goes: its block is retired, pinned.
        }
        let mut drains = Vec::new();
        for _ in 0..500 {
            let before = attempts();
            drains.push(Drain::new());
            // One pinned block, plus any idle ones that turned out busy
            // (other tests retire blocks too): a handful, never thousands.
            assert!(attempts() - before <= 3, "{} attempts", attempts() - before);
        }
        // Once their requests end, the pinned blocks are reused, not
        // replaced by new ones.
        drop(never_ending);
        drop(drains);
        let leaked_before = leaked();
        let mut fresh = Vec::with_capacity(PINNED);
        for _ in 0..PINNED {
            let drain = Drain::new();
            let (_, inner) = crate::test_support::counting_service();
            let res = request(&mut tower::Layer::layer(&drain.layer(), inner)).await;
            assert_eq!(res.status(), http::StatusCode::OK);
            fresh.push(drain);
        }
        // (Tests running beside this one may take a few.)
        let placed = leaked() - leaked_before;
        assert!(placed < PINNED / 10, "{placed} new blocks");
    }
}
