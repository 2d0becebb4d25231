//! The application's side of a drained WebSocket.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_sink::Sink;

use super::socket::Socket;

/// What the application and the drain share of one WebSocket.
///
/// The socket is used by one side at a time: by the application until the
/// drain takes it over (to send its Close at the trip, or to close it once
/// the application let go), by the drain after. Each side locks only inside
/// a poll, never across one, so the lock is never contended for long.
pub(crate) struct Shared<S: Socket> {
    /// `None` once the drain has closed or dropped it.
    pub(crate) socket: Option<S>,
    /// The drain has taken the socket over: the application's reads end and
    /// its sends fail.
    pub(crate) taken_over: bool,
    /// A Close is queued (the application sent one) or was received (the
    /// socket replies by itself): the drain adds none.
    pub(crate) close_queued: bool,
    /// The application has sent part of a fragmented message: a Close now
    /// would split it.
    pub(crate) mid_message: bool,
    /// The application dropped its `DrainWebSocket`.
    pub(crate) let_go: bool,
    /// Whole data messages the application sent, and their payload bytes.
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    /// The application's tasks waiting on the socket, woken when the drain
    /// takes it over (their wakers are no longer the socket's then).
    app_recv: Option<Waker>,
    app_send: Option<Waker>,
    /// The conversation's task, woken when the application lets go.
    pub(crate) driver: Option<Waker>,
}

impl<S: Socket> Shared<S> {
    pub(crate) fn new(socket: S) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            socket: Some(socket),
            taken_over: false,
            close_queued: false,
            mid_message: false,
            let_go: false,
            messages: 0,
            bytes: 0,
            app_recv: None,
            app_send: None,
            driver: None,
        }))
    }

    /// Takes the socket from the application, and wakes its waiting tasks
    /// so that they see it.
    pub(crate) fn take_over(&mut self) {
        self.taken_over = true;
        for waker in [self.app_recv.take(), self.app_send.take()]
            .into_iter()
            .flatten()
        {
            waker.wake();
        }
    }

    /// The socket, while the application may use it.
    fn app_socket(&mut self) -> Option<&mut S> {
        if self.taken_over {
            None
        } else {
            self.socket.as_mut()
        }
    }
}

pub(crate) fn lock<S: Socket>(shared: &Mutex<Shared<S>>) -> MutexGuard<'_, Shared<S>> {
    // A panic in a socket's poll leaves nothing half-updated here.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn store(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) => waker.clone_from(cx.waker()),
        None => *slot = Some(cx.waker().clone()),
    }
}

/// A WebSocket inside the drain, handed to the application by
/// [`WebSocketDrain::on_upgrade`](super::WebSocketDrain::on_upgrade) or
/// [`Admitted::run`](super::Admitted::run).
///
/// It reads and sends like the socket it wraps (`recv`, `send`, and the
/// `Stream` and `Sink` traits, so `split` works), until the drain takes the
/// socket over to close it: then [`recv`](Self::recv) returns `None` (the
/// messages the client sends after the drain's Close are not read) and
/// [`send`](Self::send) fails. A message the application has handed to the
/// socket is never split by the drain's Close: it goes out whole, before
/// it.
pub struct DrainWebSocket<S: Socket> {
    shared: Arc<Mutex<Shared<S>>>,
}

impl<S: Socket> DrainWebSocket<S> {
    pub(crate) fn new(shared: Arc<Mutex<Shared<S>>>) -> Self {
        Self { shared }
    }

    /// Receives the next message; `None` once the socket has closed, or
    /// the drain has taken it over to close it.
    pub async fn recv(&mut self) -> Option<Result<S::Message, S::SocketError>> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Sends a message, and flushes it.
    ///
    /// # Errors
    ///
    /// The socket's error; once the drain has taken the socket over, the
    /// socket's error for a closed socket (for axum, one that wraps
    /// [`Closed`](super::Closed)).
    pub async fn send(&mut self, message: S::Message) -> Result<(), S::SocketError> {
        let mut this = Pin::new(self);
        poll_fn(|cx| this.as_mut().poll_ready(cx)).await?;
        this.as_mut().start_send(message)?;
        poll_fn(|cx| this.as_mut().poll_flush(cx)).await
    }

