//! The connections of the servers that serve a drain (`tower_drain::serve`),
//! counted in the drain's block so that its report can say what became of
//! them. Nothing here is on a request's path: each count moves once per
//! connection, under a lock of the drain's own, so that the trip's snapshot
//! and each close agree on which side of the trip the close fell.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Connection counts of one drain, across every server serving it.
#[derive(Debug)]
pub(crate) struct Connections {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Servers running on this drain: the shutdown sequence waits for them.
    servers: usize,
    /// The longest any of them may take to close once the drain is over.
    close_bound: Duration,
    /// Connections open now.
    open: usize,
    /// Whether the trip's snapshot has been taken.
    tripped: bool,
    /// Connections open when the drain tripped.
    at_trip: usize,
    /// Connections that ended without being dropped, from the trip on.
    closed: usize,
    /// Connections the server dropped, from the trip on.
    dropped: usize,
}

impl Connections {
    pub(super) fn new() -> Self {
        Self {
            counts: Mutex::new(Counts::default()),
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Nothing panics while it is held; a poisoned lock still counts.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(feature = "serve")]
    pub(crate) fn server_started(&self) {
        self.counts().servers += 1;
    }

    /// One server less; `true` for the last.
    #[cfg(feature = "serve")]
    pub(super) fn server_ended(&self) -> bool {
        let mut counts = self.counts();
        counts.servers -= 1;
        counts.servers == 0
    }

    pub(crate) fn servers(&self) -> usize {
        self.counts().servers
    }

    /// A server may take up to `bound` to close once the drain is over.
    #[cfg(feature = "serve")]
    pub(crate) fn may_take(&self, bound: Duration) {
        let mut counts = self.counts();
        counts.close_bound = counts.close_bound.max(bound);
    }

    /// The longest any server may take to close once the drain is over.
    pub(crate) fn close_bound(&self) -> Duration {
        self.counts().close_bound
    }

    #[cfg(feature = "serve")]
    pub(crate) fn opened(&self) {
        self.counts().open += 1;
    }

    /// A connection has ended: `gracefully`, or dropped by the server.
    /// Before the trip neither counts.
    #[cfg(feature = "serve")]
    pub(crate) fn closed(&self, gracefully: bool) {
        let mut counts = self.counts();
        counts.open -= 1;
        match (counts.tripped, gracefully) {
            (false, _) => {}
            (true, true) => counts.closed += 1,
            (true, false) => counts.dropped += 1,
        }
    }

    /// Notes how many are open as the drain trips.
    pub(super) fn trip(&self) {
        let mut counts = self.counts();
        counts.tripped = true;
        counts.at_trip = counts.open;
    }

    /// (open at the trip, closed gracefully since, dropped, open now)
    pub(crate) fn report(&self) -> [usize; 4] {
        let counts = self.counts();
        [counts.at_trip, counts.closed, counts.dropped, counts.open]
    }

    /// Back to zero for the next drain of the block (no server holds it).
    pub(super) fn reset(&self) {
        *self.counts() = Counts::default();
    }
}
