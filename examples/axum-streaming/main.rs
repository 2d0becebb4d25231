//! An axum server with a slow streaming route behind `DrainLayer`, shut down
//! by the `Shutdown` sequence.
//!
//! On SIGTERM or Ctrl-C: `/readyz` fails at once (lame duck), then the drain
//! trips: requests already streaming finish, new ones get `503` with
//! `Retry-After`. Once the drain is over the server stops, the cleanup hook
//! runs, the report goes to stdout, and the process exits 0 (1 if anything
//! was cut or a hook failed). A second signal cuts at once. See
//! `examples/README.md`.
//!
//! Environment: `ADDR` (default `127.0.0.1:3000`), `LAME_DUCK_SECS` (0),
//! `DRAIN_DEADLINE_SECS` (30), `CLEANUP_DEADLINE_SECS` (10).

use std::convert::Infallible;
use std::future::IntoFuture;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::routing::{get, get_service};
use axum::Router;
use bytes::Bytes;
use futures_util::stream;
use tokio::net::TcpListener;
use tower_drain::Drain;
use tracing::info;

#[path = "../shared.rs"]
mod shared;

#[tokio::main]
async fn main() -> Result<ExitCode, shared::BoxError> {
    let setup = shared::Setup::from_env("127.0.0.1:3000")?;
    let drain = Drain::new();
    let streamed = Arc::new(AtomicU64::new(0));

    // Signal handlers are installed here, before the server says it is up.
    let shutdown = setup
        .shutdown(&drain)?
        .on_cleanup("write the stats", Duration::from_secs(2), {
            let streamed = streamed.clone();
            move || async move {
                // Stands in for closing a pool or flushing an exporter.
                info!(tokens = streamed.load(Ordering::Relaxed), "stats written");
                Ok::<_, Infallible>(())
            }
        });

    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route("/stream", get(stream_tokens))
        .with_state(streamed)
        // Probes keep their own answers through the drain: readiness fails
        // from the lame duck on, liveness stays 200.
        .route("/readyz", get_service(drain.readiness()))
        .route("/livez", get(|| async { "alive\n" }))
        .layer(
            drain
                .layer()
                .exempt(|req| matches!(req.uri().path(), "/readyz" | "/livez")),
        );

    let listener = TcpListener::bind(&setup.addr).await?;
    info!("listening on http://{}", listener.local_addr()?);
    // The server follows the drain: at the trip it moves clients off their
    // connections, until the drain is over late requests get a clean 503
    // (not a refused connection), and at the deadline it drops what is left.
    let server = tokio::spawn(tower_drain::serve(listener, app, &drain).into_future());

    shared::run_to_exit(shutdown, server).await
}

#[derive(serde::Deserialize)]
struct Tokens {
    n: Option<u32>,
}

/// `GET /stream?n=25`: `n` tokens, one every 200 ms, like a model's output.
async fn stream_tokens(
    State(streamed): State<Arc<AtomicU64>>,
    Query(Tokens { n }): Query<Tokens>,
) -> Body {
    let n = n.unwrap_or(25);
    let tokens = stream::unfold(0, move |i| {
        let streamed = streamed.clone();
        async move {
            if i == n {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            streamed.fetch_add(1, Ordering::Relaxed);
            Some((
                Ok::<_, Infallible>(Bytes::from(format!("token-{i}\n"))),
                i + 1,
            ))
        }
    });
    Body::from_stream(tokens)
}
