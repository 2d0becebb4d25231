//! End streaming responses cleanly when a [`tower_drain::Drain`] trips.
//!
//! An SSE stream or an LLM token stream can last minutes. When the server
//! drains, the client should get a well-formed last event that says why the
//! stream ends, then a clean end of stream: not a reset, not a hang until the
//! deadline, not half an event. [`SseDrainLayer`] does that for
//! `text/event-stream`, newline-delimited JSON and gRPC server-streaming
//! responses (for gRPC the end is `grpc-status: 14` trailers after the last
//! whole message):
//!
//! - frames pass through untouched (the same `Bytes`, no copy) while a
//!   scanner tracks the event boundaries;
//! - at the trip (or after a grace period) the stream ends at the first
//!   event boundary where the application has nothing ready: everything it
//!   produced arrives whole, then the terminal frame, then the end of the
//!   stream. A stream that ends by itself (a unary gRPC answer, a complete
//!   body) ends as the application ends it;
//! - at the drain deadline a stream in its grace ends the same way; one that
//!   never waits is cut by `DrainLayer` when the unwind is over;
//! - a response whose headers promise something an added frame would break
//!   (`Content-Length`, `Content-Encoding`) is left alone;
//! - a hook sees each stream the drain ended (early, with its terminal
//!   frame, or cut at the deadline): events sent, the last event ID, bytes,
//!   so partial output can be saved for a client that resumes; the drain's
//!   report counts the streams ended early.
//!
//! A WebSocket's terminal frame is a Close frame: the `ws` module (feature
//! `ws` for axum, `tungstenite` for tokio-tungstenite) counts a socket in
//! the drain from its upgrade to the end of its close handshake, and closes
//! it with `1001 Going Away` and the same JSON at the trip.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use axum::response::sse::{Event, Sse};
//! use axum::{routing::get, Router};
//! use futures_util::stream;
//! use tower_drain::Drain;
//! use tower_drain_sse::SseDrainLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let drain = Drain::new();
//! let app = Router::new()
//!     .route("/chat", get(|| async {
//!         // A token every 50 ms, like a model's output.
//!         let tokens = stream::unfold(0, |i| async move {
//!             tokio::time::sleep(Duration::from_millis(50)).await;
//!             Some((Ok::<_, std::convert::Infallible>(Event::default().data(format!("token {i}"))), i + 1))
//!         });
//!         Sse::new(tokens)
//!     }))
//!     // Inside DrainLayer: the request counts until the terminal frame is out.
//!     .layer(SseDrainLayer::new(drain.signal()))
//!     .layer(drain.layer());
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(async move {
//!     axum::serve(listener, app)
//!         .with_graceful_shutdown(async move { let _ = stopped.await; })
//!         .await
//! });
//!
//! // Open chat streams end with `event: end` at once, so this takes no time.
//! let report = drain.shutdown(Duration::from_secs(30)).await;
//! assert!(report.is_clean());
//! let _ = stop.send(()); // the server stops once the drain is over
//! server.await??;
//! # Ok(())
//! # }
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod framing;
pub mod layer;
mod terminal;
#[cfg(any(feature = "ws", feature = "tungstenite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "ws", feature = "tungstenite"))))]
pub mod ws;

pub use self::framing::Framing;
pub use self::layer::{SseBody, SseDrainLayer, SseDrainService};
pub use self::terminal::{Ending, StreamEnd};
