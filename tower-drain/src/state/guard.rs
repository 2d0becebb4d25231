use std::fmt;
use std::num::NonZeroU32;
use std::task::Context;

use super::{count, Slot, FORCED, ONE, TRIPPED};
use crate::sync::Ordering;

/// One admitted request's count. It moves from the response future into the
/// response body and is given back when the body ends, errors or is dropped.
///
/// A plain reference, not a reference count: blocks are never freed (see
/// `pool.rs`), so carrying a request costs no atomic operation of its own.
pub(crate) struct Guard {
    slot: &'static Slot,
    /// Its key in the slot's `waiting` slab, plus one, once it has had to
    /// wait. (Small: the guard rides in every response future and body.)
    waiting: Option<NonZeroU32>,
    /// The request is gRPC (for the metrics' protocol label).
    grpc: bool,
}

impl Guard {
    pub(super) fn new(slot: &'static Slot) -> Self {
        Self {
            slot,
            waiting: None,
            grpc: false,
        }
    }

    /// Labels this request gRPC in the metrics.
    #[inline]
    pub(crate) fn set_grpc(&mut self, grpc: bool) {
        self.grpc = grpc;
    }

    fn waiting_key(&self) -> Option<usize> {
        self.waiting.map(|key| key.get() as usize - 1)
    }

    /// The drain has tripped since this request was admitted.
    #[inline]
    pub(crate) fn is_tripped(&self) -> bool {
        self.slot.word.load(Ordering::Relaxed) & TRIPPED != 0
    }

    /// The deadline has passed: this request is to be cut.
    #[inline]
    pub(crate) fn is_forced(&self) -> bool {
        self.slot.word.load(Ordering::Acquire) & FORCED != 0
    }

    /// Whether the deadline has passed for this request; if not, the task in
    /// `cx` is woken when it does. Called when the request has to wait.
    pub(crate) fn poll_deadline(&mut self, cx: &mut Context<'_>) -> bool {
        if self.is_forced() {
            return true;
        }
        {
            let mut waiting = self.slot.waiting();
            match self.waiting_key().and_then(|key| waiting.get_mut(key)) {
                Some(waker) => waker.clone_from(cx.waker()),
                None => {
                    let key = waiting.insert(cx.waker().clone());
                    self.waiting = u32::try_from(key + 1).ok().and_then(NonZeroU32::new);
                }
            }
        }
        // Checked again after registering: `force` sets the bit before it
        // wakes the registered, so one of the two sees the other.
        self.is_forced()
    }

    /// Records that the deadline cut this request. Called before the guard is
    /// dropped, while the count still holds the block.
    pub(crate) fn record_cut(&self) {
        self.slot.cut.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cut(self.grpc);
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        if let Some(key) = self.waiting_key() {
            self.slot.waiting().try_remove(key);
        }
        let prev = self.slot.word.fetch_sub(ONE, Ordering::Release);
        if prev & TRIPPED != 0 && count(prev) == 1 {
            // The last request of a tripped slot: waiters re-check for drained.
            // (Should the block be recycled in between, this is a spurious
            // wake-up for its next owner's waiters, who re-check too.)
            if let Some(block) = self.slot.block.get() {
                block.on_release.notify_waiters();
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
