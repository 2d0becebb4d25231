use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use pin_project_lite::pin_project;

use super::{count, Block, Slot, FORCED, ONE, TRIPPED};
use crate::sync::{Notified, Ordering};

/// One admitted request's count. It moves from the response future into the
/// response body and is given back when the body ends, errors or is dropped.
///
/// A plain reference, not a reference count: blocks are never freed (see
/// `pool.rs`), so carrying a request costs no atomic operation of its own.
pub(crate) struct Guard {
    block: &'static Block,
    slot: &'static Slot,
}

impl Guard {
    pub(super) fn new(block: &'static Block, slot: &'static Slot) -> Self {
        Self { block, slot }
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

    /// Records that the deadline cut this request. Called before the guard is
    /// dropped, while the count still holds the block.
    pub(crate) fn record_cut(&self) {
        self.slot.cut.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        let prev = self.slot.word.fetch_sub(ONE, Ordering::Release);
        if prev & TRIPPED != 0 && count(prev) == 1 {
            // The last request of a tripped slot: waiters re-check for drained.
            // (Should the block be recycled in between, this is a spurious
            // wake-up for its next owner's waiters, who re-check too.)
            self.block.on_release.notify_waiters();
        }
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("tripped", &self.is_tripped())
            .field("forced", &self.is_forced())
            .finish()
    }
}

pin_project! {
    /// Tells a waiting future or body that the deadline has passed.
    ///
    /// It registers with its slot's notifier only the first time its owner has
    /// to wait, so requests that never wait never touch it.
    #[project = DeadlineProj]
    pub(crate) enum Deadline {
        Idle,
        Armed { #[pin] notified: Notified<'static> },
    }
}

impl Deadline {
    pub(crate) fn new() -> Self {
        Deadline::Idle
    }

    /// Whether the deadline has passed for `guard`'s request; if not, the task
    /// in `cx` is woken when it does.
    pub(crate) fn poll_passed(
        mut self: Pin<&mut Self>,
        guard: &Guard,
        cx: &mut Context<'_>,
    ) -> bool {
        loop {
            match self.as_mut().project() {
                DeadlineProj::Armed { notified } => {
                    // The bit is checked after arming: a deadline that fell
                    // before the notifier existed is seen here, one after it
                    // completes the notifier.
                    return notified.poll(cx).is_ready() || guard.is_forced();
                }
                DeadlineProj::Idle => self.set(Deadline::Armed {
                    notified: guard.slot.deadline.notified(),
                }),
            }
        }
    }
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deadline::Idle => f.write_str("Deadline::Idle"),
            Deadline::Armed { .. } => f.write_str("Deadline::Armed"),
        }
    }
}
