//! WebSockets inside the drain, over the wire: real axum (and bare
//! tokio-tungstenite) servers on 127.0.0.1, tokio-tungstenite clients.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Received;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};
use tower_drain::Drain;

use super::WebSocketDrain;
use crate::Ending;

/// Generous bound that turns a hang into a failure; never a synchronisation.
const HANG: Duration = Duration::from_secs(20);

async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(HANG, fut)
        .await
        .unwrap_or_else(|_| panic!("hung: {what}"))
}

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;
/// What the stream-end hook saw: how, data messages, bytes.
type Ends = Arc<Mutex<Vec<(Ending, u64, u64)>>>;

struct Server {
    addr: SocketAddr,
    drain: Drain,
    ends: Ends,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(grace: Duration) -> Self {
        Self::start_with(grace, Duration::ZERO).await
    }

    /// With a hook that takes `hook_time` (saving partial output).
    async fn start_with(grace: Duration, hook_time: Duration) -> Self {
        let drain = Drain::new();
        let ends = Ends::default();
        let ws = WebSocketDrain::new(drain.signal())
            .grace(grace)
            .on_stream_end({
                let ends = ends.clone();
                move |end| {
                    std::thread::sleep(hook_time);
                    ends.lock()
                        .unwrap()
                        .push((end.ending(), end.events(), end.bytes()))
                }
            });
        let app = Router::new()
            .route("/echo", get(echo))
            .route("/tokens", get(tokens))
            .route("/sized", get(sized))
            .route("/bye", get(bye))
            .route("/panic", get(panics))
            .with_state(ws)
            .layer(drain.layer());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            drain,
            ends,
            task,
        }
    }

    async fn connect(&self, path: &str) -> Client {
        let url = format!("ws://{}{path}", self.addr);
        within("connect", connect_async(url)).await.unwrap().0
    }

    async fn counted_out(&self) {
        within("the count back to zero", async {
            while self.drain.in_flight() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }

    fn ends(&self) -> Vec<(Ending, u64, u64)> {
        self.ends.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Echoes every message until the socket ends.
async fn echo(upgrade: WebSocketUpgrade, State(ws): State<WebSocketDrain>) -> Response {
    ws.on_upgrade(upgrade, |mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if socket.send(message).await.is_err() {
                break;
            }
        }
    })
}

/// `token {i}` every 10 ms, for ever, as a model's output.
async fn tokens(upgrade: WebSocketUpgrade, State(ws): State<WebSocketDrain>) -> Response {
    ws.on_upgrade(upgrade, |mut socket| async move {
        for i in 0.. {
            if socket
                .send(Message::text(format!("token {i}")))
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// Messages of the sizes in the query (`?100,70000`), in turn, for ever, as
/// fast as the client takes them; each is `{i}:` then `x`s up to its size.
async fn sized(
    upgrade: WebSocketUpgrade,
    State(ws): State<WebSocketDrain>,
    RawQuery(sizes): RawQuery,
) -> Response {
    let sizes: Vec<usize> = sizes
        .unwrap_or_default()
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    ws.on_upgrade(upgrade, move |mut socket| async move {
        for i in 0.. {
            let message = numbered(i, sizes[i % sizes.len()]);
            if socket.send(Message::text(message)).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
}

fn numbered(i: usize, size: usize) -> String {
    let mut message = format!("{i}:");
    let pad = size.saturating_sub(message.len());
    message.extend(std::iter::repeat_n('x', pad));
    message
}

/// One message, then the handler returns.
async fn bye(upgrade: WebSocketUpgrade, State(ws): State<WebSocketDrain>) -> Response {
    ws.on_upgrade(upgrade, |mut socket| async move {
        let _ = socket.send(Message::text("bye")).await;
    })
}

/// A handler that panics once the client has said something.
async fn panics(upgrade: WebSocketUpgrade, State(ws): State<WebSocketDrain>) -> Response {
    ws.on_upgrade(upgrade, |mut socket| async move {
        let _ = socket.recv().await;
        panic!("the handler panics");
    })
}

/// The Close frame a client receives next, skipping data messages.
async fn close_frame(client: &mut Client) -> Option<CloseFrame> {
    within("the Close", async {
        loop {
            match client.next().await {
                Some(Ok(Received::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("no Close frame: {other:?}"),
            }
        }
    })
    .await
}

fn assert_going_away(frame: &CloseFrame) {
    assert_eq!(frame.code, CloseCode::Away);
    let reason: serde_json::Value = serde_json::from_str(frame.reason.as_str()).unwrap();
    assert_eq!(reason["type"], "end");
    assert_eq!(reason["reason"], "server_shutdown");
}

#[tokio::test]
async fn a_socket_counts_until_its_client_answers_the_drains_close() {
    let server = Server::start(Duration::ZERO).await;
    let mut client = server.connect("/echo").await;
    client.send(Received::text("hello")).await.unwrap();
    let echoed = within("the echo", client.next()).await.unwrap().unwrap();
    assert_eq!(echoed, Received::text("hello"));
    // The 101 has gone out: the socket is what counts.
    assert_eq!(server.drain.in_flight(), 1);

    let shutdown = tokio::spawn({
        let drain = server.drain.clone();
        async move { drain.shutdown(Duration::from_secs(30)).await }
    });
    let frame = close_frame(&mut client).await.expect("a Close with a code");
    assert_going_away(&frame);

    // The client has not answered yet (tokio-tungstenite answers on its
    // next read): the drain waits.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!shutdown.is_finished());
    assert_eq!(server.drain.in_flight(), 1);

    // The answer ends the handshake; the server then closes the connection.
    assert!(within("the end", client.next()).await.is_none());
    let report = within("the drain", shutdown).await.unwrap();
    assert_eq!(
        (
            report.in_flight_at_trip(),
            report.ended_early(),
            report.cut()
        ),
        (1, 1, 0),
        "{report}"
    );
    assert!(report.is_clean(), "{report}");
    assert_eq!(server.ends(), [(Ending::Early, 1, 5)]);
}

#[tokio::test]
async fn a_client_that_never_answers_the_close_is_cut_at_the_deadline() {
    for deadline in [Duration::ZERO, Duration::from_millis(300)] {
        let server = Server::start(Duration::ZERO).await;
        let mut client = server.connect("/tokens").await;
        // Never read until the drain is over.
        let report = within("the drain", server.drain.shutdown(deadline)).await;
        assert_eq!(
            (
                report.in_flight_at_trip(),
                report.cut(),
                report.ended_early()
            ),
            (1, 1, 0),
            "{deadline:?}: {report}"
        );
        assert_eq!(server.drain.in_flight(), 0);
        assert!(matches!(server.ends()[..], [(Ending::Cut, _, _)]));
        // What the client then reads ends: tokens, the Close if it went
        // out, and the end of the connection, never a hang.
        within("the client's end", async {
            while let Some(Ok(_)) = client.next().await {}
        })
        .await;
    }
}

#[tokio::test]
async fn the_count_returns_to_zero_when_the_client_disconnects() {
    let server = Server::start(Duration::ZERO).await;
    let client = server.connect("/echo").await;
    assert_eq!(server.drain.in_flight(), 1);
    drop(client);
    server.counted_out().await;
    let report = server.drain.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.in_flight_at_trip(), 0, "{report}");
    assert!(server.ends().is_empty());
}

#[tokio::test]
async fn the_count_returns_to_zero_when_the_handler_panics() {
    let server = Server::start(Duration::ZERO).await;
    let mut client = server.connect("/panic").await;
    assert_eq!(server.drain.in_flight(), 1);
    client.send(Received::text("boom")).await.unwrap();
    server.counted_out().await;
    let report = server.drain.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.in_flight_at_trip(), 0, "{report}");
}

#[tokio::test]
async fn the_count_returns_to_zero_on_a_socket_error() {
    let server = Server::start(Duration::ZERO).await;
    let mut client = server.connect("/echo").await;
    assert_eq!(server.drain.in_flight(), 1);
    // An unmasked frame from a client breaks the protocol: the server's
    // read fails.
    let MaybeTlsStream::Plain(tcp) = client.get_mut() else {
        unreachable!("plain TCP")
    };
    tcp.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    server.counted_out().await;
    let report = server.drain.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.in_flight_at_trip(), 0, "{report}");
}

#[tokio::test]
async fn an_upgrade_after_the_trip_is_refused() {
    let server = Server::start(Duration::ZERO).await;
    server.drain.trip();
    let url = format!("ws://{}/echo", server.addr);
    match within("connect", connect_async(url)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 503);
            assert!(res.headers().contains_key("retry-after"));
        }
        other => panic!("not refused: {other:?}"),
    }
    // And a socket cannot be admitted past `DrainLayer` either.
    assert!(WebSocketDrain::new(server.drain.signal()).admit().is_err());
}

#[tokio::test]
async fn a_handler_that_returns_closes_its_socket_normally_and_counts_completed() {
    let server = Server::start(Duration::ZERO).await;
    let mut client = server.connect("/bye").await;
    let first = within("bye", client.next()).await.unwrap().unwrap();
    assert_eq!(first, Received::text("bye"));
    let frame = close_frame(&mut client).await.expect("a code");
    assert_eq!(frame.code, CloseCode::Normal);
    assert!(within("the end", client.next()).await.is_none());
    server.counted_out().await;
    let report = server.drain.shutdown(Duration::from_secs(30)).await;
    assert!(report.is_clean(), "{report}");
    assert!(server.ends().is_empty());
}

#[tokio::test]
async fn the_grace_lets_a_socket_run_on_after_the_trip() {
    let server = Server::start(Duration::from_millis(200)).await;
    let mut client = server.connect("/tokens").await;
    let first = within("a token", client.next()).await.unwrap().unwrap();
    assert_eq!(first, Received::text("token 0"));
    server.drain.trip();
    let mut received = 1;
    let frame = within("the Close", async {
        loop {
            match client.next().await {
                Some(Ok(Received::Text(_))) => received += 1,
                Some(Ok(Received::Close(frame))) => return frame,
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .expect("a code");
    assert_going_away(&frame);
    assert!(within("the end", client.next()).await.is_none());
    let report = within("the drain", server.drain.shutdown(Duration::from_secs(30))).await;
    assert_eq!(report.ended_early(), 1, "{report}");
    // Tokens went on after the trip, and the hook counted what the client
    // received.
    assert!(received > 2, "{received} tokens");
    assert_eq!(
        server.ends()[..],
        [(Ending::Early, received, server.ends()[0].2)]
    );
}

#[tokio::test]
async fn a_grace_or_deadline_of_zero_or_duration_max_ends_without_panicking() {
    // A grace longer than any deadline: the deadline cuts the socket.
    let server = Server::start(Duration::MAX).await;
    let _client = server.connect("/echo").await;
    let report = within(
        "the drain",
        server.drain.shutdown(Duration::from_millis(300)),
    )
    .await;
    assert_eq!((report.cut(), report.ended_early()), (1, 0), "{report}");
    assert_eq!(server.drain.in_flight(), 0);

    // No deadline at all: the drain waits for the client's answer.
    let server = Server::start(Duration::ZERO).await;
    let mut client = server.connect("/echo").await;
    let shutdown = tokio::spawn({
        let drain = server.drain.clone();
        async move { drain.shutdown(Duration::MAX).await }
    });
    assert_going_away(&close_frame(&mut client).await.expect("a code"));
    assert!(within("the end", client.next()).await.is_none());
    let report = within("the drain", shutdown).await.unwrap();
    assert_eq!((report.cut(), report.ended_early()), (0, 1), "{report}");
}

/// The drain's Close went out and the socket ended before the deadline:
/// ended early, as a stream whose terminal frame went out, and the hook
/// gets to save what the client had, whether or not it answered.
#[tokio::test]
async fn a_client_that_goes_away_after_the_close_counts_ended_early_and_reaches_the_hook() {
    let server = Server::start(Duration::ZERO).await;
    let mut client = server.connect("/tokens").await;
    let mut received = 0;
    let shutdown = tokio::spawn({
        let drain = server.drain.clone();
        async move { drain.shutdown(Duration::from_secs(30)).await }
    });
    let frame = within("the Close", async {
        loop {
            match client.next().await {
                Some(Ok(Received::Text(_))) => received += 1,
                Some(Ok(Received::Close(frame))) => return frame,
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .expect("a code");
    assert_going_away(&frame);
    // Gone, without the Close that would answer it.
    drop(client);
    let report = within("the drain", shutdown).await.unwrap();
    assert_eq!(
        (report.ended_early(), report.completed(), report.cut()),
        (1, 0, 0),
        "{report}"
    );
    assert_eq!(
        server.ends()[..],
        [(Ending::Early, received, server.ends()[0].2)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_hook_does_not_turn_a_clean_close_into_a_cut() {
    let server = Server::start_with(Duration::ZERO, Duration::from_millis(300)).await;
    let mut client = server.connect("/echo").await;
    // The deadline passes while the hook saves.
    let shutdown = tokio::spawn({
        let drain = server.drain.clone();
        async move { drain.shutdown(Duration::from_millis(100)).await }
    });
    assert_going_away(&close_frame(&mut client).await.expect("a code"));
    assert!(within("the end", client.next()).await.is_none());
    let report = within("the drain", shutdown).await.unwrap();
    assert_eq!((report.ended_early(), report.cut()), (1, 0), "{report}");
    assert_eq!(server.ends(), [(Ending::Early, 0, 0)]);
}

/// The drain waits for a fragmented message's end before its Close, and
/// the end, sent from another task, wakes it.
#[cfg(feature = "tungstenite")]
#[tokio::test]
async fn a_message_finished_from_another_task_is_followed_by_the_close_at_once() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    let drain = Drain::new();
    let ws = WebSocketDrain::new(drain.signal());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tripped, mid_message) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let admitted = ws.admit().unwrap();
        let socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        admitted
            .run(socket, |mut socket| async move {
                let sender = tokio::spawn(async move {
                    let first = Frame::message("hello, ", OpCode::Data(Data::Text), false);
                    socket.send(Received::Frame(first)).await.unwrap();
                    let _ = mid_message.await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let last = Frame::message("world", OpCode::Data(Data::Continue), true);
                    socket.send(Received::Frame(last)).await.unwrap();
                    assert!(socket.recv().await.is_none());
                });
                sender.await.unwrap();
            })
            .await;
    });
    let (mut client, _) = connect_async(format!("ws://{addr}/")).await.unwrap();
    // A deadline longer than the hang bound: only a prompt Close passes.
    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::from_secs(60)).await }
    });
    while !drain.is_tripped() {
        tokio::task::yield_now().await;
    }
    tripped.send(()).unwrap();
    let whole = within("the message", client.next()).await.unwrap().unwrap();
    assert_eq!(whole, Received::text("hello, world"));
    assert_going_away(&close_frame(&mut client).await.expect("a code"));
    assert!(within("the end", client.next()).await.is_none());
    let report = within("the drain", shutdown).await.unwrap();
    assert_eq!((report.ended_early(), report.cut()), (1, 0), "{report}");
}

/// A bare tokio-tungstenite server, no axum: the count taken before the
/// handshake's answer, the socket run once upgraded.
#[cfg(feature = "tungstenite")]
#[tokio::test]
async fn tokio_tungstenite_sockets_are_drained_too() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    let drain = Drain::new();
    let ws = WebSocketDrain::new(drain.signal());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tripped_mid_message, mid_message) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let admitted = ws.admit().unwrap();
        let socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        admitted
            .run(socket, |mut socket| async move {
                // The first half of a fragmented message...
                let first = Frame::message("hello, ", OpCode::Data(Data::Text), false);
                socket.send(Received::Frame(first)).await.unwrap();
                // ... the trip ...
                let _ = mid_message.await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                assert!(
                    !socket.is_closing(),
                    "the Close waits for the message's end"
                );
                // ... and its end, before the Close.
                let last = Frame::message("world", OpCode::Data(Data::Continue), true);
                socket.send(Received::Frame(last)).await.unwrap();
                assert!(socket.recv().await.is_none());
            })
            .await;
    });
    let (mut client, _) = connect_async(format!("ws://{addr}/")).await.unwrap();
    assert_eq!(drain.in_flight(), 1);
    drain.trip();
    tripped_mid_message.send(()).unwrap();
    let whole = within("the message", client.next()).await.unwrap().unwrap();
    assert_eq!(whole, Received::text("hello, world"));
    let frame = close_frame(&mut client).await.expect("a code");
    assert_going_away(&frame);
    assert!(within("the end", client.next()).await.is_none());
    within("the server", server).await.unwrap();
    let report = drain.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.ended_early(), 1, "{report}");
}

#[test]
fn a_long_close_reason_stays_json_within_123_bytes() {
    let drain = Drain::new();
    let seen = crate::framing::Seen::default();
    let end = crate::StreamEnd::new(crate::Framing::WebSocket, Ending::Early, &seen);
    let reason = |ws: WebSocketDrain| ws.config.close_reason(&end);
    // The default fits whole.
    let whole = reason(WebSocketDrain::new(drain.signal()));
    let json: serde_json::Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(json["reason"], "server_shutdown");
    assert!(json["message"]
        .as_str()
        .unwrap()
        .ends_with("reconnect to resume"));
    // A long message is shortened, at a character boundary, and escapes are
    // never split: the reason is still JSON.
    for message in ["é".repeat(100), "\"".repeat(60), "x".repeat(1000)] {
        let reason = reason(WebSocketDrain::new(drain.signal()).message(message.clone()));
        assert!(reason.len() <= 123, "{}", reason.len());
        let json: serde_json::Value = serde_json::from_str(&reason).unwrap();
        assert_eq!(json["type"], "end");
        let kept = json["message"].as_str().unwrap();
        assert!(!kept.is_empty() && message.starts_with(kept), "{kept:?}");
    }
    // Other text is cut at a character boundary.
    let data = reason(WebSocketDrain::new(drain.signal()).data("é".repeat(100)));
    assert_eq!(data, "é".repeat(61));
    // A custom frame, shared from an SSE layer, is asked for a WebSocket's.
    let layer = crate::SseDrainLayer::new(drain.signal()).frame_with(|end| match end.framing() {
        crate::Framing::WebSocket => bytes::Bytes::from_static(b"bye"),
        _ => bytes::Bytes::from_static(b"event: bye\ndata: bye\n\n"),
    });
    assert_eq!(reason(WebSocketDrain::from(&layer)), "bye");
}

mod trips_at_random_points {
    use proptest::prelude::*;

    use super::*;

    /// One conversation: messages of `sizes`, the trip after `before`
    /// messages and `delay_ms`, a client that sleeps `slow_ms` per message.
    async fn conversation(sizes: Vec<usize>, before: usize, delay_ms: u64, slow_ms: u64) {
        let server = Server::start(Duration::ZERO).await;
        let query = sizes.iter().map(ToString::to_string).collect::<Vec<_>>();
        let mut client = server.connect(&format!("/sized?{}", query.join(","))).await;
        let check = |i: usize, message: Received| {
            let Received::Text(text) = message else {
                panic!("message {i}: not text: {message:?}")
            };
            assert_eq!(
                text.as_str(),
                numbered(i, sizes[i % sizes.len()]),
                "message {i} split"
            );
        };
        let mut received = 0;
        while received < before {
            let message = within("a message", client.next()).await.unwrap().unwrap();
            check(received, message);
            received += 1;
        }
        let shutdown = tokio::spawn({
            let drain = server.drain.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                drain.shutdown(Duration::from_secs(30)).await
            }
        });
        let frame = within("the Close", async {
            loop {
                match client.next().await {
                    Some(Ok(Received::Close(frame))) => return frame,
                    Some(Ok(message)) => {
                        check(received, message);
                        received += 1;
                    }
                    other => panic!("after {received} messages: {other:?}"),
                }
                if slow_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(slow_ms)).await;
                }
            }
        })
        .await
        .expect("a code");
        assert_going_away(&frame);
        assert!(within("the end", client.next()).await.is_none());
        let report = within("the drain", shutdown).await.unwrap();
        assert_eq!((report.ended_early(), report.cut()), (1, 0), "{report}");
        // Every message the handler handed over arrived, whole.
        let [(Ending::Early, events, _)] = server.ends()[..] else {
            panic!("{:?}", server.ends())
        };
        assert_eq!(events, received as u64);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn never_split_a_message_and_always_end_with_a_well_formed_close(
            sizes in prop::collection::vec(1usize..300_000, 1..4),
            before in 0usize..4,
            delay_ms in 0u64..20,
            slow_ms in prop::sample::select(vec![0u64, 0, 1, 5]),
        ) {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(conversation(sizes, before, delay_ms, slow_ms));
        }
    }
}
