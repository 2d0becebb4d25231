//! WebSockets inside the drain: counted from the upgrade until the close
//! handshake ends, closed with `1001 Going Away` at the trip, cut at the
//! deadline.
//!
//! ```
//! use std::time::Duration;
//! use axum::extract::ws::{Message, WebSocketUpgrade};
//! use axum::extract::State;
//! use axum::response::Response;
//! use axum::{routing::get, Router};
//! use tower_drain::Drain;
//! use tower_drain_sse::ws::WebSocketDrain;
//!
//! // An echo server whose sockets the drain closes at the trip.
//! async fn echo(upgrade: WebSocketUpgrade, State(ws): State<WebSocketDrain>) -> Response {
//!     ws.on_upgrade(upgrade, |mut socket| async move {
//!         // `recv` ends when the drain closes the socket.
//!         while let Some(Ok(message)) = socket.recv().await {
//!             if socket.send(message).await.is_err() {
//!                 break;
//!             }
//!         }
//!     })
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let drain = Drain::new();
//! let app: Router = Router::new()
//!     .route("/ws", get(echo))
//!     .with_state(WebSocketDrain::new(drain.signal()))
//!     .layer(drain.layer());
//! # let _ = app;
//! // ... serve `app`; at shutdown every socket gets
//! // Close 1001 {"type":"end","reason":"server_shutdown",...}, and the
//! // drain waits for each client's Close (until the deadline).
//! let report = drain.shutdown(Duration::from_secs(30)).await;
//! assert!(report.is_clean());
//! # }
//! ```
//!
//! An upgrade request is counted by [`DrainLayer`](tower_drain::DrainLayer)
//! until its `101` response goes out; after that the socket is the
//! application's, and neither the layer nor a server sees it.
//! [`WebSocketDrain::on_upgrade`] takes its count over, as counted
//! [work](tower_drain::work), while the request is still counted: there is
//! no moment between the two when the drain could miss the socket. From
//! then on the socket:
//!
//! - counts in [`in_flight`](tower_drain::Drain::in_flight), and keeps
//!   [`drained`](tower_drain::Drain::drained) waiting, until the close
//!   handshake has ended (or the socket failed) and the handler has
//!   returned;
//! - at the trip (after the [grace](WebSocketDrain::grace), if any) gets
//!   the WebSocket's terminal frame: a Close frame with code `1001 Going
//!   Away` and, as its reason, the same JSON that ends an SSE stream (cut
//!   at a character boundary to the 123 bytes a Close reason may have). The
//!   drain takes the socket over then: the handler's
//!   [`recv`](DrainWebSocket::recv) returns `None`, its
//!   [`send`](DrainWebSocket::send) fails, and what the client sends after
//!   the Close is read and dropped while the drain waits for the client's
//!   Close;
//! - never has a message split by the Close: a message the handler handed
//!   to the socket goes out whole before it, and a fragmented message (raw
//!   frames, with tokio-tungstenite) is finished first;
//! - is dropped at the drain deadline if it is still open (a client that
//!   never answers the Close, a handler that never returns), and counted
//!   [cut](tower_drain::DrainReport::cut);
//! - reaches the same [`on_stream_end`](WebSocketDrain::on_stream_end) hook
//!   as the SSE layer's streams ([`Framing::WebSocket`](crate::Framing)):
//!   data messages the handler sent, their bytes, and whether the socket
//!   ended early (it closed after the drain's Close, before the deadline:
//!   the client answered, or went away) or was cut, so that partial output
//!   can be saved. The report counts it the same way.
//!
//! A handler that lets go of its socket (returns, or drops it) while it is
//! open has it closed with `1000 Normal Closure`: that conversation ended by
//! itself, and the report counts it completed. So does one the client
//! closed.
//!
//! The same works for tokio-tungstenite's `WebSocketStream` (feature
//! `tungstenite`), upgraded by any server: take the count with
//! [`WebSocketDrain::admit`] before the upgrade's response goes out, and
//! [`run`](Admitted::run) the socket once upgraded.

mod conversation;
mod handle;
mod socket;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tower_drain::work::Refused;
use tower_drain::DrainSignal;

pub use self::conversation::Conversation;
pub use self::handle::DrainWebSocket;
pub use self::socket::{Closed, Describe, Socket};
use crate::terminal::{Config, StreamEnd};
use crate::SseDrainLayer;

/// Closes WebSockets when the drain trips. See the [module docs](self).
///
/// Cheap to clone (an `Arc`), `Send + Sync`: keep one in the router's
/// state.
#[derive(Clone, Debug)]
pub struct WebSocketDrain {
    config: Arc<Config>,
}

impl WebSocketDrain {
    /// Closes WebSockets at `signal`'s trip.
    pub fn new(signal: DrainSignal) -> Self {
        Self {
            config: Arc::new(Config::new(signal)),
        }
    }

