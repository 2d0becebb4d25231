//! A readiness endpoint that fails from the start of the shutdown.
//!
//! Load balancers and Kubernetes stop routing to an instance whose readiness
//! fails. [`Readiness`] answers `200 OK` while the drain serves and
//! `503 Service Unavailable` once it is [lame-duck](crate::Drain::lame_duck)
//! or tripped, so that an instance leaves the rotation *before* it starts
//! refusing requests. Mount it where your probe looks, and exempt that route
//! from the [`DrainLayer`](crate::DrainLayer) so that the probe gets this
//! answer instead of the layer's.
//!
//! # Example
//!
//! ```
//! use axum::{routing::{get, get_service}, Router};
//! use tower_drain::Drain;
//!
//! let drain = Drain::new();
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .route("/readyz", get_service(drain.readiness()))
//!     .layer(drain.layer().exempt(|req| req.uri().path() == "/readyz"));
//! ```

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use tower_service::Service;

use crate::DrainSignal;

/// A service that answers `200 ready` while the drain serves, and
/// `503 not ready` from lame-duck on. Made by
/// [`Drain::readiness`](crate::Drain::readiness).
///
/// It ignores the request (any method, any path) and never fails.
#[derive(Clone, Debug)]
pub struct Readiness {
    signal: DrainSignal,
}

impl Readiness {
    /// Readiness of the drain behind `signal`.
    pub fn new(signal: DrainSignal) -> Self {
        Self { signal }
    }
}

impl<B> Service<Request<B>> for Readiness {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        let (status, body) = if self.signal.is_ready() {
            (StatusCode::OK, "ready\n")
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: shutting down\n",
            )
        };
        let mut res = Response::new(body.to_owned());
        *res.status_mut() = status;
        let headers = res.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        ready(Ok(res))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use crate::Drain;

    async fn probe(drain: &Drain) -> (StatusCode, String) {
        let res = drain.readiness().oneshot(Request::new(())).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readiness_fails_from_the_lame_duck_on() {
        let drain = Drain::new();
        assert_eq!(probe(&drain).await, (StatusCode::OK, "ready\n".into()));
        assert!(drain.signal().is_ready());

        drain.lame_duck();
        assert!(!drain.is_tripped(), "lame-duck still serves");
        assert_eq!(probe(&drain).await.0, StatusCode::SERVICE_UNAVAILABLE);

        drain.trip();
        assert_eq!(probe(&drain).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn not_ready_resolves_at_the_lame_duck_and_at_a_bare_trip() {
        let drain = Drain::new();
        let waiter = tokio::spawn(drain.signal().not_ready());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drain.lame_duck();
        waiter.await.unwrap();
        assert!(!drain.is_tripped());

        let drain = Drain::new();
        let waiter = tokio::spawn(drain.signal().not_ready());
        tokio::task::yield_now().await;
        drain.trip();
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn readiness_fails_at_a_trip_without_a_lame_duck() {
        let drain = Drain::new();
        drain.trip();
        assert!(!drain.signal().is_ready());
        assert_eq!(probe(&drain).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
