//! What the examples share: their start (logs, signal handlers,
//! environment), and a bounded wait for the server task once the drain is
//! over.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The error the examples' `main` returns.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What every example reads at start.
pub(crate) struct Setup {
    /// Resolves at SIGTERM or Ctrl-C.
    pub(crate) stop_signal: ShutdownSignal,
    /// `ADDR`.
    pub(crate) addr: String,
    /// `DRAIN_DEADLINE_SECS`: how long the drain may take (default 30 s).
    pub(crate) deadline: Duration,
}

impl Setup {
    /// Logs to stderr (the report goes to stdout), installs the signal
    /// handlers, and reads `ADDR` (default `default_addr`) and
    /// `DRAIN_DEADLINE_SECS`.
    pub(crate) fn from_env(default_addr: &str) -> Result<Self, BoxError> {
        tracing_subscriber::fmt()
            .with_target(false)
            .with_writer(std::io::stderr)
            .init();
        let stop_signal = ShutdownSignal::install()?;
        let addr = std::env::var("ADDR").unwrap_or_else(|_| default_addr.into());
        let deadline = match std::env::var("DRAIN_DEADLINE_SECS") {
            Ok(secs) => Duration::from_secs(secs.parse()?),
            Err(_) => Duration::from_secs(30),
        };
        Ok(Self {
            stop_signal,
            addr,
            deadline,
        })
    }
}

/// SIGTERM and Ctrl-C, with the handlers installed when this is made. Make
/// it before announcing that the server is up: a signal sent from then on is
/// never lost to the default action (exit without a drain).
pub(crate) struct ShutdownSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Installs the handlers.
    pub(crate) fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves at the first SIGTERM or Ctrl-C.
    pub(crate) async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Waits a few seconds for the server task. Connections a cut request left
/// behind must not hold the exit.
pub(crate) async fn join_server<E>(server: JoinHandle<Result<(), E>>) -> Result<(), BoxError>
where
    E: Into<BoxError>,
{
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(served) => served?.map_err(Into::into),
        Err(_) => {
            tracing::warn!("server connections still open after the drain; exiting anyway");
            Ok(())
        }
    }
}

/// A stop for a server: a future to hand to its graceful shutdown, and the
/// trigger to pull once `Drain::shutdown` has returned. Stopping earlier (at
/// the trip, or at `drained()`, which with nothing in flight is the trip) would
/// close the listener while late requests should still get a clean 503.
pub(crate) fn stop_after_drain() -> (oneshot::Sender<()>, impl std::future::Future<Output = ()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    (stop, async move {
        let _ = stopped.await;
    })
}
