//! Counted work: what a handler starts that outlives its response (saving a
//! partial answer, finishing a write, a model streaming into a channel),
//! counted in the drain like a request.
//!
//! ```
//! use std::time::Duration;
//! use tower_drain::Drain;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let drain = Drain::new();
//! let signal = drain.signal();
//!
//! // In a handler: the save keeps the drain open until it ends, and is
//! // aborted (and reported by its name) if it is still running at the
//! // deadline.
//! let saved = signal
//!     .spawn_named("save the partial answer", async { "saved" })
//!     .expect("not tripped yet");
//! assert_eq!(saved.await.unwrap(), Ok("saved"));
//!
//! let report = drain.shutdown(Duration::from_secs(30)).await;
//! assert!(report.is_clean());
//! // Once tripped, nothing new starts.
//! assert!(signal.spawn(async {}).is_err());
//! # }
//! ```
//!
//! [`DrainSignal::work`](crate::DrainSignal::work) hands out a [`Work`]
//! guard for work the caller runs itself;
//! [`DrainSignal::spawn`](crate::DrainSignal::spawn) and
//! [`spawn_named`](crate::DrainSignal::spawn_named) run a future as a tokio
//! task under one. Either way the work:
//!
//! - counts in [`in_flight`](crate::Drain::in_flight), and keeps
//!   [`drained`](crate::Drain::drained) waiting, until it ends;
//! - cannot start once the drain has tripped ([`Refused`]), so that what
//!   the drain waits for only shrinks;
//! - is told of the deadline ([`Work::deadline`]); spawned work is aborted
//!   then, and counted [cut](crate::DrainReport::cut) (by its name in
//!   [`DrainReport::cut_work`](crate::DrainReport::cut_work), if it has
//!   one).
//!
//! Both come from [`DrainSignal`](crate::DrainSignal), which handlers hold
//! already to learn of the trip, rather than from an extension the layer
//! would insert into every request: a request that starts no work pays
//! nothing for it.

use std::borrow::Cow;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

use crate::state::{current_slot, Admission, Guard, Handle};
use crate::Cut;

/// Counted work: counts in the drain until dropped. See the
/// [module docs](self).
///
/// Dropped once the drain deadline has passed, it counts as cut: the work
/// stopped (or was stopped) short. (Spawned work whose future completes
/// counts as completed, whenever that is.) Refused work is the caller's to
/// handle: it is not counted among the refused requests.
#[must_use = "the work is counted only while the guard is held"]
pub struct Work {
    guard: Guard,
    /// Keeps the drain's state for this guard's slot.
    _handle: Handle,
    /// Ended by itself (spawned work whose future completed): never cut,
    /// even if that came after the deadline.
    finished: bool,
    /// Ended early by the drain, cleanly (see [`Work::end_early`]).
    early: bool,
}

impl Work {
    pub(crate) fn admit(handle: &Handle) -> Result<Self, Refused> {
        match handle.service().try_admit_work(current_slot()) {
            Admission::Admitted(mut guard) => {
                guard.set_work();
                Ok(Self {
                    guard,
                    _handle: handle.clone(),
                    finished: false,
                    early: false,
                })
            }
            // A signal keeps its drain's state: never stale, only refused.
            Admission::Refused | Admission::Stale => Err(Refused(())),
        }
    }

    /// Resolves at the drain deadline, when what is still in flight is cut:
    /// the holder should stop then (and drop the guard). At once if it has
    /// passed.
    pub async fn deadline(&mut self) {
        poll_fn(|cx| self.poll_deadline(cx)).await;
    }

    /// [`deadline`](Self::deadline) as a poll, for a future or a stream
    /// that holds the guard: ready at the drain deadline, and until then
    /// the task in `cx` is woken when it comes.
    pub fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.guard.poll_deadline(cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Records that the drain ended this work early, cleanly (a WebSocket
    /// closed with `1001 Going Away` whose client answered): once the guard
    /// is dropped, the [report](crate::DrainReport::ended_early) counts it
    /// as ended early rather than completed. Returns whether it will: past
    /// the deadline the work counts as cut instead, as any work dropped
    /// then. The decision is taken here, so that what the holder does
    /// before it drops the guard (saving partial output) cannot turn it into
    /// a cut.
    ///
    /// Only work in flight at the trip can end early: before the trip this
    /// records nothing, and returns `false` (the work counts as completed).
    pub fn end_early(&mut self) -> bool {
        if self.guard.is_tripped() && !self.guard.is_past_deadline() {
            self.early = true;
        }
        self.early
    }
}

impl Work {
    /// Ends work that ended by itself: it counts as completed, whenever that
    /// is.
    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if self.early {
            // The guard is alive: its slot still serves this drain.
            self.guard.slot().count_ended_early();
        } else if !self.finished && self.guard.is_past_deadline() {
            self.guard.record_cut();
        }
    }
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Work").finish_non_exhaustive()
    }
}

/// Work refused: the drain has tripped, so nothing new starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused(());

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the drain has tripped: no new work starts")
    }
}

impl std::error::Error for Refused {}

/// Runs `future` as a tokio task under `work`; at the deadline it is dropped
/// (aborted) and counted cut, under `name` if it has one.
pub(crate) fn spawn<F>(
    mut work: Work,
    name: Option<Cow<'static, str>>,
    future: F,
) -> JoinHandle<Result<F::Output, Cut>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(async move {
        let ended = {
            let mut future = pin!(future);
            let mut deadline = pin!(work.deadline());
            poll_fn(|cx| {
                if let Poll::Ready(output) = future.as_mut().poll(cx) {
                    return Poll::Ready(Some(output));
                }
                deadline.as_mut().poll(cx).map(|()| None)
            })
            .await
            // The future is dropped here, before the guard.
        };
        match ended {
            Some(output) => {
                work.finish();
                Ok(output)
            }
            None => {
                let block = work._handle.block();
                crate::event!(
                    warn,
                    work = name.as_deref().unwrap_or("(unnamed)"),
                    "drain deadline reached: counted work aborted"
                );
                if let Some(name) = name {
                    block.record_cut_work(name);
                }
                drop(work);
                Err(Cut::new())
            }
        }
    })
}

#[cfg(all(test, not(loom)))]
mod tests;
