//! Where blocks come from and go back to.
//!
//! A guard holds a plain `&'static` to its block instead of an `Arc`: cloning
//! an `Arc` per request would write one shared cache line from every core on
//! every request, which is exactly what the sharded slots avoid. So a block is
//! never freed. When its last [`Handle`] is dropped it goes back to this pool,
//! and a later `Drain::new` reuses it once every request it admitted has ended.
//! The memory kept is bounded by the largest number of drains alive at once.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use super::{slots_for_this_machine, Block};
use crate::sync::{fence, Ordering};

/// Blocks whose handles are all gone; some may still carry in-flight requests.
static RETIRED: Mutex<Vec<&'static Block>> = Mutex::new(Vec::new());

/// A counted reference to a block: what `Drain`, `DrainSignal`, `DrainLayer`
/// and `DrainService` hold. It counts like an `Arc`, but on the last drop the
/// block is retired to the pool instead of freed.
pub(crate) struct Handle {
    block: &'static Block,
}

impl Handle {
    pub(crate) fn new() -> Self {
        let mut retired = RETIRED.lock().unwrap_or_else(PoisonError::into_inner);
        // No handle means no service to admit through, so a retired block's
        // count only falls; at zero nothing can reach its slots any more.
        let reusable = retired.iter().position(|block| block.in_flight() == 0);
        let block = match reusable {
            Some(i) => {
                let block = retired.swap_remove(i);
                block.reset();
                block
            }
            None => Block::leak(slots_for_this_machine()),
        };
        Self { block }
    }

    #[inline]
    pub(crate) fn block(&self) -> &'static Block {
        self.block
    }
}

impl Block {
    /// Back to the state of `Block::new`, for a block nothing refers to.
    fn reset(&self) {
        for slot in self.slots.iter() {
            slot.word.store(0, Ordering::Relaxed);
            slot.rejected.store(0, Ordering::Relaxed);
            slot.cut.store(0, Ordering::Relaxed);
        }
        self.tripped.store(false, Ordering::Relaxed);
        self.forced.store(false, Ordering::Relaxed);
        self.lame_duck.store(false, Ordering::Relaxed);
        self.at_trip.store(0, Ordering::Relaxed);
        self.handles.store(1, Ordering::Relaxed);
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
