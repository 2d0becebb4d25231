//! tower-drain-sse over the wire: a real axum server on 127.0.0.1 with both
//! layers, real HTTP/1.1 clients parsing with an independent SSE parser.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use eventsource_stream::{Event, Eventsource};
use futures_util::{stream, StreamExt};
use http::header::CONTENT_TYPE;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tower_drain::Drain;
use tower_drain_sse::{SseDrainLayer, StreamEnd};
use tower_drain_tests::{get_req, http1, serve_axum, within};

const STREAMS_PER_ROUTE: usize = 4;

/// What the cut hook heard of one stream: events received, last event ID.
type Cut = (u64, Option<String>);
const EVENTS_BEFORE_TRIP: usize = 3;

/// `/chat`: axum's own `Sse`, one token event every few milliseconds.
async fn chat() -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    Sse::new(stream::unfold(0u32, |i| async move {
        tokio::time::sleep(Duration::from_millis(3)).await;
        let event = SseEvent::default()
            .id(i.to_string())
            .data(format!("token-{i}"));
        Some((Ok(event), i + 1))
    }))
}

/// `/raw`: the same events, each split over three frames, CRLF line ends.
async fn raw() -> ([(http::HeaderName, &'static str); 1], Body) {
    let pieces = stream::unfold(0u32, |n| async move {
        let (i, part) = (n / 3, n % 3);
        let bytes = match part {
            0 => format!("id: {i}\r"),
            1 => "\ndata: tok".to_string(),
            _ => format!("en-{i}\r\n\r\n"),
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        Some((Ok::<_, Infallible>(Bytes::from(bytes)), n + 1))
    });
    (
        [(CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(pieces),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_end_with_the_terminal_event_at_a_boundary() {
    let drain = Drain::new();
    let cuts: Arc<Mutex<Vec<Cut>>> = Arc::default();
    let app = Router::new()
        .route("/chat", get(chat))
        .route("/raw", get(raw))
        .layer(SseDrainLayer::new(drain.signal()).on_stream_end({
            let cuts = cuts.clone();
            move |cut: &StreamEnd<'_>| {
                let id = cut.last_event_id().map(String::from);
                cuts.lock().unwrap().push((cut.events(), id));
            }
        }))
        .layer(drain.layer());
    let (addr, server) = serve_axum(app, drain.drained()).await;

    let client = http1();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let mut readers = Vec::new();
    for path in ["/chat", "/raw"] {
        for _ in 0..STREAMS_PER_ROUTE {
            let res = within("headers", client.request(get_req(addr, path)))
                .await
                .unwrap();
            assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
            let ready_tx = ready_tx.clone();
            readers.push(tokio::spawn(async move {
                let mut events: Vec<Event> = Vec::new();
                let mut parsed = res.into_body().into_data_stream().eventsource();
                while let Some(event) = parsed.next().await {
                    events.push(event.expect("a clean stream, no transport or parse error"));
                    if events.len() == EVENTS_BEFORE_TRIP {
                        let _ = ready_tx.send(());
                    }
                }
                (path, events)
            }));
        }
    }
    for _ in 0..readers.len() {
        within("streams under way", ready_rx.recv()).await.unwrap();
    }

    drain.trip();
    let mut from_clients = Vec::new();
    for reader in readers {
        let (path, events) = within("stream end", reader).await.unwrap();
        let (end, tokens) = events.split_last().unwrap();
        assert!(tokens.len() >= EVENTS_BEFORE_TRIP, "{path}");
        for (i, token) in tokens.iter().enumerate() {
            assert_eq!(
                token.data,
                format!("token-{i}"),
                "{path}: intact and in order"
            );
            assert_eq!(token.id, i.to_string());
        }
        assert_eq!(end.event, "end", "{path}");
        let data: serde_json::Value = serde_json::from_str(&end.data).unwrap();
        assert_eq!(
            (data["type"].as_str(), data["reason"].as_str()),
            (Some("end"), Some("server_shutdown"))
        );
        assert_eq!(end.retry, Some(Duration::from_secs(3)));
        from_clients.push((tokens.len() as u64, Some((tokens.len() - 1).to_string())));
    }

    within("drained", drain.drained()).await;
    assert_eq!(drain.in_flight(), 0);
    within("server exit", server).await.unwrap().unwrap();

    // The hook heard of every stream once, with what its client received.
    let mut from_hook = cuts.lock().unwrap().clone();
    from_hook.sort();
    from_clients.sort();
    assert_eq!(from_hook, from_clients);
}

/// NDJSON, one line every few milliseconds, `n` of them.
fn lines(n: u32) -> ([(http::HeaderName, &'static str); 1], Body) {
    let lines = stream::unfold(0u32, move |i| async move {
        if i == n {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        Some((
            Ok::<_, Infallible>(Bytes::from(format!("{{\"n\":{i}}}\n"))),
            i + 1,
        ))
    });
    // Fused: tower-http's compression (0.7.1) polls its body once more
    // after the end, and `unfold` panics on that.
    (
        [(CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines.fuse()),
    )
}

/// Waits until `drain` counts a request in flight.
async fn admitted(drain: &Drain) {
    within("admitted", async {
        while drain.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// A GET with `Accept-Encoding: gzip`.
fn gzip_req(addr: std::net::SocketAddr, path: &str) -> http::Request<http_body_util::Empty<Bytes>> {
    let mut req = get_req(addr, path);
    req.headers_mut()
        .insert(http::header::ACCEPT_ENCODING, "gzip".parse().unwrap());
    req
}

fn gunzip(bytes: &[u8]) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text)?;
    Ok(text)
}

/// A response that declares its length is complete: the layers must not
/// add bytes to it (hyper would cut them at the length, leaving a "complete"
/// response that ends in broken JSON). It is left alone, and cut at the
/// deadline like any other body, which the client sees as an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_a_content_length_is_never_given_extra_bytes() {
    let drain = Drain::new();
    let app = Router::new()
        .route(
            "/counted",
            get(|| async {
                let first = stream::iter([Ok::<_, Infallible>(Bytes::from_static(b"{\"n\":1}\n"))]);
                (
                    [
                        (CONTENT_TYPE, "application/x-ndjson"),
                        (http::header::CONTENT_LENGTH, "16"),
                    ],
                    Body::from_stream(first.chain(stream::pending())),
                )
            }),
        )
        .layer(SseDrainLayer::new(drain.signal()))
        .layer(drain.layer());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, _server) = serve_axum(app, async move {
        let _ = stopped.await;
    })
    .await;

    let res = within("headers", http1().request(get_req(addr, "/counted")))
        .await
        .unwrap();
    assert_eq!(res.headers()[http::header::CONTENT_LENGTH], "16");
    let mut body = Box::pin(res.into_body());
    let first = within("first line", body.frame()).await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "{\"n\":1}\n");

    drain.trip();
    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::from_millis(100)).await }
    });
    let rest = within("the rest", body.frame()).await;
    assert!(
        matches!(rest, Some(Err(_))),
        "cut, never completed with other bytes: {rest:?}"
    );
    let report = within("report", shutdown).await.unwrap();
    assert_eq!(report.cut(), 1, "{report}");
    let _ = stop.send(());
}

/// With `CompressionLayer` inside `SseDrainLayer`, the stream reaches the
/// drain layer gzip-encoded: it must never be given a plaintext line. It is
/// left alone and ends as the application ends it, a valid gzip stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoded_stream_is_never_given_plaintext() {
    let drain = Drain::new();
    let app = Router::new()
        .route("/lines", get(|| async { lines(20) }))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(SseDrainLayer::new(drain.signal()))
        .layer(drain.layer());
    let (addr, server) = serve_axum(app, drain.drained()).await;

    let res = within("headers", http1().request(gzip_req(addr, "/lines")))
        .await
        .unwrap();
    assert_eq!(res.headers()[http::header::CONTENT_ENCODING], "gzip");
    admitted(&drain).await;
    drain.trip();
    let bytes = within("body", res.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    let text = gunzip(&bytes).expect("a valid gzip stream");
    let expected: String = (0..20).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    assert_eq!(text, expected, "the application's lines, nothing added");
    within("server exit", server).await.unwrap().unwrap();
}

/// The order that works: compression outside `SseDrainLayer`, so the drain
/// layer sees plaintext and its terminal line is compressed with the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_outside_the_drain_layer_ends_compressed_streams_cleanly() {
    let drain = Drain::new();
    let app = Router::new()
        .route("/lines", get(|| async { lines(u32::MAX) }))
        .layer(SseDrainLayer::new(drain.signal()))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(drain.layer());
    let (addr, server) = serve_axum(app, drain.drained()).await;

    let res = within("headers", http1().request(gzip_req(addr, "/lines")))
        .await
        .unwrap();
    assert_eq!(res.headers()[http::header::CONTENT_ENCODING], "gzip");
    admitted(&drain).await;
    tokio::time::sleep(Duration::from_millis(20)).await; // a few lines out
    drain.trip();
    let bytes = within("body", res.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    let text = gunzip(&bytes).expect("a valid gzip stream");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("whole JSON lines"))
        .collect();
    let (end, tokens) = lines.split_last().unwrap();
    assert_eq!(end["type"], "end", "{text}");
    assert_eq!(end["reason"], "server_shutdown");
    for (i, token) in tokens.iter().enumerate() {
        assert_eq!(token["n"], i, "{text}");
    }
    within("drained", drain.drained()).await;
    within("server exit", server).await.unwrap().unwrap();
}

/// The same order, with a grace that outlasts the drain deadline: the
/// stream ends at the deadline, and its terminal line still goes out
/// compressed with the rest (the layer used to cut it there, since the
/// compressed body never says it is ending).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_outside_the_drain_layer_ends_compressed_streams_cleanly_at_the_deadline() {
    let drain = Drain::new();
    let app = Router::new()
        .route("/lines", get(|| async { lines(u32::MAX) }))
        .layer(SseDrainLayer::new(drain.signal()).grace(Duration::from_secs(3600)))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(drain.layer());
    let (addr, server) = serve_axum(app, drain.drained()).await;

    let res = within("headers", http1().request(gzip_req(addr, "/lines")))
        .await
        .unwrap();
    admitted(&drain).await;
    let client = tokio::spawn(res.into_body().collect());
    let report = within("shutdown", drain.shutdown(Duration::from_millis(50))).await;
    let bytes = within("body", client).await.unwrap().unwrap().to_bytes();
    let text = gunzip(&bytes).expect("a valid gzip stream");
    let end: serde_json::Value =
        serde_json::from_str(text.lines().last().unwrap()).expect("a whole JSON line");
    assert_eq!(end["type"], "end", "{text}");
    assert_eq!((report.ended_early(), report.cut()), (1, 0), "{report}");
    within("server exit", server).await.unwrap().unwrap();
}

/// A browser's `EventSource` that reconnects (after the terminal frame's
/// `retry:`) to an instance still draining gets an event stream it
/// reconnects from again, not a 503, on which it would give up for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_source_refused_after_the_trip_gets_a_stream_it_reconnects_from() {
    let drain = Drain::new();
    let app = Router::new()
        .route("/chat", get(chat))
        .layer(SseDrainLayer::new(drain.signal()))
        .layer(drain.layer().retry_after(Duration::from_secs(2)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, _server) = serve_axum(app, async move {
        let _ = stopped.await;
    })
    .await;
    drain.trip();

    let mut reconnect = get_req(addr, "/chat");
    reconnect
        .headers_mut()
        .insert(http::header::ACCEPT, "text/event-stream".parse().unwrap());
    reconnect
        .headers_mut()
        .insert("last-event-id", "41".parse().unwrap());
    let res = within("reconnect", http1().request(reconnect))
        .await
        .unwrap();
    assert_eq!(res.status(), http::StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
    assert_eq!(res.headers()[http::header::CONNECTION], "close");
    let events: Vec<Event> = res
        .into_body()
        .into_data_stream()
        .eventsource()
        .map(|event| event.expect("well-formed"))
        .collect()
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event, "end");
    assert_eq!(events[0].retry, Some(Duration::from_secs(2)));
    let data: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(data["reason"], "server_shutdown");

    // Anything else still gets the 503.
    let plain = within("plain", http1().request(get_req(addr, "/chat")))
        .await
        .unwrap();
    assert_eq!(plain.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    let _ = stop.send(());
}
