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
use tower_drain_sse::{CutStream, SseDrainLayer};
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
        .layer(SseDrainLayer::new(drain.signal()).on_cut({
            let cuts = cuts.clone();
            move |cut: &CutStream<'_>| {
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
