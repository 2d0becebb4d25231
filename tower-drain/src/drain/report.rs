use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use crate::state::Block;

/// What a [`Drain::shutdown`](crate::Drain::shutdown) did, in the words of
/// the README's glossary: of the requests in flight at the trip, how many
/// completed, ended early, were cut or are unfinished; and how many were
/// refused.
///
/// `Display` gives a one-line summary for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainReport {
    elapsed: Duration,
    in_flight_at_trip: usize,
    completed: usize,
    ended_early: usize,
    refused: usize,
    cut: usize,
    unfinished: usize,
    cut_work: Vec<String>,
    connections: ConnectionReport,
    end: End,
}

/// What became of the connections of the servers serving a drain through
/// `tower_drain::serve` (feature `serve`; all zero without one): how many
/// were open at the trip, and how many closed gracefully or were dropped
/// from then on. Connections opened after the trip (to be refused) are
/// among the closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionReport {
    open_at_trip: usize,
    closed_gracefully: usize,
    closed_hard: usize,
    open: usize,
}

impl ConnectionReport {
    /// Connections open when the drain tripped.
    pub fn open_at_trip(&self) -> usize {
        self.open_at_trip
    }

    /// Connections that ended from the trip on without being dropped: closed
    /// after their last response (HTTP/1), after `GOAWAY` and their last
    /// stream (HTTP/2), or by the client.
    pub fn closed_gracefully(&self) -> usize {
        self.closed_gracefully
    }

    /// Connections the server dropped because they were still open when the
    /// drain was over: cut at the deadline, or not closed within the
    /// server's close timeout after the drain.
    pub fn closed_hard(&self) -> usize {
        self.closed_hard
    }

    /// Connections still open when the report was made.
    pub fn open(&self) -> usize {
        self.open
    }

    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for ConnectionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} open at trip, {} closed gracefully, {} closed hard",
            self.open_at_trip, self.closed_gracefully, self.closed_hard
        )?;
        if self.open > 0 {
            write!(f, ", {} still open", self.open)?;
        }
        Ok(())
    }
}

/// How the wait of a drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Everything admitted ended by itself.
    Drained,
    /// The deadline passed; what was left was cut.
    Deadline,
    /// Told to stop at once (a second signal); what was left was cut.
    Forced,
}

impl DrainReport {
    /// The report of the drain behind `block`, as it stands now.
    pub(crate) fn of(block: &Block, elapsed: Duration, end: End) -> Self {
        let unfinished = block.in_flight();
        let cut = block.cut();
        let ended_early = block.ended_early();
        let in_flight_at_trip = block.in_flight_at_trip();
        let [open_at_trip, closed_gracefully, closed_hard, open] = block.connections().report();
        Self {
            elapsed,
            in_flight_at_trip,
            completed: in_flight_at_trip.saturating_sub(ended_early + cut + unfinished),
            ended_early,
            refused: block.refused(),
            cut,
            unfinished,
            cut_work: block.cut_work(),
            connections: ConnectionReport {
                open_at_trip,
                closed_gracefully,
                closed_hard,
                open,
            },
            end,
        }
    }

    /// The same drain's report, counted again now (its duration and its end
    /// unchanged): once its servers have closed, what they refused and
    /// closed since is in it.
    pub(crate) fn recount(&self, block: &Block) -> Self {
        Self::of(block, self.elapsed, self.end)
    }

    /// How long the drain took, from the trip until it returned.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Requests that were in flight when the drain tripped.
    pub fn in_flight_at_trip(&self) -> usize {
        self.in_flight_at_trip
    }

    /// Requests in flight at the trip that finished on their own during the
    /// drain, response body included.
    pub fn completed(&self) -> usize {
        self.completed
    }

    /// Streams in flight at the trip that the drain ended early, cleanly,
    /// with a terminal frame the client understands (counted by
    /// `tower-drain-sse`): the client has every whole event it was sent,
    /// and is told to reconnect.
    pub fn ended_early(&self) -> usize {
        self.ended_early
    }

