//! The middleware: watch streaming responses and end them cleanly at a trip.
//!
//! [`SseDrainLayer`] wraps the body of every streaming response: one whose
//! `content-type` is `text/event-stream`, `application/x-ndjson`,
//! `application/jsonl` or gRPC ([`Framing::of`](crate::Framing::of)),
//! answered with a `2xx` that has a body. Other responses pass through
//! untouched. When the drain trips, a wrapped body delivers what the
//! application has ready, lets the event in progress finish, and where the
//! application would next wait at an event boundary it appends the terminal
//! frame, drops the application's stream and ends.
//!
//! The layer never contradicts what a response's headers promise. A stream
//! that declares its length (`Content-Length`, or a body of known size) is
//! complete, and one with a `Content-Encoding` would be given plaintext:
//! both are left alone, to end on their own or be cut at the deadline.
//!
//! Put it *inside* `DrainLayer`, so that the request counts until the terminal
//! frame has gone out, and so that at the drain deadline a stream that is
//! between events still ends with its terminal frame. Put compression
//! (tower-http's `CompressionLayer`) *outside* it, so that it sees the
//! stream before encoding, and its terminal frame is compressed with the
//! rest:
//!
//! ```
//! # use axum::{routing::get, Router};
//! # use tower_drain::Drain;
//! # use tower_drain_sse::SseDrainLayer;
//! # let drain = Drain::new();
//! # let compression = tower::layer::util::Identity::new();
//! let app: Router = Router::new()
//!     .route("/tokens", get(|| async { "..." }))
//!     .layer(SseDrainLayer::new(drain.signal())) // innermost: sees plaintext
//!     .layer(compression)                        // CompressionLayer::new()
//!     .layer(drain.layer());                     // outermost: counts and refuses
//! ```
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{header, Request, Response};
//! use http_body_util::{BodyExt, StreamBody};
//! use http_body::Frame;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_drain::Drain;
//! use tower_drain_sse::SseDrainLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let drain = Drain::new();
//! let svc = ServiceBuilder::new()
//!     .layer(drain.layer())
//!     .layer(SseDrainLayer::new(drain.signal()))
//!     .service(service_fn(|_req: Request<()>| async {
//!         // One whole event, then a stream that never ends on its own.
//!         let first = futures_util::stream::iter([Ok::<_, Infallible>(Frame::data(
//!             Bytes::from_static(b"data: token-0\n\n"),
//!         ))]);
//!         let body = StreamBody::new(futures_util::StreamExt::chain(first, futures_util::stream::pending()));
//!         let mut res = Response::new(body);
//!         res.headers_mut().insert(header::CONTENT_TYPE, "text/event-stream".parse().unwrap());
//!         Ok::<_, Infallible>(res)
//!     }));
//!
//! let res = svc.oneshot(Request::new(())).await.unwrap();
//! let mut body = std::pin::pin!(res.into_body());
//! let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
//! assert_eq!(first, "data: token-0\n\n");
//!
//! drain.trip();
//! let last = body.frame().await.unwrap().unwrap().into_data().unwrap();
//! assert!(last.starts_with(b"event: end\ndata: {\"type\":\"end\""));
//! assert!(body.frame().await.is_none(), "then the stream ends");
//! drain.drained().await;
//! # }
//! ```

mod body;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod service;

pub use self::body::SseBody;
pub use self::future::ResponseFuture;
pub use self::layer::SseDrainLayer;
pub use self::service::SseDrainService;
