//! Per-request cost of `DrainLayer` against a bare service and the
//! techniques users reach for today, side by side in one run.
//!
//! `single`: one thread. `contended`: two threads, each with its own clone,
//! started together; the time is per call per thread.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tower::limit::ConcurrencyLimitLayer;
use tower::{Layer, Service};
use tower_drain_benches::{bare, drive, ClonePerRequest, HoldLayer, ShardedCounter, SharedCounter};

/// Makes a request-serving closure on a fresh clone of one case's service.
type MakeServe = Box<dyn Fn() -> Box<dyn FnMut() + Send> + Sync>;

/// Every case, as a function that wraps the bare service and returns a
/// closure that serves one request on the service it owns.
fn cases(rt: &tokio::runtime::Runtime) -> Vec<(&'static str, MakeServe)> {
    fn case<S, B>(svc: S) -> MakeServe
    where
        S: Service<http::Request<()>, Response = http::Response<B>> + Clone + Send + Sync + 'static,
        S::Error: std::fmt::Debug,
        B: http_body::Body,
        B::Error: std::fmt::Debug,
    {
        Box::new(move || {
            let mut svc = svc.clone();
            Box::new(move || drive(&mut svc))
        })
    }

    let _enter = rt.enter();
    let drain = tower_drain::Drain::new();
    let (_signal, watch) = drain::channel();
    let tracker = tokio_util::task::TaskTracker::new();
    let graceful = tokio_graceful::Shutdown::new(std::future::pending::<()>());
    let graceful_guard = graceful.guard_weak();
    let shared = SharedCounter::default();
    let sharded = ShardedCounter::new(4);
    let watch_held = watch.clone();
    let tracker_per_request = tracker.clone();
    vec![
        ("bare", case(bare())),
        ("DrainLayer", case(drain.layer().layer(bare()))),
        (
            "ConcurrencyLimit",
            case(ConcurrencyLimitLayer::new(usize::MAX >> 4).layer(bare())),
        ),
        (
            "tower-http InFlightRequests",
            case(
                tower_http::metrics::InFlightRequestsLayer::pair()
                    .0
                    .layer(bare()),
            ),
        ),
        (
            "linkerd drain Retain",
            case(drain::Retain::new(watch, bare())),
        ),
        (
            "linkerd drain Watch held",
            case(HoldLayer::new(move || watch_held.clone()).layer(bare())),
        ),
        (
            "tokio-util TaskTracker",
            case(HoldLayer::new(move || tracker.token()).layer(bare())),
        ),
        (
            "tokio-graceful guard",
            case(HoldLayer::new(move || graceful_guard.clone().upgrade()).layer(bare())),
        ),
        (
            "DrainLayer, cloned per request (axum route)",
            case(ClonePerRequest(drain.layer().layer(bare()))),
        ),
        (
            "TaskTracker, cloned per request (axum route)",
            case(ClonePerRequest(
                HoldLayer::new(move || tracker_per_request.token()).layer(bare()),
            )),
        ),
        (
            "shared counter (naive)",
            case(HoldLayer::new(move || shared.admit()).layer(bare())),
        ),
        (
            "per-core words, counting only (floor sketch)",
            case(HoldLayer::new(move || sharded.admit()).layer(bare())),
        ),
    ]
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let cases = cases(&rt);

    let mut single = c.benchmark_group("single");
    for (name, make) in &cases {
        let mut serve = make();
        single.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(&mut serve));
    }
    single.finish();

    let mut contended = c.benchmark_group("contended");
    for (name, make) in &cases {
        contended.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let start = Barrier::new(2);
                std::thread::scope(|scope| {
                    let threads: Vec<_> = (0..2)
                        .map(|_| {
                            let mut serve = make();
                            let start = &start;
                            scope.spawn(move || {
                                serve(); // the thread's first admission picks its slot
                                start.wait();
                                let t = Instant::now();
                                for _ in 0..iters {
                                    serve();
                                }
                                t.elapsed()
                            })
                        })
                        .collect();
                    threads
                        .into_iter()
                        .map(|t| t.join().unwrap())
                        .max()
                        .unwrap_or(Duration::ZERO)
                })
            })
        });
    }
    contended.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = layer
}
criterion_main!(benches);
