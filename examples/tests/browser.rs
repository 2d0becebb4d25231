//! The chat page in a real browser: Debian's headless Chromium, driven over
//! the DevTools protocol (`scripts/browser-test` installs it; CI runs it).
//!
//! A page whose `EventSource` reconnects into an instance that is still
//! draining must keep reconnecting: `EventSource` gives up for good on any
//! answer but `200 text/event-stream`, so a `503` there would end the chat.
//! The drain answers it with an event stream that carries only the terminal
//! event and a `retry:`, and the page reconnects until an instance serves
//! it, then resumes with `Last-Event-ID`: the answer ends up whole, with no
//! gap and no duplicate. Over a WebSocket (`?transport=ws`) the page does
//! the same by hand: at Close `1001` it shows the reason's message and
//! reconnects with `last=`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::sse::{Event, Sse};
use axum::response::{Html, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream;
use tokio::net::TcpListener;
use tower_drain::Drain;
use tower_drain_sse::SseDrainLayer;
use tower_drain_tests::within;

mod common;
use common::browser::{self, Browser};
use common::Process;

/// The page of the `chat-sse` example, as it ships.
const PAGE: &str = include_str!("../chat-sse/index.html");
/// Tokens in the answer.
const TOKENS: u64 = 40;

/// A request `/chat` as an instance saw it.
#[derive(Clone, Debug)]
struct Seen {
    instance: &'static str,
    last_event_id: Option<u64>,
    status: u16,
    event_stream: bool,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// `/chat`: the answer's tokens `t0`..`t39`, one every 40 ms, resumed after
/// `Last-Event-ID`.
async fn chat(
    headers: HeaderMap,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let next = last_event_id(&headers).map_or(0, |last| last + 1);
    Sse::new(stream::unfold(next, |i| async move {
        if i >= TOKENS {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        let event = Event::default().id(i.to_string()).data(format!("t{i}"));
        Some((Ok(event), i + 1))
    }))
}

fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers.get("last-event-id")?.to_str().ok()?.parse().ok()
}

/// Records every `/chat` request and its answer, outside the drain.
async fn record(
    State((instance, log)): State<(&'static str, Log)>,
    req: Request,
    next: Next,
) -> Response {
    let last_event_id = last_event_id(req.headers());
    let chat = req.uri().path() == "/chat";
    let res = next.run(req).await;
    if chat {
        let event_stream = res
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|ct| ct == "text/event-stream");
        log.lock().unwrap().push(Seen {
            instance,
            last_event_id,
            status: res.status().as_u16(),
            event_stream,
        });
    }
    res
}

/// One instance of the chat server: the page and `/chat`, behind both
/// drain layers, with short retry hints to keep the test quick.
fn instance(name: &'static str, drain: &Drain, log: &Log) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/chat", get(chat))
        .layer(SseDrainLayer::new(drain.signal()).retry(Some(Duration::from_millis(300))))
        .layer(drain.layer().retry_after(Duration::from_secs(1)))
        .layer(axum::middleware::from_fn_with_state(
            (name, log.clone()),
            record,
        ))
}

/// Serves `app` on `listener` until `stop` is sent.
fn serve(
    listener: TcpListener,
    app: Router,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .expect("the server runs");
    });
    (stop, server)
}

