//! `WebSocketDrain`'s socket against the bare socket it wraps, and against
//! tokio-util's `TaskTracker` (what users reach for to count sockets: it
//! counts, but neither closes nor cuts): messages per second for small text
//! messages, over an in-memory duplex pipe, each run ending with the close
//! handshake.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::task::TaskTracker;
use tower_drain::Drain;
use tower_drain_sse::ws::WebSocketDrain;

/// Messages per run.
const MESSAGES: usize = 10_000;

/// A connected server and client, without a handshake.
async fn pair() -> (WebSocketStream<DuplexStream>, WebSocketStream<DuplexStream>) {
    let (server, client) = tokio::io::duplex(64 * 1024);
    (
        WebSocketStream::from_raw_socket(server, Role::Server, None).await,
        WebSocketStream::from_raw_socket(client, Role::Client, None).await,
    )
}

/// Reads to the end (answering the Close); returns the messages read.
async fn read_all(mut client: WebSocketStream<DuplexStream>) -> usize {
    let mut read = 0;
    while let Some(Ok(_)) = client.next().await {
        read += 1;
    }
    read
}

/// What the application does: sends every message, each flushed.
async fn send_all<S>(socket: &mut S)
where
    S: futures_util::Sink<Message> + Unpin,
    S::Error: std::fmt::Debug,
{
    let message = Message::text(r#"{"id":1234,"token":"hello"}"#);
    for _ in 0..MESSAGES {
        socket.send(message.clone()).await.expect("sent");
    }
}

/// The bare socket, closed as the drained one is: a Close, then the
/// client's answer.
async fn bare() -> usize {
    let (mut server, client) = pair().await;
    let reader = tokio::spawn(read_all(client));
    send_all(&mut server).await;
    server.close(None).await.expect("closed");
    while server.next().await.is_some() {}
    // The client waits for the server to close the connection.
    drop(server);
    reader.await.expect("read")
}

async fn tracked(tracker: &TaskTracker) -> usize {
    tracker.track_future(bare()).await
}

async fn drained(ws: &WebSocketDrain) -> usize {
    let (server, client) = pair().await;
    let reader = tokio::spawn(read_all(client));
    let admitted = ws.admit().expect("not tripped");
    admitted
        .run(
            server,
            |mut socket| async move { send_all(&mut socket).await },
        )
        .await;
    reader.await.expect("read")
}

fn ws(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let drain = Drain::new();
    let ws = WebSocketDrain::new(drain.signal());
    let tracker = TaskTracker::new();

    let mut group = c.benchmark_group("ws-small");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function(BenchmarkId::from_parameter("bare"), |b| {
        b.iter(|| assert_eq!(rt.block_on(bare()), MESSAGES + 1))
    });
    group.bench_function(BenchmarkId::from_parameter("task-tracker"), |b| {
        b.iter(|| assert_eq!(rt.block_on(tracked(&tracker)), MESSAGES + 1))
    });
    group.bench_function(BenchmarkId::from_parameter("websocket-drain"), |b| {
        b.iter(|| assert_eq!(rt.block_on(drained(&ws)), MESSAGES + 1))
    });
    group.finish();
    assert_eq!(drain.in_flight(), 0);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = ws
}
criterion_main!(benches);
