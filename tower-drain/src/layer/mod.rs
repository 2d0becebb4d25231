//! The middleware: admit, count until the body ends, refuse once tripped.
//!
//! [`DrainLayer`] wraps a service in [`DrainService`]. While the drain serves,
//! each request is admitted and counted until its response body has ended (a
//! streaming response keeps the drain open). Once it has tripped, requests are
//! answered with the [rejection](Reject) and never reach the inner service,
//! which they do not wait for either:
//!
//! - HTTP: `503 Service Unavailable` with `Retry-After`, plus
//!   `Connection: close` on HTTP/1.x (never a connection header on HTTP/2);
//! - gRPC ([`grpc::is_grpc`](crate::grpc::is_grpc), over HTTP/2): a
//!   trailers-only response, HTTP 200 with `grpc-status: 14` (`UNAVAILABLE`)
//!   and a `grpc-message`;
//! - a browser's `EventSource` (`GET`, `Accept: text/event-stream`): a `200`
//!   event stream with one `end` event and a `retry:`, since it would give up
//!   for good on a `503`.
//!
//! Responses to requests admitted before the trip but answered after it carry
//! `Connection: close` on HTTP/1.x too, except a `101 Switching Protocols`
//! or a successful `CONNECT`, whose headers are a handshake. At the drain
//! deadline a pending response is answered with `500` (gRPC `ABORTED`),
//! which unlike the refusal does not invite a retry, and a body is cut (see
//! [`DefaultReject`] and [`ResponseBody`]).
//!
//! An upgraded connection (a WebSocket) is counted until the `101` and its
//! body are out, not for the life of the connection: the drain neither
//! waits for it nor closes it.
//!
//! Requests matching [`DrainLayer::exempt`] (health probes, admin routes)
//! pass through untouched: never counted, refused or cut.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{header, Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_drain::Drain;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let drain = Drain::new();
//! let svc = ServiceBuilder::new()
//!     .layer(drain.layer())
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//!     }));
//!
//! drain.trip();
//!
//! let grpc = Request::builder()
//!     .version(http::Version::HTTP_2)
//!     .header(header::CONTENT_TYPE, "application/grpc")
//!     .body(())
//!     .unwrap();
//! let res = svc.oneshot(grpc).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.headers()["grpc-status"], "14");
//! # }
//! ```

mod body;
mod early;
mod exempt;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod reject;
mod service;

pub use self::body::ResponseBody;
pub use self::early::EarlyEnd;
pub use self::exempt::{Exempt, NoExempt, RequestHead};
pub use self::future::ResponseFuture;
pub use self::layer::DrainLayer;
pub use self::reject::{Cause, DefaultReject, Reject, Rejection};
pub use self::service::DrainService;
