//! A server that follows the drain: it moves clients off at the trip,
//! keeps answering until the drain is over, closes without resets, and
//! drops what is left at the deadline.
//!
//! ```no_run
//! use std::future::IntoFuture;
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use tower_drain::{shutdown::{Shutdown, ShutdownReport}, Drain};
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<ShutdownReport> {
//!     let drain = Drain::new();
//!     let shutdown = Shutdown::on_signals(&drain)?.deadline(Duration::from_secs(30));
//!
//!     let app = Router::new()
//!         .route("/", get(|| async { "hello" }))
//!         .layer(drain.layer());
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     tokio::spawn(tower_drain::serve(listener, app, &drain).into_future());
//!
//!     // Returns once the server has closed its last connection.
//!     let report = shutdown.run().await;
//!     println!("{report}");
//!     Ok(report)
//! }
//! ```
//!
//! hyper, axum and tonic close connections when told to stop, and they are
//! told once the drain is over. What clients see at the connection level
//! until then is left to chance: HTTP/2 clients stay on the draining
//! instance and are refused request after request, keep-alive clients are
//! cut off by a closed socket at the stop, a socket closed with unread bytes
//! sends a reset, and one connection that never closes (a client that stopped
//! reading, a health `Watch` stream, an upgraded connection) holds the stop
//! forever. [`serve`] ties the connections to the drain instead, phase by
//! phase:
//!
//! - **Serving**: HTTP/1.1 and HTTP/2 (h2c, by prior knowledge) on the same
//!   port, through hyper-util's `auto` builder; `TCP_NODELAY`; an accept
//!   error never ends the loop (it is logged, and for errors other than a
//!   connection gone before it was accepted the loop waits, from 5 ms
//!   doubling to 1 s, so that running out of file descriptors does not spin);
//!   a new connection must say which protocol it speaks, and HTTP/1 headers
//!   must arrive, within [`header_read_timeout`](Serve::header_read_timeout)
//!   (30 s by default), which also closes a keep-alive connection idle for
//!   that long (hyper starts the timer when it waits for a request); HTTP/2
//!   keeps hyper's defaults (no keep-alive pings).
//! - **At the trip**: every HTTP/2 connection gets `GOAWAY`: its open
//!   streams finish, and the client opens its next one on a new connection,
//!   which a load balancer sends elsewhere. An HTTP/1 response after the
//!   trip carries `Connection: close` (from [`DrainLayer`](crate::DrainLayer))
//!   and its connection closes after it. The listener stays open, so late
//!   requests get the layer's clean 503 / `UNAVAILABLE` rather than a
//!   refused connection.
//! - **After the minimum drain window** ([`min_drain`](Serve::min_drain), 0
//!   by default, so at the trip): idle HTTP/1 connections are closed, busy
//!   ones after their current response. With a window, an HTTP/1 client
//!   idle at the trip is moved off by the `Connection: close` of its next
//!   answer instead of a socket closed under it. A connection whose client
//!   has not yet said which protocol it speaks (a browser's preconnect) gets
//!   the linger to speak, then is closed.
//! - **When the drain is over** (drained, or cut and unwound: the end of
//!   [`Drain::shutdown`](crate::Drain::shutdown) or of the
//!   [`Shutdown`](crate::shutdown::Shutdown)'s drain phase) and the window
//!   has passed: the listener closes, and the connections the kernel has
//!   completed are taken first. If the drain was cut at the deadline, every
//!   connection still open is dropped at once (and the window ends);
//!   otherwise those still open (exempt requests, closes in progress) get
//!   the [`close_timeout`](Serve::close_timeout) (1 s) and are dropped then.
//!   So the server ends at most its close timeout after the drain is over
//!   (a quarter of a second after a cut, for the streams of dropped HTTP/2
//!   connections to let go), whatever its clients do; or when a longer
//!   window ends.
//! - **Closing without resets**: the server sends FIN, then reads and
//!   discards what the client still sends until the client closes too, for
//!   at most the [`linger`](Serve::linger) (500 ms), as Go's `net/http`
//!   does. A socket closed with unread bytes would send RST, which can
//!   destroy a response the client has not read yet; with the linger the
//!   client reads every byte, then an orderly close, on which HTTP clients
//!   retry an idempotent request. (An upgraded connection's socket is the
//!   application's: its shutdowns do not linger.)
//!
//! The drain's [report](crate::DrainReport::connections) counts the
//! connections: open at the trip, closed gracefully, closed hard.
//! [`Shutdown::run`](crate::shutdown::Shutdown::run) waits, before its
//! cleanup hooks run, for every server of its drain to end: from the call to
//! [`serve`] until the server has closed (or the [`Serve`] is dropped).
//!
//! Requests reach the service as `Request<hyper::body::Incoming>`: an axum
//! `Router`, a tonic `Routes` (`Server::builder()...into_service()`, or
//! `Routes::new(svc)`), or any tower service. Put the [`DrainLayer`](crate::DrainLayer)
//! on it: the server moves connections, the layer refuses requests.
//! Upgraded connections (WebSockets) are handed to the application once
//! their `101` is sent; the server does not hold them.

mod connection;
mod linger;
mod listener;
mod upgrade;

pub use self::listener::Listener;

use std::fmt;
use std::future::{poll_fn, Future, IntoFuture};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tower_service::Service;

use self::connection::{Counted, Phase};
use crate::state::{Event, Handle, Wait};
use crate::{BoxError, Drain};

/// How long the accept loop first waits after an error other than a
/// connection gone before it was accepted; it doubles up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most this many connections are taken from the backlog as the
/// listener closes.
const MAX_BACKLOG: usize = 1024;
/// After a cut, how long the server waits for the tasks of the connections
/// it dropped to let go of their requests.
const SETTLE: Duration = Duration::from_millis(250);
/// A header read timeout longer than this is none (hyper would overflow
/// adding it to the clock).
const NO_TIMEOUT_BEYOND: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Serves `service` on the connections `listener` accepts, following
/// `drain`'s phases (see the [module docs](self)).
///
/// The returned [`Serve`] takes settings, and runs when awaited (or through
/// `into_future()`, to spawn it). It resolves once the drain is over and its
/// last connection has closed, and never before: until then, accept errors
/// are logged and the loop goes on.
pub fn serve<L, S, B>(listener: L, service: S, drain: &Drain) -> Serve<L, S>
where
    L: Listener,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let close_timeout = Duration::from_secs(1);
    let running = Running::new(drain.handle().clone());
    running.may_take(close_timeout);
    Serve {
        listener,
        service,
        running,
        min_drain: Duration::ZERO,
        close_timeout,
        linger: Duration::from_millis(500),
        header_read_timeout: Some(Duration::from_secs(30)),
    }
}

