//! Shared harness for the workspace integration tests: servers on 127.0.0.1,
//! real clients, a gate that lets a test decide when streams finish, and a
//! counting allocator.

pub mod alloc;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Generous bound that turns a hang into a failure; never a synchronisation.
pub const HANG: Duration = Duration::from_secs(20);

/// Runs `fut`, failing the test if it has not finished within [`HANG`].
pub async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(HANG, fut)
        .await
        .unwrap_or_else(|_| panic!("hung: {what}"))
}

/// Chunks every streaming response sends: the first at once, the rest once
/// the gate lets it through.
pub const CHUNKS: usize = 5;

/// The body a complete streaming response carries.
pub fn full_stream() -> String {
    (0..CHUNKS).map(|i| format!("chunk-{i}\n")).collect()
}

/// Holds streaming responses after their first chunk until the test opens
/// the gate for them, one permit per stream.
#[derive(Clone, Debug)]
pub struct Gate(Arc<Semaphore>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self(Arc::new(Semaphore::new(0)))
    }

    /// Lets `n` streams finish.
    pub fn open(&self, n: usize) {
        self.0.add_permits(n);
    }

    /// Waits until the test lets one more through.
    pub async fn pass(&self) {
        self.0.acquire().await.expect("gate never closes").forget();
    }

    /// A streaming body: `chunk-0`, then the gate, then the other chunks.
    pub fn stream(&self) -> Body {
        let gate = self.0.clone();
        let chunks = stream::unfold(0, move |i| {
            let gate = gate.clone();
            async move {
                if i == CHUNKS {
                    return None;
                }
                if i == 1 {
                    Gate(gate).pass().await;
                }
                Some((
                    Ok::<_, Infallible>(Bytes::from(format!("chunk-{i}\n"))),
                    i + 1,
                ))
            }
        });
        Body::from_stream(chunks)
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

/// An axum app: `/stream` (held by the gate after its first chunk), `/slow`
/// (whose response waits for the gate), `/hello`, `/ticks` (an endless
/// stream of small chunks) and `/forever` (headers, then nothing).
pub fn app(gate: Gate) -> Router {
    Router::new()
        .route(
            "/stream",
            get(|State(gate): State<Gate>| async move { gate.stream() }),
        )
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/slow",
            get(|State(gate): State<Gate>| async move {
                gate.pass().await;
                "slow"
            }),
        )
        .route(
            "/ticks",
            get(|| async {
                let ticks = stream::unfold(0u64, |i| async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Some((
                        Ok::<_, Infallible>(Bytes::from(format!("tick-{i}\n"))),
                        i + 1,
                    ))
                });
                Body::from_stream(ticks)
            }),
        )
        .route(
            "/forever",
            get(|| async { Body::from_stream(stream::pending::<Result<Bytes, Infallible>>()) }),
        )
        .with_state(gate)
}

/// `/flood`: 64 KiB chunks, endlessly: a client that stops reading fills
/// the socket, and the server stops polling the body.
pub fn flood() -> Router {
    Router::new().route(
        "/flood",
        get(|| async {
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            Body::from_stream(stream::repeat_with(move || {
                Ok::<_, Infallible>(chunk.clone())
            }))
        }),
    )
}

/// A listener on an ephemeral loopback port.
pub async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// Serves `app` with axum on an ephemeral loopback port until `shutdown`
/// resolves (then gracefully: the listener stops, connections finish).
pub async fn serve_axum<F>(
    app: Router,
    shutdown: F,
) -> (SocketAddr, JoinHandle<std::io::Result<()>>)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (listener, addr) = listen().await;
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    (addr, server)
}

/// Serves `svc` with hyper (HTTP/1.1 and HTTP/2 by prior knowledge) on every
/// connection the listener accepts, until the task is aborted.
pub fn serve_hyper<S>(listener: TcpListener, svc: S) -> JoinHandle<()>
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<tower_drain::layer::ResponseBody<Body>>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((io, _)) = listener.accept().await else {
                return;
            };
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                // Connection errors (a cut body, a client gone) are the point of
                // some tests; the client side asserts on them.
                let _ = builder.serve_connection(TokioIo::new(io), svc).await;
            });
        }
    })
}

/// An HTTP/1.1 client.
pub fn http1() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 client (prior knowledge, no TLS).
pub fn http2() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A GET for `path` on `addr`.
pub fn get_req(addr: SocketAddr, path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(format!("http://{addr}{path}"))
        .body(Empty::new())
        .expect("valid request")
}

/// Reads a whole body to a string.
pub async fn text<B>(body: B) -> Result<String, B::Error>
where
    B: http_body::Body,
{
    let bytes = body.collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
