use std::borrow::Cow;
use std::future::Future;

use tokio::task::JoinHandle;

use super::{NotReady, Tripped};
use crate::state::Handle;
use crate::work::{self, Refused, Work};
use crate::Cut;

/// A read-only view of a [`Drain`](crate::Drain): has it tripped, and a future
/// for when it does.
///
/// Cheap to clone; hand one to handlers that stream, so they can wind down.
///
/// # Example
///
/// ```
/// use tower_drain::Drain;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let drain = Drain::new();
/// let signal = drain.signal();
/// assert!(!signal.is_tripped());
///
/// drain.trip();
/// signal.tripped().await;
/// assert!(signal.is_tripped());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct DrainSignal {
    handle: Handle,
}

impl DrainSignal {
    pub(crate) fn new(handle: Handle) -> Self {
        Self { handle }
    }

    /// Whether the drain has tripped: new requests are being refused.
    #[inline]
    pub fn is_tripped(&self) -> bool {
        self.handle.block().is_tripped()
    }

    /// Whether the instance should still be routed to: neither
    /// [lame-duck](crate::Drain::lame_duck) nor tripped. This is what
    /// [`Readiness`](crate::readiness::Readiness) answers.
    pub fn is_ready(&self) -> bool {
        self.handle.block().is_ready()
    }

    /// A future that resolves once readiness fails: at the
    /// [lame duck](crate::Drain::lame_duck), or at the trip if there is none.
    /// Use it to flip a health service that is not HTTP, such as
    /// `tonic-health`'s `NOT_SERVING`.
    pub fn not_ready(&self) -> NotReady {
        NotReady::new(self.handle.clone())
    }

    /// Whether the drain deadline has passed: what is still in flight is being
    /// cut. A body wrapper inside [`DrainLayer`](crate::DrainLayer) can check
    /// it when polled, since the layer wakes its body at the deadline, and end
    /// cleanly instead of being cut: for the first half of the unwind that
    /// follows the deadline, the layer hands on every frame it produces;
    /// then what is still running is cut on its next poll.
    #[inline]
    pub fn is_forced(&self) -> bool {
        self.handle.block().is_forced()
    }

    /// A future that resolves once the drain has tripped (at once if it has).
    ///
    /// It is `'static` and owns what it needs, so it can be stored in a
    /// stream or a task. (To stop a server, use
    /// [`Shutdown::server_stop`](crate::shutdown::Shutdown::server_stop), or
    /// wait for `Drain::shutdown` to return: stopping at the trip closes the
    /// listener while late requests should still get a clean rejection.)
    pub fn tripped(&self) -> Tripped {
        Tripped::new(self.handle.clone())
    }

    /// Counted [work](crate::work): a guard that counts in the drain until
    /// it is dropped, and tells of the deadline.
    ///
    /// # Errors
    ///
    /// [`Refused`] once the drain has tripped: nothing new starts.
    pub fn work(&self) -> Result<Work, Refused> {
        Work::admit(&self.handle)
    }

    /// Runs `future` as a tokio task, counted in the drain until it ends;
    /// at the drain deadline it is aborted, counted cut, and its task
    /// returns `Err(Cut)`. See [`work`](crate::work).
    ///
    /// # Errors
    ///
    /// [`Refused`] once the drain has tripped: nothing new starts.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn spawn<F>(&self, future: F) -> Result<JoinHandle<Result<F::Output, Cut>>, Refused>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Ok(work::spawn(self.work()?, None, future))
    }

    /// [`spawn`](Self::spawn), with a name that the
    /// [report](crate::DrainReport::cut_work) and the log give if the
    /// deadline aborts it.
    ///
    /// # Errors
    ///
    /// [`Refused`] once the drain has tripped: nothing new starts.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn spawn_named<F>(
        &self,
        name: impl Into<Cow<'static, str>>,
        future: F,
    ) -> Result<JoinHandle<Result<F::Output, Cut>>, Refused>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Ok(work::spawn(self.work()?, Some(name.into()), future))
    }
}
