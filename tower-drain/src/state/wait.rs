use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;

use super::Block;
use crate::sync::Notified;

/// What a [`Wait`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Lame duck or tripped: readiness fails.
    NotReady,
    Tripped,
    Drained,
    /// The drain phase is over: drained, or cut and unwound.
    #[cfg_attr(not(feature = "serve"), allow(dead_code))]
    Over,
    /// The drain phase is over and no server serves the drain any more.
    ServersClosed,
}

impl Event {
    fn has_happened(self, block: &Block) -> bool {
        match self {
            Event::NotReady => !block.is_ready(),
            Event::Tripped => block.is_tripped(),
            Event::Drained => block.is_drained(),
            Event::Over => block.is_over(),
            Event::ServersClosed => block.is_over() && block.connections().servers() == 0,
        }
    }
}

pin_project! {
    /// Resolves once `event` has happened on `block`.
    ///
    /// The notifier is armed *before* the state is checked, and re-armed before
    /// every re-check, so a notification that lands between a check and the
    /// wait is never lost. Every event is permanent once they happen, so a
    /// spurious wake-up only costs a re-check.
    pub(crate) struct Wait {
        block: &'static Block,
        event: Event,
        #[pin]
        notified: Notified<'static>,
    }
}

impl Wait {
    pub(crate) fn new(block: &'static Block, event: Event) -> Self {
        Self {
            block,
            event,
            notified: block.notified(event),
        }
    }
}

impl Future for Wait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            if this.event.has_happened(this.block) {
                return Poll::Ready(());
            }
            ready!(this.notified.as_mut().poll(cx));
            this.notified.set(this.block.notified(*this.event));
        }
    }
}

impl fmt::Debug for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}