    /// Requests refused because the drain had tripped: answered with the
    /// rejection, never passed to the service.
    pub fn refused(&self) -> usize {
        self.refused
    }

    /// Requests cut at the deadline without a clean end: a pending response
    /// answered with the deadline's rejection, or a body ended with an error.
    pub fn cut(&self) -> usize {
        self.cut
    }

    /// The names of the counted [work](crate::work) spawned with
    /// [`spawn_named`](crate::DrainSignal::spawn_named) that the deadline
    /// aborted (each also counted in [`cut`](Self::cut)).
    pub fn cut_work(&self) -> &[String] {
        &self.cut_work
    }

    /// Requests still in flight when the report was made: cut, but not yet
    /// unwound (their connection task never polled them again).
    pub fn unfinished(&self) -> usize {
        self.unfinished
    }

    /// What became of the connections of the servers serving the drain
    /// through `tower_drain::serve` (feature `serve`). In
    /// [`Drain::shutdown`]'s report, taken as the drain phase ends, the
    /// servers are just starting to
    /// close; [`Shutdown`](crate::shutdown::Shutdown) waits for them, and
    /// its report counts every connection (and every refusal) up to the
    /// last close.
    ///
    /// [`Drain::shutdown`]: crate::Drain::shutdown
    pub fn connections(&self) -> &ConnectionReport {
        &self.connections
    }

    /// Whether the deadline passed before the last request ended.
    pub fn deadline_reached(&self) -> bool {
        self.end == End::Deadline
    }

    /// Whether what was in flight was cut before the deadline, because the
    /// [`Shutdown`](crate::shutdown::Shutdown) was told to stop at once (a
    /// second signal).
    pub fn forced_early(&self) -> bool {
        self.end == End::Forced
    }

    /// Nothing was cut and nothing is left: everything admitted finished,
    /// on its own or ended early with a terminal frame.
    pub fn is_clean(&self) -> bool {
        self.cut == 0 && self.unfinished == 0
    }

    /// The process exit code for this drain: success when it was
    /// [clean](Self::is_clean), failure otherwise.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use tower_drain::Drain;
    /// # #[tokio::main]
    /// # async fn main() -> std::process::ExitCode {
    /// # let drain = Drain::new();
    /// drain.shutdown(Duration::from_secs(30)).await.exit_code()
    /// # }
    /// ```
    pub fn exit_code(&self) -> ExitCode {
        exit_code(self.is_clean())
    }
}

/// Success for a clean shutdown, failure otherwise: the one mapping both
/// reports use.
pub(crate) fn exit_code(clean: bool) -> ExitCode {
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A duration for the reports' one-line summaries: one decimal in the
/// largest fitting unit (`4.4s`, `95.0µs`), and `0s` for nothing at all.
pub(crate) struct Took(pub(crate) Duration);

impl fmt::Display for Took {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            f.write_str("0s")
        } else {
            write!(f, "{:.1?}", self.0)
        }
    }
}

impl fmt::Display for DrainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "drained in {}: {} in flight at trip, {} completed, {} ended early, {} cut, {} refused",
            Took(self.elapsed),
            self.in_flight_at_trip,
            self.completed,
            self.ended_early,
            self.cut,
            self.refused
        )?;
        if self.unfinished > 0 {
            write!(f, ", {} unfinished", self.unfinished)?;
        }
        if !self.cut_work.is_empty() {
            write!(f, " (work cut: {})", self.cut_work.join(", "))?;
        }
        if !self.connections.is_empty() {
            write!(f, "; connections: {}", self.connections)?;
        }
        match self.end {
            End::Drained => {}
            End::Deadline => f.write_str(" (deadline reached)")?,
            End::Forced => f.write_str(" (cut early: told to stop at once)")?,
        }
        Ok(())
    }
}
