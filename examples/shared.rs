//! What the examples share: their start (logs, environment, the shutdown
//! sequence), and their end (the report, the exit code).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use tokio::task::JoinHandle;
use tower_drain::shutdown::Shutdown;
use tower_drain::Drain;

/// The error the examples' `main` returns.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What every example reads at start.
pub(crate) struct Setup {
    /// `ADDR`.
    pub(crate) addr: String,
    /// `LAME_DUCK_SECS`: how long readiness fails before the drain trips
    /// (default 0).
    lame_duck: Duration,
    /// `DRAIN_DEADLINE_SECS`: how long the drain may take (default 30).
    pub(crate) deadline: Duration,
    /// `CLEANUP_DEADLINE_SECS`: how long the cleanup hooks may take
    /// together (default 10).
    cleanup_deadline: Duration,
}

impl Setup {
    /// Logs to stderr (the report goes to stdout), and reads `ADDR` (default
    /// `default_addr`) and the phases' durations.
    pub(crate) fn from_env(default_addr: &str) -> Result<Self, BoxError> {
        tracing_subscriber::fmt()
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init();
        Ok(Self {
            addr: std::env::var("ADDR").unwrap_or_else(|_| default_addr.into()),
            lame_duck: secs("LAME_DUCK_SECS", 0)?,
            deadline: secs("DRAIN_DEADLINE_SECS", 30)?,
            cleanup_deadline: secs("CLEANUP_DEADLINE_SECS", 10)?,
        })
    }

    /// The shutdown sequence for `drain`, started by SIGTERM or Ctrl-C. Its
    /// signal handlers are installed here: call it before announcing that
    /// the server is up.
    pub(crate) fn shutdown(&self, drain: &Drain) -> std::io::Result<Shutdown> {
        Ok(Shutdown::on_signals(drain)?
            .lame_duck(self.lame_duck)
            .deadline(self.deadline)
            .cleanup_deadline(self.cleanup_deadline))
    }
}

fn secs(var: &str, default: u64) -> Result<Duration, BoxError> {
    match std::env::var(var) {
        Ok(secs) => Ok(Duration::from_secs(
            secs.parse().map_err(|e| format!("{var}={secs:?}: {e}"))?,
        )),
        Err(_) => Ok(Duration::from_secs(default)),
    }
}

/// The end of every example: runs the shutdown sequence, prints its report
/// on stdout (for scripts), and turns it into the exit code. With
/// `tower_drain::serve` the sequence returns once the server has closed its
/// last connection; another server (`grpc-chat`'s `SERVER=tonic`) gets a few
/// seconds, so that a connection it never closes (a health `Watch` stream)
/// cannot hold the exit.
pub(crate) async fn run_to_exit(
    shutdown: Shutdown,
    server: JoinHandle<()>,
) -> Result<ExitCode, BoxError> {
    let report = shutdown.run().await;
    println!("{report}");
    if tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .is_err()
    {
        tracing::warn!("server connections still open after the drain; exiting anyway");
    }
    Ok(report.exit_code())
}