fn answer_of(tokens: std::ops::Range<u64>) -> String {
    tokens.map(|i| format!("t{i} ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's chromium: run scripts/browser-test"]
async fn the_chat_page_keeps_reconnecting_through_a_drain_and_resumes_the_answer_whole() {
    let log = Log::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let a = Drain::new();
    let (stop_a, server_a) = serve(listener, instance("a", &a, &log));

    let browser = Browser::launch("chat").await;
    let page = browser.open_watched(&format!("http://{addr}/")).await;
    let answer = "document.getElementById('answer').textContent";
    browser::wait_for::<String>(&page, "a few tokens", answer, |text| {
        text.split_whitespace().count() >= 5
    })
    .await;

    // Instance A drains: the stream ends with its terminal event, and the
    // page's reconnections meet the drain's refusal.
    a.trip();
    let shown: String = browser::wait_for(&page, "the notice", NOTICE, |text: &String| {
        !text.is_empty()
    })
    .await;
    assert!(shown.contains("shutting down"), "{shown}");
    let refused = || {
        log.lock()
            .unwrap()
            .iter()
            .filter(|seen| seen.instance == "a" && seen.last_event_id.is_some())
            .count()
    };
    within("two refused reconnections", async {
        while refused() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let ready_state: u8 = browser::eval(&page, "watched.sources[0].readyState").await;
    assert_ne!(ready_state, 2, "EventSource gave up (CLOSED)");
    let shot = browser::screenshot(&page, "chat-draining").await;
    eprintln!("screenshot: {}", shot.display());

    // A stops; B starts on the same address, and the page resumes there.
    let _ = stop_a.send(());
    within("instance a stops", server_a).await.unwrap();
    let b = Drain::new();
    let listener = TcpListener::bind(addr).await.unwrap();
    let (stop_b, server_b) = serve(listener, instance("b", &b, &log));
    let whole = answer_of(0..TOKENS);
    let text: String = browser::wait_for(&page, "the whole answer", answer, |text: &String| {
        text.len() >= whole.len()
    })
    .await;
    assert_eq!(
        text, whole,
        "every token once, in order: no gap, no duplicate"
    );
    let shot = browser::screenshot(&page, "chat-resumed").await;
    eprintln!("screenshot: {}", shot.display());
    browser.close().await;

    let seen = log.lock().unwrap().clone();
    eprintln!("{seen:#?}");
    let refusals: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.instance == "a" && s.last_event_id.is_some())
        .collect();
    for refusal in &refusals {
        assert_eq!(
            (refusal.status, refusal.event_stream),
            (200, true),
            "{refusal:?}"
        );
    }
    let resumed = seen
        .iter()
        .find(|s| s.instance == "b")
        .expect("the page reconnected to b");
    assert_eq!(
        resumed.last_event_id, refusals[0].last_event_id,
        "b resumed after the last token a sent"
    );
    let _ = stop_b.send(());
    within("instance b stops", server_b).await.unwrap();
}

/// The ids of the tokens the chat page shows, in order.
const SHOWN_IDS: &str =
    "Array.from(document.querySelectorAll('#answer span')).map(s => Number(s.dataset.id))";

/// The notice the page shows at the drain's terminal frame.
const NOTICE: &str = "document.getElementById('notice').style.display === 'block' ? document.getElementById('notice').textContent : ''";
/// What the chat example's terminal frame says, and the page shows.
const RESTARTING: &str = "the server is restarting; reconnecting resumes your answer";

/// A free port on 127.0.0.1, and a partial-output file of its own for
/// the test `name`.
fn address_and_partial(name: &str) -> (String, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let partial = std::env::temp_dir().join(format!(
        "tower-drain-browser-{name}-{}.jsonl",
        std::process::id()
    ));
    (
        format!("127.0.0.1:{port}"),
        partial.to_str().unwrap().to_owned(),
    )
}

/// The `chat-sse` example as it ships, on `addr`.
fn chat_example(addr: &str, partial: &str) -> Process {
    Process::example(
        env!("CARGO_BIN_EXE_chat-sse"),
        &[
            ("ADDR", addr),
            ("DRAIN_DEADLINE_SECS", "30"),
            ("SSE_RETRY_MS", "500"),
            ("PARTIAL_OUTPUT", partial),
        ],
    )
    .0
}

/// SIGTERM to the example in the middle of the page's answer: the page
/// shows the drain's notice once, and the example exits 0 with the stream
/// ended early. Returns the ids of the tokens the page had then.
async fn stop_mid_answer(page: &chromiumoxide::Page, server: Process) -> Vec<usize> {
    server.sigterm();
    let shown: String =
        browser::wait_for(page, "the notice", NOTICE, |text: &String| !text.is_empty()).await;
    assert!(
        shown.starts_with("The server is restarting; reconnecting resumes your answer"),
        "the notice, once, from the terminal frame: {shown}"
    );
    let (status, _, report) = tokio::task::block_in_place(|| server.exit());
    assert!(status.success(), "{report}");
    assert!(report.contains("1 ended early"), "{report}");
    browser::eval(page, SHOWN_IDS).await
}

/// The page ends up with the whole answer, tokens `0..tokens`, each once
/// and in order, although the restart came mid-answer (at `cut_at`).
async fn assert_whole_answer(page: &chromiumoxide::Page, tokens: usize, cut_at: &[usize]) {
    let ids: Vec<usize> =
        browser::wait_for(page, "the whole answer", SHOWN_IDS, |ids: &Vec<usize>| {
            ids.len() >= tokens
        })
        .await;
    assert!(cut_at.len() < tokens, "the restart came mid-answer");
    assert_eq!(
        ids,
        (0..tokens).collect::<Vec<_>>(),
        "every token once, in order: no gap, no duplicate"
    );
}

/// The example itself, stopped and started again under an open page: the
/// stream ends with the terminal frame at SIGTERM, the page says so, and
/// once the server is back its `EventSource` reconnects with
/// `Last-Event-ID` and the answer completes, every token once, in order
/// (had the id not been sent, the answer would start over: duplicates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's chromium: run scripts/browser-test"]
async fn the_chat_example_resumes_its_answer_across_a_restart() {
    const TOKENS: usize = 30;
    let (addr, partial) = address_and_partial("partial");
    let server = chat_example(&addr, &partial);

    let browser = Browser::launch("chat-example").await;
    let page = browser.open(&format!("http://{addr}/?n={TOKENS}")).await;
    browser::wait_for::<Vec<usize>>(&page, "a few tokens", SHOWN_IDS, |ids| ids.len() >= 5).await;

    let cut_at = stop_mid_answer(&page, server).await;
    let shot = browser::screenshot(&page, "chat-example-restarting").await;
    eprintln!("screenshot: {}", shot.display());

    let server = chat_example(&addr, &partial);
    assert_whole_answer(&page, TOKENS, &cut_at).await;
    let shot = browser::screenshot(&page, "chat-example-resumed").await;
    eprintln!("screenshot: {}", shot.display());
    browser.close().await;

    server.sigterm();
    tokio::task::block_in_place(|| server.exit());
    let saved = std::fs::read_to_string(&partial).unwrap_or_default();
    let _ = std::fs::remove_file(&partial);
    assert!(
        saved.contains("\"ending\":\"ended early\""),
        "the hook saved the partial answer: {saved}"
    );
}

/// A WebSocket the page opened, as `watched.sockets` recorded it.
#[derive(Debug, serde::Deserialize)]
struct SocketSeen {
    url: String,
    opened: bool,
    /// The `close` event's code and reason, once it has closed.
    code: Option<u16>,
    reason: Option<String>,
}

/// The same restart under the page streaming over a WebSocket
/// (`?transport=ws`): at SIGTERM the drain closes the socket with `1001`
/// and its JSON as the reason, after the last whole token; the page shows
/// the notice from that reason, keeps trying while the server is away, and
/// once it is back opens a socket with `last=` (the id of the last token
/// it has): the answer completes, every token once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's chromium: run scripts/browser-test"]
async fn the_chat_example_resumes_its_websocket_answer_across_a_restart() {
    const TOKENS: usize = 30;
    let (addr, partial) = address_and_partial("ws-partial");
    let server = chat_example(&addr, &partial);

    let browser = Browser::launch("chat-example-ws").await;
    let page = browser
        .open_watched(&format!("http://{addr}/?transport=ws&n={TOKENS}"))
        .await;
    browser::wait_for::<Vec<usize>>(&page, "a few tokens", SHOWN_IDS, |ids| ids.len() >= 5).await;
    let transport: String = browser::eval(&page, "document.body.dataset.transport").await;
    assert_eq!(transport, "ws");

    let cut_at = stop_mid_answer(&page, server).await;
    let sockets: Vec<SocketSeen> = browser::eval(&page, "watched.sockets").await;
    let first = &sockets[0];
    assert_eq!(first.code, Some(1001), "{sockets:?}");
    let reason: serde_json::Value =
        serde_json::from_str(first.reason.as_deref().unwrap_or_default()).expect("a JSON reason");
    assert_eq!(
        (&reason["type"], &reason["reason"], &reason["message"]),
        (&"end".into(), &"server_shutdown".into(), &RESTARTING.into()),
        "{reason}"
    );
    let shot = browser::screenshot(&page, "chat-example-ws-restarting").await;
    eprintln!("screenshot: {}", shot.display());

    let server = chat_example(&addr, &partial);
    assert_whole_answer(&page, TOKENS, &cut_at).await;
    // The answer's own end: `done`, then the server's Close 1000.
    browser::wait_for::<bool>(
        &page,
        "the last socket closed 1000",
        "document.getElementById('status').textContent === 'done' && watched.sockets.at(-1).code === 1000",
        |done| *done,
    )
    .await;
    let shot = browser::screenshot(&page, "chat-example-ws-resumed").await;
    eprintln!("screenshot: {}", shot.display());
    let sockets: Vec<SocketSeen> = browser::eval(&page, "watched.sockets").await;
    browser.close().await;
    eprintln!("{sockets:#?}");

    // Every socket after the first asked for the tokens after the last the
    // page had; those opened while the server was away failed (1006), and
    // the one that opened finished the answer.
    let last = cut_at.last().expect("tokens before the restart");
    let resumed: Vec<&SocketSeen> = sockets[1..].iter().filter(|s| s.opened).collect();
    assert_eq!(resumed.len(), 1, "{sockets:?}");
    for socket in &sockets[1..] {
        assert!(socket.url.ends_with(&format!("&last={last}")), "{socket:?}");
        if !socket.opened {
            assert_eq!(socket.code, Some(1006), "{socket:?}");
        }
    }

    server.sigterm();
    tokio::task::block_in_place(|| server.exit());
    let saved = std::fs::read_to_string(&partial).unwrap_or_default();
    let _ = std::fs::remove_file(&partial);
    let saved: Vec<serde_json::Value> = saved
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(saved[0]["ending"], "ended early", "{saved:?}");
    assert_eq!(
        saved[0]["events"],
        cut_at.len(),
        "the hook counted the tokens the page got: {saved:?}"
    );
}
