use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::drain::Took;
use crate::BoxError;

type Start = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> + Send>;

/// A cleanup hook: a name, its own timeout, and the work.
pub(super) struct Hook {
    name: Cow<'static, str>,
    timeout: Duration,
    start: Start,
}

impl Hook {
    pub(super) fn new<F, Fut, E>(name: Cow<'static, str>, timeout: Duration, hook: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Self {
            name,
            timeout,
            start: Box::new(move || Box::pin(async move { hook().await.map_err(Into::into) })),
        }
    }
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How a cleanup hook ended.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum HookOutcome {
    /// It returned `Ok` within its time.
    Finished,
    /// It returned an error, or panicked.
    Failed(HookError),
    /// It ran out of time (its own timeout, or what was left of the cleanup
    /// deadline) and was cancelled.
    TimedOut,
    /// The cleanup deadline had passed before its turn; it never ran.
    Skipped,
}

/// The error a cleanup hook failed with (or its panic message).
#[derive(Clone)]
pub struct HookError(Arc<dyn Error + Send + Sync>);

impl HookError {
    fn new(error: BoxError) -> Self {
        Self(Arc::from(error))
    }

    /// The error the hook returned.
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for HookError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// What one cleanup hook did.
#[derive(Clone, Debug)]
pub struct HookReport {
    name: Cow<'static, str>,
    elapsed: Duration,
    outcome: HookOutcome,
}

impl HookReport {
    /// The name it was registered with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long it ran.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// How it ended.
    pub fn outcome(&self) -> &HookOutcome {
        &self.outcome
    }

    /// Whether it finished without error.
    pub fn is_finished(&self) -> bool {
        matches!(self.outcome, HookOutcome::Finished)
    }
}

impl fmt::Display for HookReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            HookOutcome::Finished => write!(f, "{} finished in {}", self.name, Took(self.elapsed)),
            HookOutcome::Failed(error) => {
                write!(
                    f,
                    "{} failed after {}: {error}",
                    self.name,
                    Took(self.elapsed)
                )
            }
            HookOutcome::TimedOut => {
                write!(f, "{} timed out after {}", self.name, Took(self.elapsed))
            }
            HookOutcome::Skipped => write!(f, "{} skipped", self.name),
        }
    }
}

/// Runs the hooks one after the other, in the order they were registered,
/// each within its own timeout and all within `deadline`. Each runs as its
/// own task, so a panic is reported as a failure and a hook that times out
/// is cancelled.
pub(super) async fn run(hooks: Vec<Hook>, deadline: Duration) -> Vec<HookReport> {
    // `None`: too far off to come (`Duration::MAX`).
    let end = Instant::now().checked_add(deadline);
    let mut reports = Vec::with_capacity(hooks.len());
    for Hook {
        name,
        timeout,
        start,
    } in hooks
    {
        let started = Instant::now();
        if end.is_some_and(|end| started >= end) {
            crate::event!(warn, hook = %name, "cleanup deadline passed: hook skipped");
            reports.push(HookReport {
                name,
                elapsed: Duration::ZERO,
                outcome: HookOutcome::Skipped,
            });
            continue;
        }
        let mut task = tokio::spawn(async move { start().await });
        let until = match (end, started.checked_add(timeout)) {
            (Some(end), Some(own)) => Some(end.min(own)),
            (end, own) => end.or(own),
        };
        let joined = match until {
            Some(until) => tokio::time::timeout_at(until, &mut task).await,
            None => Ok((&mut task).await),
        };
        let outcome = match joined {
            Ok(Ok(Ok(()))) => HookOutcome::Finished,
            Ok(Ok(Err(error))) => HookOutcome::Failed(HookError::new(error)),
            Ok(Err(join)) => HookOutcome::Failed(HookError::new(panic_message(join).into())),
            Err(_) => {
                task.abort();
                HookOutcome::TimedOut
            }
        };
        let report = HookReport {
            name,
            elapsed: started.elapsed(),
            outcome,
        };
        if report.is_finished() {
            crate::event!(info, hook = %report.name, elapsed = ?report.elapsed, "cleanup hook finished");
        } else {
            crate::event!(warn, hook = %report.name, "cleanup hook: {report}");
        }
        reports.push(report);
    }
    reports
}

fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(panic) => match panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        {
            Some(message) => format!("panicked: {message}"),
            None => "panicked".to_owned(),
        },
        Err(_) => "cancelled".to_owned(),
    }
}
