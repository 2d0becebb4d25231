//! An axum server with a slow streaming route behind `DrainLayer`.
//!
//! On SIGTERM or Ctrl-C it drains: requests already streaming finish, new
//! ones get `503` with `Retry-After`, and the process logs the report and
//! exits (0 when nothing had to be cut). See `examples/README.md`.
//!
//! Environment: `ADDR` (default `127.0.0.1:3000`), `DRAIN_DEADLINE_SECS`
//! (default 30).

use std::convert::Infallible;
use std::process::ExitCode;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::stream;
use tokio::net::TcpListener;
use tower_drain::Drain;

#[path = "../shared.rs"]
mod shared;
use tracing::info;

#[tokio::main]
async fn main() -> Result<ExitCode, shared::BoxError> {
    let shared::Setup {
        stop_signal,
        addr,
        deadline,
    } = shared::Setup::from_env("127.0.0.1:3000")?;

    let drain = Drain::new();
    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route("/stream", get(stream_tokens))
        .layer(drain.layer());

    let listener = TcpListener::bind(&addr).await?;
    info!("listening on http://{}", listener.local_addr()?);
    // The listener stays open through the drain, so late requests get a
    // clean 503; the server stops once the drain is over.
    let (stop, stopped) = shared::stop_after_drain();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
    });

    stop_signal.recv().await;
    info!(?deadline, "shutdown signal received: draining");
    // `tower-drain` logs the report too (its `tracing` feature); the summary
    // on stdout is for scripts.
    let report = drain.shutdown(deadline).await;
    println!("{report}");
    let _ = stop.send(());
    shared::join_server(server).await?;
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(serde::Deserialize)]
struct Tokens {
    n: Option<u32>,
}

/// `GET /stream?n=25`: `n` tokens, one every 200 ms, like a model's output.
async fn stream_tokens(Query(Tokens { n }): Query<Tokens>) -> Body {
    let n = n.unwrap_or(25);
    let tokens = stream::unfold(0, move |i| async move {
        if i == n {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        Some((
            Ok::<_, Infallible>(Bytes::from(format!("token-{i}\n"))),
            i + 1,
        ))
    });
    Body::from_stream(tokens)
}
