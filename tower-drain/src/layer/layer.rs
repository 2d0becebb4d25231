use std::time::Duration;

use tower_layer::Layer;

use std::fmt;

use super::{DefaultReject, DrainService, Exempt, NoExempt, Reject, RequestHead};
use crate::state::Handle;

/// Admits requests into a [`Drain`](crate::Drain) and refuses them once it
/// has tripped. Made by [`Drain::layer`](crate::Drain::layer).
///
/// Its service keeps `Error = S::Error`: a refusal is a response, so axum needs
/// no `HandleErrorLayer`. Put it outermost, so it counts everything below it.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use tower_drain::Drain;
///
/// let drain = Drain::new();
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(drain.layer().retry_after(Duration::from_secs(2)));
/// ```
#[derive(Clone)]
pub struct DrainLayer<R = DefaultReject, E = NoExempt> {
    handle: Handle,
    reject: R,
    exempt: E,
}

impl DrainLayer {
    pub(crate) fn new(handle: Handle) -> Self {
        Self {
            handle,
            reject: DefaultReject::default(),
            exempt: NoExempt,
        }
    }
}

impl<E> DrainLayer<DefaultReject, E> {
    /// The `Retry-After` the default rejection sends (default 5 s, sent in
    /// whole seconds, rounded up, at least 1; an `EventSource` gets it as
    /// its `retry:` in milliseconds).
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.reject = self.reject.retry_after(retry_after);
        self
    }

    /// The message of the default rejection: the `grpc-message` for gRPC (a
    /// client sees it in its `Status`), the body text otherwise. Default:
    /// `"server is shutting down"`.
    pub fn grpc_message(mut self, message: &'static str) -> Self {
        self.reject = self.reject.message(message);
        self
    }
}

impl<R, E> DrainLayer<R, E> {
    /// Replaces the rejection response: a closure
    /// `Fn(&Rejection) -> http::Response<Bytes>` or any [`Reject`].
    ///
    /// The layer still adds `Connection: close` on HTTP/1.x.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Response, StatusCode};
    /// use tower_drain::{Drain, Rejection};
    ///
    /// let drain = Drain::new();
    /// let layer = drain.layer().reject_with(|_: &Rejection| {
    ///     let mut res = Response::new(Bytes::from_static(b"{\"error\":\"draining\"}"));
    ///     *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    ///     res
    /// });
    /// ```
    pub fn reject_with<R2: Reject>(self, reject: R2) -> DrainLayer<R2, E> {
        DrainLayer {
            handle: self.handle,
            reject,
            exempt: self.exempt,
        }
    }

    /// Passes the requests for which `predicate` returns `true` straight to
    /// the inner service: they are never counted, never refused and never
    /// cut by this layer (a `tower-drain-sse` layer inside still ends their
    /// streams at the trip; the report does not count them). Use it for readiness and liveness probes and admin routes, which
    /// must keep answering while the drain runs; keep such requests short,
    /// since the drain does not wait for them.
    ///
    /// The predicate runs once per request, before admission; without one,
    /// nothing is checked. After the trip, an exempt request still needs the
    /// inner service: if that is not ready (a concurrency limit is full), the
    /// request is refused rather than kept waiting.
    ///
    /// ```
    /// use axum::{routing::{get, get_service}, Router};
    /// use tower_drain::Drain;
    ///
    /// let drain = Drain::new();
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "hello" }))
    ///     .route("/readyz", get_service(drain.readiness()))
    ///     .layer(drain.layer().exempt(|req| req.uri().path() == "/readyz"));
    /// ```
    ///
    /// The predicate is part of the layer's type (see [`Exempt`]): services
    /// copy it, so it should be cheap to clone, like a closure that captures
    /// nothing or a few `&'static str`s.
    pub fn exempt<F>(self, predicate: F) -> DrainLayer<R, F>
    where
        F: Fn(&RequestHead<'_>) -> bool + Clone,
    {
        DrainLayer {
            handle: self.handle,
            reject: self.reject,
            exempt: predicate,
        }
    }
}

impl<R: fmt::Debug, E> fmt::Debug for DrainLayer<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainLayer")
            .field("drain", &self.handle)
            .field("reject", &self.reject)
            .finish_non_exhaustive()
    }
}

impl<S, R: Clone, E: Exempt> Layer<S> for DrainLayer<R, E> {
    type Service = DrainService<S, R, E>;

    fn layer(&self, inner: S) -> Self::Service {
        DrainService::new(
            inner,
            self.handle.service(),
            self.reject.clone(),
            self.exempt.clone(),
        )
    }
}
