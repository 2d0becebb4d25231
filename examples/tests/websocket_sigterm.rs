//! WebSockets through a real SIGTERM: the `chat-sse` example's `/ws` route,
//! started as a child on 127.0.0.1, read by tokio-tungstenite clients. The
//! drain closes each socket with `1001 Going Away` after its last whole
//! message and waits for the client's Close, bounded by
//! `DRAIN_DEADLINE_SECS`. Every child is ended by its pid if a test fails.

#![cfg(unix)]

use std::net::SocketAddr;
use std::path::Path;

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};
use tower_drain_tests::within;

mod common;
use common::{count, Process};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn start(deadline_secs: &str, partial: &Path) -> (Process, SocketAddr) {
    Process::example(
        env!("CARGO_BIN_EXE_chat-sse"),
        &[
            ("ADDR", "127.0.0.1:0"),
            ("DRAIN_DEADLINE_SECS", deadline_secs),
            ("PARTIAL_OUTPUT", partial.to_str().expect("utf-8 path")),
        ],
    )
}

/// Opens an endless answer and reads its first token, so that the socket
/// is open (and counted) before the test goes on.
async fn open(addr: SocketAddr) -> (Client, Vec<u64>) {
    let (mut client, _) = within("connect", connect_async(format!("ws://{addr}/ws")))
        .await
        .expect("upgraded");
    let first = within("the first token", client.next()).await;
    (client, vec![token_id(first)])
}

fn token_id(message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> u64 {
    let Some(Ok(Message::Text(text))) = message else {
        panic!("not a token: {message:?}")
    };
    let token: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
    token["id"].as_u64().expect("an id")
}

fn partial_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_closes_open_websockets_with_1001_and_waits_for_their_answer() {
    let dir = tempdir("ws-sigterm");
    let partial = dir.join("partial.jsonl");
    let (mut server, addr) = start("20", &partial);
    let mut clients = vec![open(addr).await, open(addr).await];

    server.sigterm();
    server.wait_for_log("drain tripped");

    for (client, ids) in &mut clients {
        let frame = within("the Close", async {
            loop {
                match client.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.expect("a code"),
                    message => ids.push(token_id(message)),
                }
            }
        })
        .await;
        assert_eq!(frame.code, CloseCode::Away);
        let reason: serde_json::Value = serde_json::from_str(frame.reason.as_str()).unwrap();
        assert_eq!(reason["reason"], "server_shutdown");
        assert_eq!(
            reason["message"],
            "the server is restarting; reconnecting resumes your answer"
        );
        // Every token whole, in order, none missing.
        assert!(ids.iter().copied().eq(0..ids.len() as u64), "{ids:?}");
        // The client's answer ends the handshake; then the connection ends.
        assert!(within("the end", client.next()).await.is_none());
    }

    let (status, _, report) = server.exit();
    assert!(status.success(), "exit 0: {status:?}, {report}");
    assert_eq!(count(&report, " in flight at trip"), 2, "{report}");
    assert_eq!(count(&report, " ended early"), 2, "{report}");
    assert_eq!(count(&report, " cut"), 0, "{report}");
    // The hook saved what each client received.
    let mut saved: Vec<u64> = partial_lines(&partial)
        .iter()
        .map(|line| {
            assert_eq!(line["ending"], "ended early", "{line}");
            line["events"].as_u64().unwrap()
        })
        .collect();
    saved.sort_unstable();
    let mut received: Vec<u64> = clients.iter().map(|(_, ids)| ids.len() as u64).collect();
    received.sort_unstable();
    assert_eq!(saved, received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_never_answers_is_cut_at_the_drain_deadline() {
    let dir = tempdir("ws-deadline");
    let partial = dir.join("partial.jsonl");
    let (mut server, addr) = start("1", &partial);
    // Open, then never read again: the Close is never answered.
    let (_client, _) = open(addr).await;

    server.sigterm();
    server.wait_for_log("drain tripped");
    let (status, _, report) = server.exit();
    assert!(!status.success(), "a cut is a failed drain: {report}");
    assert_eq!(count(&report, " in flight at trip"), 1, "{report}");
    assert_eq!(count(&report, " cut"), 1, "{report}");
    let saved = partial_lines(&partial);
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(saved[0]["ending"], "cut");
}

/// A fresh directory under the target dir, for one test's files.
fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}
