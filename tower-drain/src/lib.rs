//! Graceful shutdown for [tower] services: stop admitting per request, refuse
//! cleanly, and wait for what was admitted (response bodies included).
//!
//! hyper, axum and tonic drain per *connection*: they stop accepting and wait
//! for connections to close. They cannot refuse a single request with a clean
//! answer, and one open streaming response keeps their shutdown waiting
//! forever. A [`Drain`] works per *request*:
//!
//! - [`DrainLayer`] counts each admitted request until its response **body**
//!   has ended, not merely until the response future resolves;
//! - once [tripped](Drain::trip), new requests are refused with
//!   `503 Service Unavailable` + `Retry-After` (+ `Connection: close` on
//!   HTTP/1.x), or a gRPC `UNAVAILABLE`, and never reach the service;
//! - [`Drain::drained`] resolves when the last admitted body ends, and
//!   [`Drain::shutdown`] puts it together: trip, wait up to a deadline, cut
//!   what is left, and [report](DrainReport);
//! - [`Shutdown`](shutdown::Shutdown) runs the whole sequence from SIGTERM to
//!   exit around it: lame-duck [readiness], the drain, the cut, the
//!   connections closed, cleanup hooks, and a report that maps to an exit
//!   code;
//! - with the `serve` feature, `tower_drain::serve` is a server that follows
//!   the drain: `GOAWAY` and `Connection: close` at the trip, closes without
//!   resets, drops what is left when the drain is over;
//! - [`DrainSignal::spawn`] counts work a handler starts (see [`work`]).
//!
//! The layer does two atomic operations per request, on a cache line only the
//! current core writes: no allocation, no lock, no shared counter, so its
//! cost does not grow with the number of cores.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use tower_drain::Drain;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let drain = Drain::new();
//! let app = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(drain.layer());
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! // The server stops once the drain is over, so that late requests get a
//! // clean 503 until then rather than a refused connection.
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(async move {
//!     axum::serve(listener, app)
//!         .with_graceful_shutdown(async move { let _ = stopped.await; })
//!         .await
//! });
//!
//! // On SIGTERM, say (here: at once):
//! let report = drain.shutdown(Duration::from_secs(30)).await;
//! println!("{report}");
//! let _ = stop.send(());
//! server.await??;
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `tracing` (default): `tracing` events at each phase of a drain and a
//!   shutdown.
//! - `signal` (default): [`Shutdown::on_signals`](shutdown::Shutdown::on_signals),
//!   through tokio's signal support.
//! - `serve`: `serve()`, a server (hyper-util, HTTP/1.1 and h2c) that
//!   follows the drain: `GOAWAY` and `Connection: close` at the trip, closes
//!   without resets, drops what is left at the deadline, and counts the
//!   connections in the report.
//! - `metrics`: an in-flight gauge, refused and cut counters and a drain
//!   duration histogram, through the `metrics` facade; see [`metrics`].
//!
//! [tower]: https://docs.rs/tower

#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

macro_rules! event {
    ($level:ident, $($arg:tt)+) => {
        #[cfg(feature = "tracing")]
        tracing::$level!($($arg)+);
    };
}
pub(crate) use event;

pub mod drain;
pub mod error;
pub mod grpc;
pub mod layer;
pub mod metrics;
pub mod readiness;
#[cfg(all(feature = "serve", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub mod serve;
pub mod shutdown;
mod state;
mod sync;
#[cfg(all(test, not(loom)))]
mod test_support;
pub mod work;

pub use self::drain::{ConnectionReport, Drain, DrainReport, DrainSignal};
pub use self::error::Cut;
pub use self::layer::{DrainLayer, DrainService, Rejection};
#[cfg(all(feature = "serve", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub use self::serve::serve;

/// The error type of [`ResponseBody`](layer::ResponseBody): the inner body's
/// error, or [`Cut`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
