//! The drain controller: trip it, watch it, wait for it.
//!
//! A [`Drain`] is the owner's side: [`trip`](Drain::trip) it to stop
//! admitting, await [`drained`](Drain::drained) for the last admitted request
//! to end, or run the whole sequence with [`shutdown`](Drain::shutdown). A
//! [`DrainSignal`] is the read-only side for handlers and other layers.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower_drain::Drain;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let drain = Drain::new();
//! let signal = drain.signal();
//!
//! // A handler (or another layer) can learn about the trip.
//! let watcher = tokio::spawn(async move {
//!     signal.tripped().await;
//!     "server is shutting down"
//! });
//!
//! // Nothing in flight: the drain finishes at once, well before the deadline.
//! let report = drain.shutdown(Duration::from_secs(30)).await;
//! assert!(report.is_clean());
//! assert_eq!(watcher.await.unwrap(), "server is shutting down");
//! # }
//! ```

mod controller;
mod future;
mod report;
mod signal;

pub use self::controller::Drain;
pub use self::future::{Drained, NotReady, Tripped};
pub(crate) use self::report::{exit_code, End, Took};
pub use self::report::{ConnectionReport, DrainReport};
pub use self::signal::DrainSignal;
