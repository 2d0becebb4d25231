//! One connection, from its accept to its close, following the server's
//! phase.

use std::future::{poll_fn, Future};
use std::pin::pin;
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
use tower_service::Service;

use super::linger::{Linger, Protocol};
use crate::state::{Closed, Handle};
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
    /// idle).
    MovingOff,
    /// The drain is over: the listener is closed, and so is every
    /// connection once its client has sent something.
    Closing,
}

/// Counts a connection in the drain's block while it is open; dropped
/// before [`closed`](Self::closed) (the server dropped the connection), it
/// counts as closed hard.
pub(super) struct Counted {
    handle: Handle,
    how: Closed,
}

impl Counted {
    pub(super) fn new(handle: Handle) -> Self {
        handle.block().connections().opened();
        Self {
            handle,
            how: Closed::Hard,
        }
    }

    /// The connection ended without being dropped.
    fn closed(mut self) {
        self.how = if self.handle.block().is_tripped() {
            Closed::Gracefully
        } else {
            Closed::BeforeTrip
        };
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.handle.block().connections().closed(self.how);
    }
}

enum Step<E> {
    Ended(Result<(), E>),
    FirstRead(Protocol),
    PhaseChanged,
    ServerGone,
}

/// Serves one connection until it closes, closing it gracefully when the
/// server's phase says so.
pub(super) async fn serve<I, S, B>(
    builder: Arc<Builder<TokioExecutor>>,
    io: I,
    service: S,
    mut phase: watch::Receiver<Phase>,
    linger: Duration,
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
    let (io, first_read) = Linger::new(io, linger);
    let mut first_read = pin!(first_read);
    let mut protocol = None;
    let mut shut = false;
    let mut connection =
        pin!(builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service)));
    let ended = loop {
        // A connection is closed gracefully only once its client has sent
        // something: before that, hyper-util cancels it, and the socket is
        // dropped with whatever request has just arrived unread, which
        // resets the connection. One that stays silent is dropped at the
        // server's close timeout.
        let close = match *phase.borrow_and_update() {
            Phase::Serving => false,
            Phase::Tripped => protocol == Some(Protocol::Http2),
            Phase::MovingOff | Phase::Closing => protocol.is_some(),
        };
        if close && !shut {
            shut = true;
            connection.as_mut().graceful_shutdown();
        }
        // `changed` compares versions, so a change made between two of
        // these is seen by the next.
        let mut changed = pin!(phase.changed());
        let step = poll_fn(|cx| {
            if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                return Poll::Ready(Step::Ended(result));
            }
            if protocol.is_none() {
                if let Poll::Ready(read) = first_read.as_mut().poll(cx) {
                    // Gone without a byte: the connection is ending anyway.
                    return Poll::Ready(Step::FirstRead(read.unwrap_or(Protocol::Http1)));
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
            Step::FirstRead(read) => protocol = Some(read),
            Step::PhaseChanged => {}
            // The server is gone without closing: drop the connection.
            Step::ServerGone => break false,
        }
    };
    if ended {
        counted.closed();
    }
}
