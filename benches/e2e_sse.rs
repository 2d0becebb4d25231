//! End to end for streams: a hyper server on 127.0.0.1 sends a long SSE
//! stream, with and without `DrainLayer` + `SseDrainLayer`, to a hyper
//! client reading it to its end. Bounded: each stream is `EVENTS` events;
//! rounds alternate the two cases, and the table gives medians over rounds
//! and the median of the per-round ratios.
//!
//! `cargo bench -p tower-drain-benches --bench e2e_sse`

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use futures_util::stream;
use http::header::CONTENT_TYPE;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::Layer;
use tower_drain::Drain;
use tower_drain_sse::SseDrainLayer;

const ROUNDS: usize = 7;
/// Events per stream: a token stream of an LLM is hundreds to thousands;
/// this many take a few hundred milliseconds here.
const EVENTS: usize = 200_000;
/// Streams read at once, each on its own connection.
const STREAMS: usize = 4;
/// One event of the stream, as axum's `Sse` writes a token with an id.
const EVENT: &[u8] = b"id: 41\ndata: token\n\n";

fn events(_req: Request<Incoming>) -> std::future::Ready<Result<Response<Body>, Infallible>> {
    let events = stream::iter((0..EVENTS).map(|_| Ok::<_, Infallible>(Bytes::from_static(EVENT))));
    let mut res = Response::new(Body::from_stream(events));
    res.headers_mut()
        .insert(CONTENT_TYPE, "text/event-stream".parse().unwrap());
    std::future::ready(Ok(res))
}

/// Serves on an ephemeral loopback port until the task is aborted.
async fn serve<S, B>(svc: S) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>)
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((io, _)) = listener.accept().await else {
                return;
            };
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(io), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

/// Reads `STREAMS` streams at once from `addr`; events per second.
async fn read(addr: std::net::SocketAddr) -> f64 {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
    let start = Instant::now();
    let readers: Vec<_> = (0..STREAMS)
        .map(|_| {
            let (client, uri) = (client.clone(), uri.clone());
            tokio::spawn(async move {
                let res = client.get(uri).await.expect("request");
                let mut body = res.into_body();
                let mut bytes = 0;
                while let Some(frame) = body.frame().await {
                    bytes += frame.expect("frame").into_data().map_or(0, |d| d.len());
                }
                bytes
            })
        })
        .collect();
    let mut bytes = 0;
    for reader in readers {
        bytes += reader.await.unwrap();
    }
    assert_eq!(bytes, STREAMS * EVENTS * EVENT.len(), "every event arrived");
    (STREAMS * EVENTS) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let drain = Drain::new();
        let layers = SseDrainLayer::new(drain.signal());
        let mut bare_runs = Vec::new();
        let mut layered_runs = Vec::new();
        for round in 0..ROUNDS {
            let (addr, server) = serve(tower::service_fn(events)).await;
            let bare = read(addr).await;
            server.abort();
            let (addr, server) = serve(
                drain
                    .layer()
                    .layer(layers.layer(tower::service_fn(events))),
            )
            .await;
            let layered = read(addr).await;
            server.abort();
            println!(
                "round {round}: bare {bare:>10.0} events/s, DrainLayer + SseDrainLayer {layered:>10.0} events/s ({:.3})",
                layered / bare
            );
            bare_runs.push(bare);
            layered_runs.push(layered);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ratios: Vec<f64> = layered_runs
            .iter()
            .zip(&bare_runs)
            .map(|(l, b)| l / b)
            .collect();
        println!("\n| case | events/s (median of {ROUNDS}) |\n| --- | ---: |");
        println!("| bare | {:.0} |", median(bare_runs.clone()));
        println!(
            "| DrainLayer + SseDrainLayer | {:.0} |",
            median(layered_runs.clone())
        );
        println!(
            "\nlayered / bare: median of per-round ratios {:.3} (rounds: {})",
            median(ratios.clone()),
            ratios
                .iter()
                .map(|r| format!("{r:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    });
}
