use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::state::{Event, Handle, Wait};

/// A named future that resolves once `$event` has happened on a drain. The
/// handle keeps the block from being recycled while the wait refers to it.
macro_rules! wait_future {
    ($(#[$doc:meta])* $name:ident => $event:expr) => {
        pin_project! {
            $(#[$doc])*
            #[must_use = "futures do nothing unless you `.await` or poll them"]
            pub struct $name {
                handle: Handle,
                #[pin]
                wait: Wait,
            }
        }

        impl $name {
            pub(crate) fn new(handle: Handle) -> Self {
                let wait = Wait::new(handle.block(), $event);
                Self { handle, wait }
            }
        }

        impl Future for $name {
            type Output = ();

            #[inline]
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
                self.project().wait.poll(cx)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("drain", &self.handle)
                    .finish_non_exhaustive()
            }
        }
    };
}

wait_future! {
    /// Resolves once the drain has tripped and every admitted request has
    /// ended. Returned by [`Drain::drained`](crate::Drain::drained).
    Drained => Event::Drained
}

wait_future! {
    /// Resolves once the drain has tripped. Returned by
    /// [`DrainSignal::tripped`](crate::DrainSignal::tripped).
    Tripped => Event::Tripped
}

wait_future! {
    /// Resolves once readiness fails: at the lame duck, or at the trip.
    /// Returned by [`DrainSignal::not_ready`](crate::DrainSignal::not_ready).
    NotReady => Event::NotReady
}
