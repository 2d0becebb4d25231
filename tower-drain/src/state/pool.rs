//! Where blocks come from and go back to.
//!
//! A guard holds a plain `&'static` to its block instead of an `Arc`: cloning
//! an `Arc` per request would write one shared cache line from every core on
//! every request, which is exactly what the sharded slots avoid. So a block is
//! never freed. When its last [`Handle`] is dropped it goes back to this pool,
//! and a later `Drain::new` reuses it once every request it admitted has ended.
//! The memory kept is bounded by the largest number of drains alive at once.
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

use std::fmt;
use std::sync::{Mutex, PoisonError};

use super::{count, slots_for_this_machine, Admission, Block, GENERATION, GENERATION_SHIFT};
use crate::sync::{fence, Ordering};

/// Blocks whose handles are all gone; some may still carry in-flight requests.
static RETIRED: Mutex<Vec<&'static Block>> = Mutex::new(Vec::new());

/// A counted reference to a block: what `Drain`, `DrainSignal` and
/// `DrainLayer` hold. It counts like an `Arc`, but on the last drop the block
/// is retired to the pool instead of freed.
pub(crate) struct Handle {
    block: &'static Block,
}

impl Handle {
    pub(crate) fn new() -> Self {
        let mut retired = RETIRED.lock().unwrap_or_else(PoisonError::into_inner);
        // A retired block has no handle left, but services of its drain may
        // still admit into it: it moves on only with nothing in flight.
        let reusable = retired.iter().position(|block| block.recycle());
        let block = match reusable {
            Some(i) => retired.swap_remove(i),
            None => Block::leak(slots_for_this_machine()),
        };
        Self { block }
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
        RETIRED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.block);
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.block.fmt(f)
    }
}