/// A server being set up: see [`serve`].
#[must_use = "a Serve does nothing until it is awaited"]
pub struct Serve<L, S> {
    listener: L,
    service: S,
    /// Counts the server in its drain from `serve()` on, so that a shutdown
    /// that starts before the spawned server first runs still waits for it.
    running: Running,
    min_drain: Duration,
    close_timeout: Duration,
    linger: Duration,
    header_read_timeout: Option<Duration>,
}

impl<L, S> Serve<L, S> {
    /// Keep the listener open and HTTP/1 keep-alive connections up for at
    /// least `window` after the trip, even when nothing is in flight
    /// (default 0).
    ///
    /// With nothing in flight the drain is over at the trip, and the server
    /// closes at once: a keep-alive client that sends its next request then
    /// finds its connection closed, and a new connection refused. Within the
    /// window, that request gets the layer's 503 with `Connection: close`
    /// (or `UNAVAILABLE`), which tells the client what happened and when to
    /// come back. Behind a load balancer that has stopped routing here
    /// during the lame duck, no window is needed.
    ///
    /// A drain cut at its deadline ends the window; one that is over before
    /// the window keeps the server up until the window ends.
    pub fn min_drain(mut self, window: Duration) -> Self {
        self.min_drain = window;
        self
    }

    /// Once the drain is over without a cut, how long connections still
    /// open get to close by themselves before they are dropped (default
    /// 1 s). They have been moved off since the trip: what is left is
    /// exempt requests still running, and closes in progress. (If the drain
    /// was cut at the deadline, what is left is dropped at once.)
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self.running.may_take(timeout);
        self
    }

    /// After the server sends FIN on a connection, how long at most it reads
    /// and discards what the client still sends before dropping the socket
    /// (default 500 ms; it ends as soon as the client closes too). Zero
    /// drops the socket at once, which sends RST if the client's bytes are
    /// unread.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// How long an HTTP/1 client gets to send a request's headers (default
    /// 30 s; `None`, or more than a year: no limit). It also bounds how long
    /// a new connection may stay silent or send only part of the HTTP/2
    /// preface, and hyper starts it again whenever it waits for the next
    /// request, so it closes a keep-alive connection idle for that long too:
    /// a client that sends a byte at a time cannot hold a connection forever.
    pub fn header_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.header_read_timeout = timeout.into().filter(|t| *t <= NO_TIMEOUT_BEYOND);
        self
    }
}

