//! One connection, from its accept to its close, following the server's
//! phase.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::Ordering::Acquire;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tower_service::Service;

use super::linger::{hyper_polling, Linger, Protocol};
use super::upgrade::UpgradeWatch;
use crate::state::Handle;
use crate::BoxError;

/// Where the server is, as its connections see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Phase {
    Serving,
    /// The drain has tripped: HTTP/2 connections get `GOAWAY` (their open
    /// streams finish; the client opens its next one elsewhere). HTTP/1
    /// connections carry on: each response after the trip says
    /// `Connection: close` (the layer adds it), which closes its connection.
    Tripped,
    /// The minimum drain window is over: every connection with a protocol
    /// closes gracefully (HTTP/1: after its current response, at once if
    /// idle); one whose client has not said which protocol it speaks gets
    /// the linger to, then is closed through its socket.
    MovingOff,
    /// The drain is over: the listener is closed. Connections close as in
    /// `MovingOff`, until the server's close timeout drops what is left.
    Closing,
}

/// Counts a connection in the drain's block while it is open. Dropped
/// before [`closed`](Self::closed) after the trip (the server dropped the
/// connection), it counts as closed hard.
pub(super) struct Counted {
    handle: Handle,
    gracefully: bool,
}

impl Counted {
    pub(super) fn new(handle: Handle) -> Self {
        handle.block().connections().opened();
        Self {
            handle,
            gracefully: false,
        }
    }

    /// The connection ended without being dropped.
    fn closed(mut self) {
        self.gracefully = true;
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.handle.block().connections().closed(self.gracefully);
    }
}

enum Step<E> {
    Ended(Result<(), E>),
    Decided(Protocol),
    /// The client has not said which protocol it speaks in time.
    Silent,
    PhaseChanged,
    ServerGone,
}

/// How one connection is served.
pub(super) struct Settings {
    pub(super) linger: Duration,
    /// How long a client gets to send its first request's headers (HTTP/1)
    /// or its preface (HTTP/2); `None`: no limit.
    pub(super) header_read_timeout: Option<Duration>,
}

/// Serves one connection until it closes, closing it gracefully when the
/// server's phase says so.
pub(super) async fn serve<I, S, B>(
    builder: Arc<Builder<TokioExecutor>>,
    io: I,
    service: S,
    mut phase: watch::Receiver<Phase>,
    settings: Settings,
    counted: Counted,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (io, control) = Linger::new(io, settings.linger);
    let id = control.id;
    let mut close_silent = control.close_silent;
    let mut decided = pin!(control.decided);
    let mut protocol = None;
    // Until the client says which protocol it speaks, hyper-util has no
    // timer of its own: a client that sends nothing (or part of the HTTP/2
    // preface) would hold the connection forever.
    let mut undecided = pin!(settings.header_read_timeout.map(tokio::time::sleep));
    let mut shut = false;
    let service = UpgradeWatch::new(service);
    // An HTTP/1 connection waiting for an upgrade's answer is not closed
    // gracefully: hyper would make its `101` say `Connection: upgrade,
    // close`, which clients reject. Answered with a `101`, it becomes the
    // application's; answered otherwise after the trip, `DrainLayer`'s
    // `Connection: close` closes it, and so does the next loop here.
    let upgrading = service.pending();
    let mut connection =
        pin!(builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service)));
    let ended = loop {
        // A connection is closed gracefully once its client has said which
        // protocol it speaks: before that, hyper-util would cancel it and
        // drop the socket with whatever has just arrived unread, which
        // resets the connection. One still silent when the server moves
        // clients off gets the linger to speak, then is closed through the
        // socket (FIN, and the linger reads what arrives after all).
        let now = *phase.borrow_and_update();
        let close = match now {
            Phase::Serving => false,
            Phase::Tripped => protocol == Some(Protocol::Http2),
            Phase::MovingOff | Phase::Closing => protocol.is_some(),
        };
        let deferred = close && protocol == Some(Protocol::Http1) && upgrading.load(Acquire);
        if close && !shut && !deferred {
            shut = true;
            connection.as_mut().graceful_shutdown();
        }
        if protocol.is_none() && now >= Phase::MovingOff && close_silent.is_some() {
            let soon = Instant::now() + settings.linger.min(LINGER_CAP);
            match undecided.as_mut().as_pin_mut() {
                Some(timer) if timer.deadline() <= soon => {}
                Some(timer) => timer.reset(soon),
                None => undecided.set(Some(tokio::time::sleep_until(soon))),
            }
        }
        // `changed` compares versions, so a change made between two of
        // these is seen by the next.
        let mut changed = pin!(phase.changed());
        let step = poll_fn(|cx| {
            if let Poll::Ready(result) = hyper_polling(id, || connection.as_mut().poll(cx)) {
                return Poll::Ready(Step::Ended(result));
            }
            // The upgrade was answered without a `101` (in the poll above,
            // which runs the service): the connection can be closed now.
            if deferred && !upgrading.load(Acquire) {
                return Poll::Ready(Step::PhaseChanged);
            }
            if protocol.is_none() {
                if let Poll::Ready(read) = decided.as_mut().poll(cx) {
                    // Gone before it said: the connection is ending anyway.
                    return Poll::Ready(Step::Decided(read.unwrap_or(Protocol::Http1)));
                }
                if let Some(timer) = undecided.as_mut().as_pin_mut() {
                    if timer.poll(cx).is_ready() {
                        return Poll::Ready(Step::Silent);
                    }
                }
            }
            changed.as_mut().poll(cx).map(|changed| match changed {
                Ok(()) => Step::PhaseChanged,
                Err(_) => Step::ServerGone,
            })
        })
        .await;
        match step {
            Step::Ended(_result) => {
                #[cfg(feature = "tracing")]
                if let Err(error) = _result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                break true;
            }
            Step::Decided(decided) => protocol = Some(decided),
            // Silent for too long: the socket closes itself (see `Linger`),
            // and hyper-util, reading its end, ends the connection.
            Step::Silent => {
                undecided.set(None);
                if let Some(close) = close_silent.take() {
                    let _ = close.send(());
                }
            }
            Step::PhaseChanged => {}
            // The server is gone without closing: drop the connection.
            Step::ServerGone => break false,
        }
    };
    if ended {
        counted.closed();
    }
}

/// The longest a client still silent when the server moves clients off is
/// waited for, whatever the linger.
const LINGER_CAP: Duration = Duration::from_secs(1);
