use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tower_drain::DrainSignal;
use tower_layer::Layer;

use super::SseDrainService;
use crate::terminal::{Config, StreamEnd};

/// Ends streaming responses with a terminal frame when the drain trips.
///
/// The default SSE frame is
///
/// ```text
/// event: end
/// data: {"type":"end","reason":"server_shutdown","message":"the server is shutting down; reconnect to resume"}
/// retry: 3000
///
/// ```
///
/// and for NDJSON the same JSON object on one line.
///
/// Boundaries are checked where the application's frames end: frames are
/// never split (they pass through as the same `Bytes`), so a frame that
/// finishes the event in progress and carries more whole events passes whole.
/// The terminal frame goes in where the application next has nothing ready
/// at a boundary, so everything it produced is delivered first.
///
/// Each request's response future takes a reference to the layer's
/// configuration (an `Arc` clone), whatever its response turns out to be.
/// On a router with many short, non-streaming routes under load, put the
/// layer on the streaming routes only (`get(chat).layer(...)`) rather than on
/// the whole router.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use tower_drain::Drain;
/// use tower_drain_sse::SseDrainLayer;
///
/// let drain = Drain::new();
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(
///         SseDrainLayer::new(drain.signal())
///             .message("deploying a new version; reconnect to resume")
///             .grace(Duration::from_secs(5))
///             .on_stream_end(|end| {
///                 println!("{:?} after {} events, last id {:?}", end.ending(), end.events(), end.last_event_id());
///             }),
///     )
///     .layer(drain.layer()); // outermost
/// ```
#[derive(Clone, Debug)]
pub struct SseDrainLayer {
    config: Arc<Config>,
}

impl SseDrainLayer {
    /// Watches streaming responses for `signal`'s trip.
    pub fn new(signal: DrainSignal) -> Self {
        Self {
            config: Arc::new(Config::new(signal)),
        }
    }

    /// The SSE `event:` name of the terminal frame (default `end`).
    pub fn event(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        Arc::make_mut(&mut self.config).edit(|spec| spec.event = name);
        self
    }

    /// The `reason` in the terminal frame's JSON (default `server_shutdown`).
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Arc::make_mut(&mut self.config).edit(|spec| spec.reason = reason);
        self
    }

    /// The human-readable `message` in the terminal frame's JSON.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        let message = message.into();
        Arc::make_mut(&mut self.config).edit(|spec| spec.message = message);
        self
    }

    /// Replaces the terminal frame's JSON with `data`: SSE `data:` lines (one
    /// per line of `data`), or the NDJSON line (line breaks become spaces).
    pub fn data(mut self, data: impl Into<String>) -> Self {
        let data = data.into();
        Arc::make_mut(&mut self.config).edit(|spec| spec.data = Some(data));
        self
    }

    /// The SSE `retry:` hint, how long the client waits before reconnecting
    /// (default 3 s); `None` leaves it out.
    pub fn retry(mut self, retry: Option<Duration>) -> Self {
        Arc::make_mut(&mut self.config).edit(|spec| spec.retry = retry);
        self
    }

    /// Builds the whole terminal frame per stream, from what it had sent.
    ///
    /// The frame is appended as it is: for SSE it must be whole events (end
    /// with a blank line) and must not begin with a line break.
    pub fn frame_with<F>(mut self, frame: F) -> Self
    where
        F: Fn(&StreamEnd<'_>) -> Bytes + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.config).set_custom(Arc::new(frame));
        self
    }

    /// How long a stream may run on after the trip to finish by itself
    /// (default zero: it ends at the first event boundary after the trip
    /// where the application has nothing ready). When the grace is over, or
    /// at the drain deadline if that comes first, it ends likewise; inside
    /// `DrainLayer`, a stream that never waits is cut when the unwind after
    /// the deadline is over.
    ///
    /// The grace timer is tokio's: the body must be polled inside a tokio
    /// runtime with its time driver, as hyper, axum and tonic servers are.
    /// Polled outside any tokio runtime, a stream ends as if the grace were
    /// zero.
    pub fn grace(mut self, grace: Duration) -> Self {
        Arc::make_mut(&mut self.config).grace = grace;
        self
    }

    /// Called once for every stream the drain ends: ended early with its
    /// terminal frame ([`Ending::Early`](crate::Ending::Early)), or cut at
    /// the deadline ([`Ending::Cut`](crate::Ending::Cut)); never for a
    /// stream that ended by itself (a stream whose application sent its
    /// trailers counts as ended by itself, whether or not it was polled to
    /// its end). A stream dropped after the deadline before its end is cut,
    /// whether `DrainLayer` cut it or its client went away. It sees what the
    /// client received (whole events, bytes, the last event ID): the place
    /// to save partial output for a client that resumes with
    /// `Last-Event-ID`.
    ///
    /// It runs where the stream ends: in the body's poll, or in its `Drop`
    /// for a stream dropped cut (a panic there, during another panic, is
    /// caught rather than abort the process).
    pub fn on_stream_end<F>(mut self, hook: F) -> Self
    where
        F: Fn(&StreamEnd<'_>) + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.config).set_on_stream_end(Arc::new(hook));
        self
    }
}

impl SseDrainLayer {
    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }
}

impl<S> Layer<S> for SseDrainLayer {
    type Service = SseDrainService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SseDrainService::new(inner, self.config.clone())
    }
}