impl<L, S, B> IntoFuture for Serve<L, S>
where
    L: Listener,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Output = ();
    type IntoFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl<L, S> Serve<L, S> {
    async fn run<B>(self)
    where
        L: Listener,
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let Self {
            mut listener,
            service,
            running,
            min_drain,
            close_timeout,
            linger,
            header_read_timeout,
        } = self;
        let handle = &running.handle;
        let block = handle.block();

        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        let builder = Arc::new(builder);

        let (phase, phase_seen) = watch::channel(Phase::Serving);
        let mut connections = JoinSet::new();
        // Owns what it hands each connection, so that the loop stays `Send`
        // with a service that is only `Send`.
        let spawn = {
            let handle = handle.clone();
            move |connections: &mut JoinSet<()>, io| {
                connections.spawn(connection::serve(
                    builder.clone(),
                    io,
                    service.clone(),
                    phase_seen.clone(),
                    connection::Settings {
                        linger,
                        header_read_timeout,
                    },
                    Counted::new(handle.clone()),
                ));
            }
        };
        let mut tripped = pin!(Wait::new(block, Event::Tripped));
        let mut over = pin!(Wait::new(block, Event::Over));
        // Set at the trip: the end of the minimum drain window.
        let mut window: Pin<&mut Option<Sleep>> = pin!(None);
        let mut backoff = Duration::ZERO;
        let mut pause: Pin<&mut Option<Sleep>> = pin!(None);

        loop {
            let step = {
                let mut accept = pin!(listener.accept());
                poll_fn(|cx| {
                    // Reap connections that have ended.
                    while let Poll::Ready(Some(_)) = connections.poll_join_next(cx) {}
                    if *phase.borrow() == Phase::Serving && tripped.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Step::Tripped);
                    }
                    if let Some(sleep) = window.as_mut().as_pin_mut() {
                        if *phase.borrow() == Phase::Tripped && sleep.poll(cx).is_ready() {
                            return Poll::Ready(Step::WindowOver);
                        }
                    }
                    // Over: once the window has passed too, or at once if the
                    // drain was cut at its deadline.
                    if *phase.borrow() >= Phase::Tripped
                        && over.as_mut().poll(cx).is_ready()
                        && (*phase.borrow() == Phase::MovingOff || block.is_forced())
                    {
                        return Poll::Ready(Step::Over);
                    }
                    if let Some(sleep) = pause.as_mut().as_pin_mut() {
                        if sleep.poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        pause.set(None);
                    }
                    accept.as_mut().poll(cx).map(Step::Accepted)
                })
                .await
            };
            match step {
                Step::Accepted(Ok((io, _peer))) => {
                    backoff = Duration::ZERO;
                    spawn(&mut connections, io);
                }
                Step::Accepted(Err(error)) => {
                    if listener::is_connection_error(&error) {
                        crate::event!(debug, %error, "accept: connection gone before it was accepted");
                        continue;
                    }
                    backoff = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                    crate::event!(error, %error, ?backoff, "accept failed; trying again");
                    pause.set(Some(tokio::time::sleep(backoff)));
                }
                Step::Tripped => {
                    crate::event!(
                        info,
                        connections = block.connections().report()[0],
                        "drain tripped: moving clients off their connections"
                    );
                    phase.send_replace(Phase::Tripped);
                    window.set(Some(tokio::time::sleep(min_drain)));
                }
                Step::WindowOver => {
                    phase.send_replace(Phase::MovingOff);
                }
                Step::Over => break,
            }
        }

        // Connections the kernel has completed but the loop has not taken
        // yet would be reset when the listener closes, their request unread:
        // take them first (they are closed gracefully with the rest). After a
        // cut everything is dropped anyway.
        if block.is_forced() {
            drop(listener);
        } else {
            for io in listener.into_backlog(MAX_BACKLOG) {
                spawn(&mut connections, io);
            }
        }
        close(block, connections, &phase, close_timeout).await;
        crate::event!(info, "server closed");
    }
}

/// Closes what is left once the drain is over: after a cut, every
/// connection at once; otherwise each gracefully, and what is still open
/// after `close_timeout` hard.
async fn close(
    block: &'static crate::state::Block,
    mut connections: JoinSet<()>,
    phase: &watch::Sender<Phase>,
    close_timeout: Duration,
) {
    if block.is_forced() {
        crate::event!(
            info,
            open = connections.len(),
            "drain cut at the deadline: dropping the connections still open"
        );
        connections.abort_all();
    } else {
        phase.send_replace(Phase::Closing);
        let closed = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(close_timeout, closed).await.is_err() {
            crate::event!(
                warn,
                open = connections.len(),
                ?close_timeout,
                "connections still open after the close timeout: dropping them"
            );
            connections.abort_all();
        }
    }
    while connections.join_next().await.is_some() {}
    // HTTP/2 streams run in tasks of their own, which drop what they hold
    // (a cut request's body) just after their connection: let them, so that
    // the report made after the server counts those requests.
    if block.is_forced() && block.in_flight() > 0 {
        let _ = tokio::time::timeout(SETTLE, Wait::new(block, Event::Drained)).await;
    }
}

enum Step<A> {
    Accepted(A),
    Tripped,
    WindowOver,
    Over,
}

/// Counts a running server in its drain, so that the shutdown sequence
/// waits for it.
struct Running {
    handle: Handle,
}

impl Running {
    fn new(handle: Handle) -> Self {
        handle.block().connections().server_started();
        Self { handle }
    }

    /// Tells the shutdown sequence how long this server may take to close
    /// once the drain is over, so that it waits as long.
    fn may_take(&self, close_timeout: Duration) {
        self.handle
            .block()
            .connections()
            .may_take(close_timeout.saturating_add(SETTLE));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.block().server_ended();
    }
}

impl<L, S> fmt::Debug for Serve<L, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("drain", &self.running.handle)
            .field("min_drain", &self.min_drain)
            .field("close_timeout", &self.close_timeout)
            .field("linger", &self.linger)
            .field("header_read_timeout", &self.header_read_timeout)
            .finish_non_exhaustive()
    }
}
