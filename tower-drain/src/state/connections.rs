//! The connections of the servers that serve a drain (`tower_drain::serve`),
//! counted in the drain's block so that its report can say what became of
//! them. Nothing here is on a request's path: each count moves once per
//! connection.

use crate::sync::{AtomicUsize, Ordering};

/// Connection counts of one drain, across every server serving it.
#[derive(Debug)]
pub(crate) struct Connections {
    /// Servers running on this drain: the shutdown sequence waits for them.
    servers: AtomicUsize,
    /// Connections open now.
    open: AtomicUsize,
    /// Connections open when the drain tripped.
    at_trip: AtomicUsize,
    /// Connections that ended without being dropped, from the trip on.
    closed: AtomicUsize,
    /// Connections the server dropped because the drain was over and they
    /// had not closed: at the deadline, or when the close timeout ran out.
    dropped: AtomicUsize,
}

/// How a connection ended.
#[cfg(feature = "serve")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closed {
    /// On its own or by the server's graceful close, before the trip.
    BeforeTrip,
    /// On its own or by the server's graceful close, from the trip on.
    Gracefully,
    /// Dropped by the server, ready or not.
    Hard,
}

impl Connections {
    pub(super) fn new() -> Self {
        Self {
            servers: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            at_trip: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }

    #[cfg(feature = "serve")]
    pub(crate) fn server_started(&self) {
        self.servers.fetch_add(1, Ordering::AcqRel);
    }

    /// One server less; `true` for the last.
    #[cfg(feature = "serve")]
    pub(super) fn server_ended(&self) -> bool {
        self.servers.fetch_sub(1, Ordering::AcqRel) == 1
    }

    pub(crate) fn servers(&self) -> usize {
        self.servers.load(Ordering::Acquire)
    }

    #[cfg(feature = "serve")]
    pub(crate) fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(feature = "serve")]
    pub(crate) fn closed(&self, how: Closed) {
        match how {
            Closed::BeforeTrip => {}
            Closed::Gracefully => {
                self.closed.fetch_add(1, Ordering::Relaxed);
            }
            Closed::Hard => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Notes how many are open as the drain trips.
    pub(super) fn trip(&self) {
        self.at_trip
            .store(self.open.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// (open at the trip, closed gracefully since, dropped, open now)
    pub(crate) fn counts(&self) -> [usize; 4] {
        [
            self.at_trip.load(Ordering::Relaxed),
            self.closed.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.open.load(Ordering::Relaxed),
        ]
    }

    /// Back to zero for the next drain of the block (no server holds it).
    pub(super) fn reset(&self) {
        for count in [
            &self.servers,
            &self.open,
            &self.at_trip,
            &self.closed,
            &self.dropped,
        ] {
            count.store(0, Ordering::Relaxed);
        }
    }
}
