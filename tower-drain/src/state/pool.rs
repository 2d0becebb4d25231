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
use std::sync::{Mutex, PoisonError};

use super::{slots_for_this_machine, Block, ServiceRef};

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
        ServiceRef::new(self.block)
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        self.block.add_handle();
        Self { block: self.block }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.block.drop_handle() {
            retired().retire(self.block);
        }
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
        pub(crate) static RECYCLE_ATTEMPTS: Cell<usize> = const { Cell::new(0) };
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
