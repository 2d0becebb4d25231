//! Per-request cost of `DrainLayer` against a bare service and the
//! techniques users reach for today, side by side in one run.
//!
//! `single`: one thread. `contended`: two threads, each with its own clone,
//! started together; the time is per call per thread. Each mode runs in
//! rounds (7 and 15 by default, `ROUNDS=7,15`), each round with the cases in
//! a new shuffled order; `benches/summarize.py` takes the median over rounds.

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
    let sse = tower_drain_sse::SseDrainLayer::new(drain.signal());
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
        // `SseDrainLayer` under `DrainLayer`, as on an axum router, answering
        // a response that is not a stream: what it costs the other routes.
        (
            "DrainLayer + SseDrainLayer, non-streaming response",
            case(drain.layer().layer(sse.clone().layer(bare()))),
        ),
        (
            "DrainLayer + SseDrainLayer, non-streaming, cloned per request (axum route)",
            case(ClonePerRequest(drain.layer().layer(sse.layer(bare())))),
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

/// How many rounds of each mode to run: the method is 7 single-task
/// and 15 contended rounds. `ROUNDS=single,contended` overrides (`ROUNDS=1,1`
/// for a quick look).
fn rounds() -> (usize, usize) {
    let parse = |s: &str| s.trim().parse::<usize>().ok().filter(|&n| n > 0);
    std::env::var("ROUNDS")
        .ok()
        .and_then(|v| {
            let (single, contended) = v.split_once(',')?;
            Some((parse(single)?, parse(contended)?))
        })
        .unwrap_or((7, 15))
}

/// The case indices in a fresh order for each round, so that no case always
/// runs right after the same neighbour or at the same point of a drift.
/// (xorshift: a shuffle needs no better randomness, nor a dependency.)
fn shuffled(len: usize, round: usize) -> Vec<usize> {
    let mut state =
        0x9E37_79B9_7F4A_7C15_u64 ^ (round as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut order: Vec<usize> = (0..len).collect();
    for i in (1..len).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    order
}

/// Serves `iters` requests on each of two threads at once; the time is the
/// slower thread's.
fn contended(make: &MakeServe, iters: u64) -> Duration {
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
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let cases = cases(&rt);
    let (single_rounds, contended_rounds) = rounds();

    for round in 1..=single_rounds {
        let mut group = c.benchmark_group(format!("single-r{round:02}"));
        for i in shuffled(cases.len(), round) {
            let (name, make) = &cases[i];
            let mut serve = make();
            group.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(&mut serve));
        }
        group.finish();
    }

    for round in 1..=contended_rounds {
        let mut group = c.benchmark_group(format!("contended-r{round:02}"));
        for i in shuffled(cases.len(), round + single_rounds) {
            let (name, make) = &cases[i];
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| contended(make, iters))
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    targets = layer
}
criterion_main!(benches);
