//! The drain's side of a WebSocket: the future that runs the application's
//! handler and closes the socket at the trip.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_drain::drain::Tripped;
use tower_drain::work::Work;

use super::handle::{lock, Shared};
use super::socket::Socket;
use crate::framing::{Framing, Seen};
use crate::terminal::{Config, Ending, StreamEnd};

/// `1000 Normal Closure`: the application let go of the socket.
const NORMAL: u16 = 1000;
/// `1001 Going Away`: the server is shutting down.
const GOING_AWAY: u16 = 1001;
/// Messages the drain reads (and drops) per poll while it waits for the
/// client's Close, before it yields to the runtime.
const READ_BUDGET: usize = 64;

pin_project! {
    /// A WebSocket conversation inside the drain: runs the application's
    /// handler, counts in the drain until the socket is closed and the
    /// handler has returned, and closes the socket at the trip. Returned by
    /// [`Admitted::run`](super::Admitted::run).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Conversation<S: Socket, F> {
        #[pin]
        handler: Option<F>,
        #[pin]
        tripped: Tripped,
        // Set at the trip when there is a grace period: boxed, since most
        // conversations never have one.
        grace: Option<Pin<Box<Sleep>>>,
        seen_trip: bool,
        // The Close the drain has still to send.
        close: Option<u16>,
        // The drain sent `1001 Going Away`: if the socket then closes before
        // the deadline (the client answered, or went away), it ended early,
        // as a stream whose terminal frame went out.
        going_away: bool,
        shared: Arc<Mutex<Shared<S>>>,
        // `None` once the conversation is over.
        work: Option<Work>,
        config: Arc<Config>,
    }
}

impl<S: Socket, F> Conversation<S, F> {
    pub(crate) fn new(
        work: Work,
        config: Arc<Config>,
        shared: Arc<Mutex<Shared<S>>>,
        handler: F,
    ) -> Self {
        Self {
            handler: Some(handler),
            tripped: config.signal.tripped(),
            grace: None,
            seen_trip: false,
            close: None,
            going_away: false,
            shared,
            work: Some(work),
            config,
        }
    }
}

impl<S: Socket, F: Future<Output = ()>> Future for Conversation<S, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let Some(work) = this.work.as_mut() else {
            return Poll::Ready(());
        };

        if work.poll_deadline(cx).is_ready() {
            // The handler first, and outside the lock: its socket's drop
            // takes the lock.
            this.handler.set(None);
            let mut shared = lock(this.shared);
            let seen = seen(&shared);
            let end = StreamEnd::new(Framing::WebSocket, Ending::Cut, &seen);
            if !shared.close_queued && !shared.mid_message {
                if let Some(socket) = shared.socket.as_mut() {
                    // Without waiting: the client may yet learn why.
                    let close = S::close_message(GOING_AWAY, &this.config.close_reason(&end));
                    if Pin::new(&mut *socket).poll_ready(cx).is_ready()
                        && Pin::new(&mut *socket).start_send(close).is_ok()
                    {
                        let _ = Pin::new(socket).poll_flush(cx);
                    }
                }
            }
            shared.socket = None;
            shared.take_over();
            drop(shared);
            this.config.ended(&end);
            // Dropped past the deadline: counted cut.
            *this.work = None;
            return Poll::Ready(());
        }

        if let Some(handler) = this.handler.as_mut().as_pin_mut() {
            if handler.poll(cx).is_ready() {
                this.handler.set(None);
            }
        }

        let mut shared = lock(this.shared);
        match &mut shared.driver {
            Some(waker) => waker.clone_from(cx.waker()),
            driver => *driver = Some(cx.waker().clone()),
        }

        if !shared.taken_over && shared.socket.is_some() {
            if shared.let_go {
                // The application is done with the socket: close it.
                shared.take_over();
                if !shared.close_queued {
                    *this.close = Some(NORMAL);
                }
            } else if trip_is_over(this.tripped, this.grace, this.seen_trip, this.config, cx)
                // Polled first, so that the trip wakes this task even while
                // the application is inside a message; the application's
                // last frame wakes it then.
                && !shared.mid_message
            {
                shared.take_over();
                if !shared.close_queued {
                    *this.close = Some(GOING_AWAY);
                }
            }
        }

        if shared.taken_over {
            let reason = match *this.close {
                Some(GOING_AWAY) => {
                    let seen = seen(&shared);
                    this.config.close_reason(&StreamEnd::new(
                        Framing::WebSocket,
                        Ending::Early,
                        &seen,
                    ))
                }
                _ => String::new(),
            };
            let closed = match shared.socket.as_mut() {
                Some(socket) => {
                    let mut closing = Closing {
                        close: this.close,
                        going_away: this.going_away,
                    };
                    closing.drive(socket, &reason, cx).is_ready()
                }
                None => true,
            };
            if closed {
                shared.socket = None;
            }
        }

        if shared.socket.is_some() || this.handler.is_some() {
            return Poll::Pending;
        }
        let seen = seen(&shared);
        drop(shared);
        if let Some(mut work) = this.work.take() {
            if *this.going_away {
                // Decided before the hook runs: a slow hook (or one that
                // panics) cannot turn the clean end into a cut.
                let ending = if work.end_early() {
                    Ending::Early
                } else {
                    Ending::Cut
                };
                this.config
                    .ended(&StreamEnd::new(Framing::WebSocket, ending, &seen));
            }
        }
        Poll::Ready(())
    }
}