    /// Whether the drain has taken the socket over to close it.
    pub fn is_closing(&self) -> bool {
        lock(&self.shared).taken_over
    }
}

impl<S: Socket> Stream for DrainWebSocket<S> {
    type Item = Result<S::Message, S::SocketError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut shared = lock(&self.shared);
        let Some(socket) = shared.app_socket() else {
            return Poll::Ready(None);
        };
        match Pin::new(socket).poll_next(cx) {
            Poll::Pending => {
                store(&mut shared.app_recv, cx);
                Poll::Pending
            }
            Poll::Ready(Some(Ok(message))) => {
                if S::describe(&message).close {
                    // The socket answers the client's Close by itself.
                    shared.close_queued = true;
                }
                Poll::Ready(Some(Ok(message)))
            }
            ready => ready,
        }
    }
}

impl<S: Socket> Sink<S::Message> for DrainWebSocket<S> {
    type Error = S::SocketError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::SocketError>> {
        let mut shared = lock(&self.shared);
        let Some(socket) = shared.app_socket() else {
            return Poll::Ready(Err(S::closed()));
        };
        let ready = Pin::new(socket).poll_ready(cx);
        if ready.is_pending() {
            store(&mut shared.app_send, cx);
        }
        ready
    }

    fn start_send(self: Pin<&mut Self>, message: S::Message) -> Result<(), S::SocketError> {
        let mut shared = lock(&self.shared);
        let described = S::describe(&message);
        let Some(socket) = shared.app_socket() else {
            return Err(S::closed());
        };
        Pin::new(socket).start_send(message)?;
        if let Some(len) = described.data {
            if shared.mid_message && described.ends_message {
                // The drain may be waiting for this message's end to close.
                if let Some(driver) = &shared.driver {
                    driver.wake_by_ref();
                }
            }
            shared.mid_message = !described.ends_message;
            shared.messages += u64::from(described.ends_message);
            shared.bytes += len as u64;
        }
        shared.close_queued |= described.close;
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::SocketError>> {
        let mut shared = lock(&self.shared);
        if shared.taken_over {
            // What the application handed over goes out before the drain's
            // Close, flushed by the drain; once the socket is gone, it
            // may not have.
            return Poll::Ready(match shared.socket {
                Some(_) => Ok(()),
                None => Err(S::closed()),
            });
        }
        let Some(socket) = shared.socket.as_mut() else {
            return Poll::Ready(Err(S::closed()));
        };
        let flushed = Pin::new(socket).poll_flush(cx);
        if flushed.is_pending() {
            store(&mut shared.app_send, cx);
        }
        flushed
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), S::SocketError>> {
        let mut shared = lock(&self.shared);
        let Some(socket) = shared.app_socket() else {
            return Poll::Ready(Ok(()));
        };
        let closed = Pin::new(socket).poll_close(cx);
        shared.close_queued = true;
        if closed.is_pending() {
            store(&mut shared.app_send, cx);
        }
        closed
    }
}

impl<S: Socket> Drop for DrainWebSocket<S> {
    fn drop(&mut self) {
        let mut shared = lock(&self.shared);
        shared.let_go = true;
        if let Some(driver) = shared.driver.take() {
            driver.wake();
        }
    }
}

impl<S: Socket> fmt::Debug for DrainWebSocket<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = lock(&self.shared);
        f.debug_struct("DrainWebSocket")
            .field("closing", &shared.taken_over)
            .field("messages", &shared.messages)
            .field("bytes", &shared.bytes)
            .finish_non_exhaustive()
    }
}
