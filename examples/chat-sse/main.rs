//! A chat server whose `/chat` route streams tokens as Server-Sent Events,
//! behind `DrainLayer` and `SseDrainLayer`, and whose `/ws` route streams the
//! same tokens over a WebSocket, closed by `WebSocketDrain`.
//!
//! On SIGTERM or Ctrl-C every open stream ends with
//! `event: end` / `{"type":"end","reason":"server_shutdown",...}` at an event
//! boundary, every WebSocket gets Close `1001 Going Away` with the same JSON
//! as its reason (after its last whole message), the partial output of each
//! stream the drain ended is saved, and the process exits once each client
//! has answered (or at the deadline). The page at `/` shows the tokens, a
//! notice at the end, and reconnects: over SSE the browser sends
//! `Last-Event-ID`; over a WebSocket (`/?transport=ws`) the page asks for
//! `/ws?last=ID`; either way the answer resumes. `POST /messages` stands in
//! for a chat message: a request no proxy may retry.
//!
//! Environment: `ADDR` (default `127.0.0.1:3000`), `LAME_DUCK_SECS` (0),
//! `DRAIN_DEADLINE_SECS` (30), `CLEANUP_DEADLINE_SECS` (10),
//! `PARTIAL_OUTPUT` (default `partial-output.jsonl`: one JSON line per
//! stream the drain ended), `SSE_RETRY_MS` (3000: the `retry:` hint of the
//! terminal frame). `TOWER_DRAIN=off` serves the same routes without
//! tower-drain, the way axum shuts down on its own, for comparison (see
//! `tests/rolling_restart.rs`).

use std::convert::Infallible;
use std::fs::OpenOptions;
use std::future::IntoFuture;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::Html;
use axum::routing::{get, get_service, post};
use axum::Router;
use bytes::Bytes;
use futures_util::{stream, Sink, SinkExt, Stream};
use tokio::net::TcpListener;
use tower_drain::Drain;

#[path = "../shared.rs"]
mod shared;
use tower_drain_sse::ws::WebSocketDrain;
use tower_drain_sse::{Ending, SseDrainLayer, StreamEnd};
use tracing::{info, warn};

const WORDS: &[&str] = &[
    "Graceful",
    "shutdown",
    "means",
    "nothing",
    "admitted",
    "is",
    "lost,",
    "and",
    "every",
    "stream",
    "ends",
    "with",
    "a",
    "frame",
    "the",
    "client",
    "understands.",
];

#[tokio::main]
async fn main() -> Result<ExitCode, shared::BoxError> {
    let setup = shared::Setup::from_env("127.0.0.1:3000")?;
    let partial: PathBuf = std::env::var_os("PARTIAL_OUTPUT")
        .map_or_else(|| "partial-output.jsonl".into(), Into::into);

    let routes = Router::new()
        .route("/", get(|| async { Html(include_str!("index.html")) }))
        .route("/chat", get(chat))
        .route("/messages", post(message));
    if std::env::var("TOWER_DRAIN").as_deref() == Ok("off") {
        let routes = routes.route("/ws", get(ws_without_drain));
        return without_drain(&setup, routes).await;
    }

    let retry = Duration::from_millis(match std::env::var("SSE_RETRY_MS") {
        Ok(ms) => ms
            .parse()
            .map_err(|e| format!("SSE_RETRY_MS={ms:?}: {e}"))?,
        Err(_) => 3000,
    });
    let drain = Drain::new();
    let shutdown = setup.shutdown(&drain)?;
    let streams = SseDrainLayer::new(drain.signal())
        .message("the server is restarting; reconnecting resumes your answer")
        .retry(Some(retry))
        .on_stream_end(move |end| save_partial(&partial, end));
    // WebSockets get the same message, and the same hook.
    let sockets = WebSocketDrain::from(&streams);
    let app = routes
        .route("/ws", get(ws).with_state(sockets))
        .route("/readyz", get_service(drain.readiness()))
        .layer(streams)
        .layer(drain.layer().exempt(|req| req.uri().path() == "/readyz"));

    let listener = TcpListener::bind(&setup.addr).await?;
    info!("chat on http://{}/", listener.local_addr()?);
    // The server follows the drain: at the trip it moves clients off their
    // connections, until the drain is over late requests get a clean 503
    // (not a refused connection), and at the deadline it drops what is left.
    let server = tokio::spawn(tower_drain::serve(listener, app, &drain).into_future());

    shared::run_to_exit(shutdown, server).await
}

