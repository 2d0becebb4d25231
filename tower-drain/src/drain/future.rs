use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::state::{Event, Handle, Wait};

pin_project! {
    /// Resolves once the drain has tripped and every admitted request has
    /// ended. Returned by [`Drain::drained`](crate::Drain::drained).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Drained {
        // Keeps the block from being recycled while the wait refers to it.
        handle: Handle,
        #[pin]
        wait: Wait,
    }
}

pin_project! {
    /// Resolves once the drain has tripped. Returned by
    /// [`DrainSignal::tripped`](crate::DrainSignal::tripped).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Tripped {
        handle: Handle,
        #[pin]
        wait: Wait,
    }
}

pin_project! {
    /// Resolves once readiness fails: at the lame duck, or at the trip.
    /// Returned by [`DrainSignal::not_ready`](crate::DrainSignal::not_ready).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct NotReady {
        handle: Handle,
        #[pin]
        wait: Wait,
    }
}

impl NotReady {
    pub(crate) fn new(handle: Handle) -> Self {
        let wait = Wait::new(handle.block(), Event::NotReady);
        Self { handle, wait }
    }
}

impl Future for NotReady {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().wait.poll(cx)
    }
}

impl fmt::Debug for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotReady")
            .field("drain", &self.handle)
            .finish_non_exhaustive()
    }
}

impl Drained {
    pub(crate) fn new(handle: Handle) -> Self {
        let wait = Wait::new(handle.block(), Event::Drained);
        Self { handle, wait }
    }
}

impl Tripped {
    pub(crate) fn new(handle: Handle) -> Self {
        let wait = Wait::new(handle.block(), Event::Tripped);
        Self { handle, wait }
    }
}

impl Future for Drained {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().wait.poll(cx)
    }
}

impl Future for Tripped {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().wait.poll(cx)
    }
}

impl fmt::Debug for Drained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drained")
            .field("drain", &self.handle)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Tripped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tripped")
            .field("drain", &self.handle)
            .finish_non_exhaustive()
    }
}
