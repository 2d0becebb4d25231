//! End to end: a hyper server on 127.0.0.1 with and without `DrainLayer`,
//! and `tower_drain::serve` against the hyper-util `auto` server it is built
//! on, loaded by an in-process hyper client. Bounded: each run lasts `RUN`
//! (at most `MAX_REQUESTS`), rounds alternate the cases, and the table gives
//! medians over rounds.
//!
//! `cargo bench -p tower-drain-benches --bench e2e`

use std::convert::Infallible;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::Layer;
use tower_drain::Drain;

const RUN: Duration = Duration::from_secs(3);
const ROUNDS: usize = 5;
const CONNECTIONS: usize = 16;
const MAX_REQUESTS: usize = 2_000_000;

fn hello(_req: Request<Incoming>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"hello")))))
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

/// Serves with hyper-util's `auto` builder (HTTP/1.1 and h2c), as
/// `tower_drain::serve` and `axum::serve` do, until the task is aborted.
async fn serve_auto<S, B>(svc: S) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>)
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
            let _ = io.set_nodelay(true);
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(io), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

/// `tower_drain::serve`, until the task is aborted; with its default HTTP/1
/// header read timeout, or none (hyper arms a timer for every request head).
async fn serve_drain<S, B>(
    svc: S,
    drain: &Drain,
    header_timeout: bool,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>)
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = tower_drain::serve(listener, svc, drain);
    let serve = if header_timeout {
        serve
    } else {
        serve.header_read_timeout(None)
    };
    let task = tokio::spawn(serve.into_future());
    (addr, task)
}

/// One run: requests per second, p50 and p99 latency.
type Run = (f64, Duration, Duration);

/// Loads `addr` for one run.
async fn load(addr: std::net::SocketAddr) -> Run {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (client, uri) = (client.clone(), uri.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while start.elapsed() < RUN && latencies.len() < MAX_REQUESTS / CONNECTIONS {
                    let t = Instant::now();
                    let res = client.get(uri.clone()).await.expect("request");
                    res.into_body().collect().await.expect("body");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    (
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
    )
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
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
        let cases = [
            "hyper http1, bare",
            "hyper http1, DrainLayer",
            "hyper-util auto, DrainLayer",
            "tower_drain::serve, DrainLayer",
            "tower_drain::serve, no header timeout",
        ];
        let mut results: Vec<Vec<Run>> = vec![Vec::new(); cases.len()];
        for round in 0..ROUNDS {
            for (i, (name, runs)) in cases.iter().zip(&mut results).enumerate() {
                let layered = drain.layer().layer(tower::service_fn(hello));
                let (addr, server) = match i {
                    0 => serve(tower::service_fn(hello)).await,
                    1 => serve(layered).await,
                    2 => serve_auto(layered).await,
                    3 => serve_drain(layered, &drain, true).await,
                    _ => serve_drain(layered, &drain, false).await,
                };
                let run = load(addr).await;
                server.abort();
                println!(
                    "round {round} {name:<32} {:>9.0} req/s  p50 {:>7.1?}  p99 {:>7.1?}",
                    run.0, run.1, run.2
                );
                runs.push(run);
            }
        }
        println!("\n| case | requests/s (median) | p50 | p99 |\n| --- | --- | --- | --- |");
        for (name, runs) in cases.iter().zip(&results) {
            let r = median(runs.iter().map(|r| r.0).collect());
            let p50 = median(runs.iter().map(|r| r.1).collect());
            let p99 = median(runs.iter().map(|r| r.2).collect());
            println!("| {name} | {r:.0} | {p50:.1?} | {p99:.1?} |");
        }
        // Rounds are paired (the machine's speed drifts between them), so the
        // ratio that counts is the median of the per-round ratios.
        for (case, reference) in [(1, 0), (3, 2), (4, 2)] {
            let ratios: Vec<f64> = results[case]
                .iter()
                .zip(&results[reference])
                .map(|(c, r)| c.0 / r.0)
                .collect();
            println!(
                "\n{} / {}: median of per-round ratios {:.3} (rounds: {})",
                cases[case],
                cases[reference],
                median(ratios.clone()),
                ratios
                    .iter()
                    .map(|r| format!("{r:.3}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    });
}
