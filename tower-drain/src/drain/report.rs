use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

/// What a [`Drain::shutdown`](crate::Drain::shutdown) did.
///
/// `Display` gives a one-line summary for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainReport {
    pub(crate) elapsed: Duration,
    pub(crate) in_flight_at_trip: usize,
    pub(crate) completed: usize,
    pub(crate) rejected: usize,
    pub(crate) cut: usize,
    pub(crate) unfinished: usize,
    pub(crate) end: End,
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

    /// Requests refused because the drain had tripped.
    pub fn rejected(&self) -> usize {
        self.rejected
    }

    /// Requests cut at the deadline: a pending response answered with the
    /// deadline's rejection, or a body ended with an error.
    pub fn cut(&self) -> usize {
        self.cut
    }

    /// Requests still in flight when the report was made: cut, but not yet
    /// unwound (their connection task never polled them again).
    pub fn unfinished(&self) -> usize {
        self.unfinished
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

    /// Nothing was cut and nothing is left: everything admitted finished.
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
        if self.is_clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
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
            "drained in {}: {} in flight at trip, {} completed, {} cut, {} rejected",
            Took(self.elapsed),
            self.in_flight_at_trip,
            self.completed,
            self.cut,
            self.rejected
        )?;
        if self.unfinished > 0 {
            write!(f, ", {} unfinished", self.unfinished)?;
        }
        match self.end {
            End::Drained => {}
            End::Deadline => f.write_str(" (deadline reached)")?,
            End::Forced => f.write_str(" (cut early: told to stop at once)")?,
        }
        Ok(())
    }
}
