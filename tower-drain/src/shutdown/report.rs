use std::fmt;
use std::process::{ExitCode, Termination};
use std::time::Duration;

use super::HookReport;
use crate::drain::Took;
use crate::DrainReport;

/// What a [`Shutdown`](super::Shutdown) did, phase by phase.
///
/// `Display` gives one line for the log. [`exit_code`](Self::exit_code) (or
/// returning it from `main`: it implements [`Termination`]) turns it into
/// the process's exit status.
#[derive(Clone, Debug)]
pub struct ShutdownReport {
    pub(super) elapsed: Duration,
    pub(super) lame_duck: Duration,
    pub(super) drain: DrainReport,
    pub(super) cleanup: Duration,
    pub(super) hooks: Vec<HookReport>,
}

impl ShutdownReport {
    /// From the trigger to the end of the cleanup.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// How long the lame-duck phase lasted (readiness failing, still serving).
    pub fn lame_duck(&self) -> Duration {
        self.lame_duck
    }

    /// The drain phase: how long it took, and what finished, was refused or
    /// was cut.
    pub fn drain(&self) -> &DrainReport {
        &self.drain
    }

    /// How long the cleanup hooks took, together.
    pub fn cleanup(&self) -> Duration {
        self.cleanup
    }

    /// Each cleanup hook, in the order they ran.
    pub fn hooks(&self) -> &[HookReport] {
        &self.hooks
    }

    /// Everything admitted finished, and every hook finished without error.
    pub fn is_clean(&self) -> bool {
        self.drain.is_clean() && self.hooks.iter().all(HookReport::is_finished)
    }

    /// `0` when the shutdown was [clean](Self::is_clean), `1` when something
    /// was cut or a hook failed, timed out or was skipped.
    pub fn exit_code(&self) -> ExitCode {
        crate::drain::exit_code(self.is_clean())
    }
}

impl Termination for ShutdownReport {
    fn report(self) -> ExitCode {
        self.exit_code()
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shut down in {} (lame duck {}, drain {}, cleanup {}); {}",
            Took(self.elapsed),
            Took(self.lame_duck),
            Took(self.drain.elapsed()),
            Took(self.cleanup),
            self.drain
        )?;
        for (i, hook) in self.hooks.iter().enumerate() {
            f.write_str(if i == 0 { "; cleanup: " } else { ", " })?;
            write!(f, "{hook}")?;
        }
        Ok(())
    }
}
