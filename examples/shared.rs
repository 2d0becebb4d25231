//! What the examples share: waiting for the stop signal, and a bounded wait
//! for the server task once the drain is over.

use std::time::Duration;

use tokio::task::JoinHandle;

/// Resolves at SIGTERM or Ctrl-C (Ctrl-C only, off Unix).
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .expect("install Ctrl-C handler");
}

/// Waits a few seconds for the server task. Connections a cut request left
/// behind must not hold the exit.
pub(crate) async fn join_server(server: JoinHandle<std::io::Result<()>>) -> std::io::Result<()> {
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(served) => served.map_err(std::io::Error::other)?,
        Err(_) => {
            tracing::warn!("server connections still open after the drain; exiting anyway");
            Ok(())
        }
    }
}
