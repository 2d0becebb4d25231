use std::time::Duration;

use tower_layer::Layer;

use super::exempt::Exempt;
use super::{DefaultReject, DrainService, Reject, RequestHead};
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
#[derive(Clone, Debug)]
pub struct DrainLayer<R = DefaultReject> {
    handle: Handle,
    reject: R,
    exempt: Exempt,
}

impl DrainLayer {
    pub(crate) fn new(handle: Handle) -> Self {
        Self {
            handle,
            reject: DefaultReject::default(),
            exempt: Exempt::default(),
        }
    }

    /// The `Retry-After` the default rejection sends (default 5 s, sent in
    /// whole seconds, rounded up).
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

impl<R> DrainLayer<R> {
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
    pub fn reject_with<R2: Reject>(self, reject: R2) -> DrainLayer<R2> {
        DrainLayer {
            handle: self.handle,
            reject,
            exempt: self.exempt,
        }
    }

    /// Passes the requests for which `predicate` returns `true` straight to
    /// the inner service: they are never counted, never refused and never
    /// cut. Use it for readiness and liveness probes and admin routes, which
    /// must keep answering while the drain runs; keep such requests short,
    /// since the drain does not wait for them.
    ///
    /// The predicate runs once per request, before admission; without one,
    /// nothing is checked.
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
    pub fn exempt<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static,
    {
        self.exempt = Exempt::new(predicate);
        self
    }
}

impl<S, R: Clone> Layer<S> for DrainLayer<R> {
    type Service = DrainService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        DrainService::new(
            inner,
            self.handle.service(),
            self.reject.clone(),
            self.exempt.clone(),
        )
    }
}