    /// How long a socket may stay open after the trip (default zero), for a
    /// handler to finish an answer; then the drain closes it. The drain
    /// deadline cuts the grace short: a socket still open then is dropped,
    /// and counted cut.
    pub fn grace(mut self, grace: Duration) -> Self {
        Arc::make_mut(&mut self.config).grace = grace;
        self
    }

    /// The `reason` in the Close frame's JSON (default `server_shutdown`).
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Arc::make_mut(&mut self.config).edit(|spec| spec.reason = reason);
        self
    }

    /// The human-readable `message` in the Close frame's JSON.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        let message = message.into();
        Arc::make_mut(&mut self.config).edit(|spec| spec.message = message);
        self
    }

    /// Replaces the Close frame's JSON with `data` (line breaks become
    /// spaces; cut to 123 bytes).
    pub fn data(mut self, data: impl Into<String>) -> Self {
        let data = data.into();
        Arc::make_mut(&mut self.config).edit(|spec| spec.data = Some(data));
        self
    }

    /// Called once for every socket the drain ends: closed after the
    /// drain's `1001`, before the deadline (the client answered, or went
    /// away: [`Ending::Early`](crate::Ending::Early)), or dropped at the
    /// deadline
    /// ([`Ending::Cut`](crate::Ending::Cut)). [`StreamEnd::events`] is the
    /// data messages the handler sent, [`StreamEnd::bytes`] their payload.
    /// Never for a socket that ended by itself.
    pub fn on_stream_end<F>(mut self, hook: F) -> Self
    where
        F: Fn(&StreamEnd<'_>) + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.config).set_on_stream_end(Arc::new(hook));
        self
    }

    /// Takes a WebSocket's count in the drain: call it while the upgrade
    /// request is being answered, before its response goes out, then
    /// [`run`](Admitted::run) the socket once upgraded. Dropped unused (the
    /// upgrade failed), it releases the count.
    ///
    /// # Errors
    ///
    /// [`Refused`] once the drain has tripped: answer the upgrade request
    /// with a refusal (`503`) instead.
    pub fn admit(&self) -> Result<Admitted, Refused> {
        Ok(Admitted {
            work: self.config.signal.work()?,
            config: self.config.clone(),
        })
    }

    /// Answers an axum upgrade request: the socket counts in the drain from
    /// now until its close handshake has ended and `callback`'s future has
    /// returned, and is closed with `1001` at the trip. Once the drain has
    /// tripped, the answer is a `503` (`Retry-After`, `Connection: close`)
    /// instead, as [`DrainLayer`](tower_drain::DrainLayer) answers.
    #[cfg(feature = "ws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
    pub fn on_upgrade<F, C, Fut>(
        &self,
        upgrade: axum::extract::ws::WebSocketUpgrade<F>,
        callback: C,
    ) -> axum::response::Response
    where
        F: axum::extract::ws::OnFailedUpgrade,
        C: FnOnce(DrainWebSocket<axum::extract::ws::WebSocket>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        match self.admit() {
            Ok(admitted) => upgrade.on_upgrade(move |socket| admitted.run(socket, callback)),
            Err(_) => refused(),
        }
    }
}

/// The WebSockets of the SSE layer's drain, with its terminal frame, grace
/// and hook: one configuration for every stream a server has.
impl From<&SseDrainLayer> for WebSocketDrain {
    fn from(layer: &SseDrainLayer) -> Self {
        Self {
            config: layer.config().clone(),
        }
    }
}

/// A WebSocket's count in the drain, taken before its upgrade. See
/// [`WebSocketDrain::admit`].
#[derive(Debug)]
#[must_use = "the socket is counted only while this is held"]
pub struct Admitted {
    work: tower_drain::work::Work,
    config: Arc<Config>,
}

impl Admitted {
    /// Runs the conversation on `socket`: `callback`'s future gets the
    /// socket, wrapped, and the returned future counts in the drain until
    /// the close handshake has ended and that future has returned.
    pub fn run<S, C, Fut>(self, socket: S, callback: C) -> Conversation<S, Fut>
    where
        S: Socket,
        C: FnOnce(DrainWebSocket<S>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let shared = handle::Shared::new(socket);
        let handler = callback(DrainWebSocket::new(shared.clone()));
        Conversation::new(self.work, self.config, shared, handler)
    }
}

/// The answer to an upgrade request that arrives after the trip, in the
/// short window after `DrainLayer` admitted it.
#[cfg(feature = "ws")]
fn refused() -> axum::response::Response {
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::response::IntoResponse;

    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, HeaderValue::from_static("5")),
            (header::CONNECTION, HeaderValue::from_static("close")),
        ],
        "server is shutting down",
    )
        .into_response()
}

#[cfg(all(test, feature = "ws"))]
mod tests;
