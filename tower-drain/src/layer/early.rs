use std::cell::Cell;
use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::state::{Guard, Slot};

/// How a body wrapper inside [`DrainLayer`](super::DrainLayer) tells it that
/// it ended its stream early, cleanly, with a terminal frame, so that the
/// [report](crate::DrainReport::ended_early) counts the request as ended
/// early rather than completed.
///
/// The wrapper's layer puts one in the response's extensions and keeps a
/// clone in the body, which [records](Self::record) the early end as it
/// hands on its terminal frame. `DrainLayer` ties it to the request if it
/// admitted it (an exempt one is not counted), and the request counts as
/// ended early when the body's copy is dropped with the body, unless the
/// deadline cut it after all. `tower-drain-sse` does this for every stream
/// it watches.
///
/// # Example
///
/// ```
/// use http::Response;
/// use tower_drain::layer::EarlyEnd;
///
/// let mut early = EarlyEnd::new();
/// let mut res = Response::new(());
/// res.extensions_mut().insert(early.clone());
/// // ... the body keeps `early`, and as it hands on its terminal frame:
/// early.record();
/// ```
pub struct EarlyEnd {
    /// Where the request is counted, once `DrainLayer` admitted it; shared
    /// by the response's copy and the body's.
    slot: Arc<OnceLock<&'static Slot>>,
    /// This copy recorded the early end (the body's, as it ends early).
    recorded: bool,
}

impl EarlyEnd {
    /// A stream that has not ended early (yet).
    pub fn new() -> Self {
        Self {
            slot: Arc::default(),
            recorded: false,
        }
    }

    /// Records that the stream ends early: call it on the body's copy as
    /// the terminal frame is handed on. The request is counted when that
    /// copy is dropped (with the body), unless the deadline cut it after
    /// all.
    pub fn record(&mut self) {
        self.recorded = true;
    }

    /// Ties this stream to an admitted request's count: it is counted on
    /// the guard's slot, whose block cannot move on while the guard (held
    /// by the body around the wrapper's) lives.
    pub(crate) fn arm(&self, guard: &Guard) {
        let _ = self.slot.set(guard.slot());
    }
}

impl Default for EarlyEnd {
    fn default() -> Self {
        Self::new()
    }
}

/// A copy that has not recorded anything, tied to the same request.
impl Clone for EarlyEnd {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
            recorded: false,
        }
    }
}

impl Drop for EarlyEnd {
    fn drop(&mut self) {
        if self.recorded && !CUTTING.with(Cell::get) {
            if let Some(slot) = self.slot.get() {
                slot.count_ended_early();
            }
        }
    }
}

impl fmt::Debug for EarlyEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EarlyEnd")
            .field("armed", &self.slot.get().is_some())
            .field("recorded", &self.recorded)
            .finish()
    }
}

std::thread_local! {
    /// Set while a body cut at the deadline is dropped: a stream that had
    /// sent its terminal frame, cut after all, counts as cut only.
    static CUTTING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `drop`, which drops a body the deadline cut.
pub(crate) fn cutting(drop: impl FnOnce()) {
    CUTTING.with(|cutting| cutting.set(true));
    drop();
    CUTTING.with(|cutting| cutting.set(false));
}
