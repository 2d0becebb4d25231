//! How soon `drained()` wakes after the last admitted body ends, against a
//! waiter on a bare `tokio::sync::Notify` woken the same way.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use futures_util::FutureExt;
use http::Request;
use tower::{Layer, ServiceExt};
use tower_drain::Drain;
use tower_drain_benches::bare;

/// Lets a just-spawned waiter reach its first `Pending` before the wake.
const PARK: Duration = Duration::from_micros(200);

fn wake(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("wake");

    group.bench_function(
        BenchmarkId::from_parameter("drained() after last release"),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let drain = Drain::new();
                    let res = drain
                        .layer()
                        .layer(bare())
                        .oneshot(Request::new(()))
                        .now_or_never()
                        .unwrap()
                        .unwrap();
                    drain.trip();
                    let waiter = rt.spawn({
                        let drained = drain.drained();
                        async move {
                            drained.await;
                            Instant::now()
                        }
                    });
                    std::thread::sleep(PARK);
                    let released = Instant::now();
                    drop(res); // the last body ends
                    let woke = rt.block_on(waiter).unwrap();
                    total += woke.saturating_duration_since(released);
                }
                total
            })
        },
    );

    group.bench_function(
        BenchmarkId::from_parameter("tokio Notify (baseline)"),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
                    let waiter = rt.spawn({
                        let notify = notify.clone();
                        async move {
                            notify.notified().await;
                            Instant::now()
                        }
                    });
                    std::thread::sleep(PARK);
                    let released = Instant::now();
                    notify.notify_waiters();
                    let woke = rt.block_on(waiter).unwrap();
                    total += woke.saturating_duration_since(released);
                }
                total
            })
        },
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = wake
}
criterion_main!(benches);