/// Whether the drain should close the socket now: it has tripped, and the
/// grace, if any, is over.
fn trip_is_over(
    tripped: Pin<&mut Tripped>,
    grace: &mut Option<Pin<Box<Sleep>>>,
    seen_trip: &mut bool,
    config: &Config,
    cx: &mut Context<'_>,
) -> bool {
    if !*seen_trip {
        if tripped.poll(cx).is_pending() {
            return false;
        }
        *seen_trip = true;
        // Outside a tokio runtime there is no timer: no grace.
        if !config.grace.is_zero() && tokio::runtime::Handle::try_current().is_ok() {
            *grace = Some(Box::pin(tokio::time::sleep(config.grace)));
        }
    }
    match grace {
        Some(sleep) => sleep.as_mut().poll(cx).is_ready(),
        None => true,
    }
}

/// The close handshake, as the drain drives it.
struct Closing<'a> {
    /// The Close the drain has still to send.
    close: &'a mut Option<u16>,
    /// The drain's Close was `1001 Going Away`.
    going_away: &'a mut bool,
}

impl Closing<'_> {
    /// Sends the drain's Close if it has one to send, flushes, and reads
    /// (and drops) what the client sends until its Close, or until the
    /// socket ends or fails. Ready once the socket is done with.
    fn drive<S: Socket>(&mut self, socket: &mut S, reason: &str, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(code) = *self.close {
            match Pin::new(&mut *socket).poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {}
            }
            if Pin::new(&mut *socket)
                .start_send(S::close_message(code, reason))
                .is_err()
            {
                return Poll::Ready(());
            }
            *self.close = None;
            *self.going_away = code == GOING_AWAY;
        }
        if let Poll::Ready(Err(_)) = Pin::new(&mut *socket).poll_flush(cx) {
            return Poll::Ready(());
        }
        for _ in 0..READ_BUDGET {
            match Pin::new(&mut *socket).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
            }
        }
        // A client that keeps sending: let the runtime run others first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// What the application sent, as the stream-end hook sees it.
fn seen<S: Socket>(shared: &Shared<S>) -> Seen {
    Seen {
        events: shared.messages,
        bytes: shared.bytes,
        ..Seen::default()
    }
}

impl<S: Socket, F> fmt::Debug for Conversation<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conversation")
            .field("handler_running", &self.handler.is_some())
            .field("over", &self.work.is_none())
            .field("seen_trip", &self.seen_trip)
            .finish_non_exhaustive()
    }
}