/// What users do without tower-drain: axum's graceful shutdown at the
/// signal, which waits for every connection, bounded by the deadline so that
/// an open stream cannot hold the exit forever. Streams still open then are
/// cut wherever they are, and late requests meet a closed listener.
async fn without_drain(setup: &shared::Setup, app: Router) -> Result<ExitCode, shared::BoxError> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let (signalled, signal_seen) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        #[cfg(unix)]
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        info!("shutdown signal received (without tower-drain)");
        let _ = signalled.send(());
    };
    let listener = TcpListener::bind(&setup.addr).await?;
    info!(
        "chat on http://{}/ (without tower-drain)",
        listener.local_addr()?
    );
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .into_future(),
    );

    let _ = signal_seen.await;
    match tokio::time::timeout(setup.deadline, server).await {
        Ok(served) => {
            served??;
            println!("stopped: every connection had closed");
            Ok(ExitCode::SUCCESS)
        }
        Err(_) => {
            println!("deadline reached: exiting with connections still open");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[derive(serde::Deserialize)]
struct Answer {
    /// How many tokens the answer has (default: endless).
    n: Option<usize>,
}

/// `GET /chat?n=50`: tokens of a fake model, one every 150 ms, numbered by
/// `id`, then `event: done`. A reconnecting client's `Last-Event-ID` resumes
/// after the last token it got.
async fn chat(
    headers: HeaderMap,
    Query(Answer { n }): Query<Answer>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let resume = headers
        .get("last-event-id")
        .and_then(|id| id.to_str().ok()?.parse::<usize>().ok())
        .map_or(0, |last| last + 1);
    let end = n.unwrap_or(usize::MAX);
    Sse::new(stream::unfold(resume, move |i| async move {
        if i > end {
            return None;
        }
        if i == end {
            // The answer is whole: a client that has it stops reconnecting.
            return Some((Ok(Event::default().event("done").data("complete")), i + 1));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        let event = Event::default()
            .id(i.to_string())
            .data(WORDS[i % WORDS.len()]);
        Some((Ok(event), i + 1))
    }))
}

#[derive(serde::Deserialize)]
struct SocketAnswer {
    /// How many tokens the answer has (default: endless).
    n: Option<usize>,
    /// The id of the last token the client has: the answer resumes after it.
    last: Option<usize>,
}

/// `GET /ws?n=50&last=7`: the tokens of `/chat` as WebSocket text messages,
/// `{"id":8,"token":"..."}`, then `{"type":"done"}` and Close `1000`. At
/// the trip the drain closes the socket with `1001` after the last whole
/// message; the client reconnects with `last` and the answer resumes.
async fn ws(
    upgrade: WebSocketUpgrade,
    axum::extract::State(sockets): axum::extract::State<WebSocketDrain>,
    Query(answer): Query<SocketAnswer>,
) -> axum::response::Response {
    sockets.on_upgrade(upgrade, move |socket| send_tokens(socket, answer))
}

/// `/ws` as it is without tower-drain: the socket is nobody's to close, and
/// the process exits under it.
async fn ws_without_drain(
    upgrade: WebSocketUpgrade,
    Query(answer): Query<SocketAnswer>,
) -> axum::response::Response {
    upgrade.on_upgrade(move |socket| send_tokens(socket, answer))
}

async fn send_tokens<S>(mut socket: S, SocketAnswer { n, last }: SocketAnswer)
where
    S: Sink<Message> + Unpin,
{
    let resume = last.map_or(0, |last| last + 1);
    let end = n.unwrap_or(usize::MAX);
    for i in resume..end {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let token = serde_json::json!({ "id": i, "token": WORDS[i % WORDS.len()] });
        if socket.send(Message::text(token.to_string())).await.is_err() {
            // Closed: by the client, or by the drain at the trip.
            return;
        }
    }
    let done = serde_json::json!({ "type": "done" });
    let _ = socket.send(Message::text(done.to_string())).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "done".into(),
        })))
        .await;
}

/// `POST /messages`: a chat message sent to the server, which must reach it
/// exactly once (a proxy does not retry it). Answers with its length.
async fn message(body: Bytes) -> String {
    format!("received {} bytes\n", body.len())
}

/// The stream-end hook: one JSON line per stream the drain ended, enough to
/// resume.
fn save_partial(path: &PathBuf, end: &StreamEnd<'_>) {
    let ending = match end.ending() {
        Ending::Early => "ended early",
        Ending::Cut => "cut",
        _ => "ended",
    };
    let line = serde_json::json!({
        "ending": ending,
        "events": end.events(),
        "bytes": end.bytes(),
        "last_event_id": end.last_event_id(),
    });
    let saved = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| writeln!(file, "{line}"));
    match saved {
        Ok(()) => info!(%line, path = %path.display(), "saved partial output"),
        Err(err) => warn!(%err, "could not save partial output"),
    }
}
