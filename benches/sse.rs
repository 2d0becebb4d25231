//! `SseDrainLayer`'s body wrapper against the raw body it wraps: frames per
//! second for small SSE frames and for 64 KiB frames.

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use futures_util::FutureExt;
use http::{header, Request, Response};
use http_body::Body;
use tower::{Layer, Service, ServiceExt};
use tower_drain::Drain;
use tower_drain_benches::{PassThrough, RepeatBody, SseFloor};
use tower_drain_sse::SseDrainLayer;

/// Polls `body` to its end, as a server would.
fn drain_body<B: Body>(body: B)
where
    B::Error: std::fmt::Debug,
{
    let mut body = std::pin::pin!(body);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    while let std::task::Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        frame.expect("frame");
    }
}

fn sse(c: &mut Criterion) {
    let drain = Drain::new();
    let tripped = Arc::new(AtomicBool::new(false));
    let small = Bytes::from_static(b"id: 1234\ndata: {\"token\":\"hello\"}\n\n");
    let mut big = b"data: ".to_vec();
    big.resize(64 * 1024 - 2, b'x');
    big.extend_from_slice(b"\n\n");
    let big = Bytes::from(big);

    for (label, frame, n) in [("small", small, 100_000), ("64KiB", big, 1_000)] {
        let mut group = c.benchmark_group(format!("sse-{label}"));
        group.throughput(Throughput::Elements(n as u64));
        let plain = SseDrainLayer::new(drain.signal());
        let counting = SseDrainLayer::new(drain.signal()).on_cut(|cut| {
            std::hint::black_box(cut.events());
        });
        // The raw body as a struct the compiler sees through, and as the
        // boxed `axum::body::Body` an axum handler's response carries (what
        // `SseDrainLayer` wraps on an axum router).
        let raw = || RepeatBody::new(frame.clone(), n);
        let axum_body = || axum::body::Body::new(RepeatBody::new(frame.clone(), n));
        group.bench_function(BenchmarkId::from_parameter("raw body"), |b| {
            b.iter_batched(raw, drain_body, BatchSize::SmallInput)
        });
        group.bench_function(BenchmarkId::from_parameter("axum Body"), |b| {
            b.iter_batched(axum_body, drain_body, BatchSize::SmallInput)
        });
        // References, not peers: what any wrapper costs, and the least a
        // shutdown-aware one does per frame.
        group.bench_function(
            BenchmarkId::from_parameter("pass-through over raw body"),
            |b| {
                b.iter_batched(
                    || PassThrough::new(raw()),
                    drain_body,
                    BatchSize::SmallInput,
                )
            },
        );
        group.bench_function(
            BenchmarkId::from_parameter("pass-through over axum Body"),
            |b| {
                b.iter_batched(
                    || PassThrough::new(axum_body()),
                    drain_body,
                    BatchSize::SmallInput,
                )
            },
        );
        group.bench_function(
            BenchmarkId::from_parameter("floor sketch over raw body"),
            |b| {
                b.iter_batched(
                    || SseFloor::new(raw(), tripped.clone()),
                    drain_body,
                    BatchSize::SmallInput,
                )
            },
        );
        group.bench_function(
            BenchmarkId::from_parameter("floor sketch over axum Body"),
            |b| {
                b.iter_batched(
                    || SseFloor::new(axum_body(), tripped.clone()),
                    drain_body,
                    BatchSize::SmallInput,
                )
            },
        );
        for (name, layer) in [
            ("SseDrainLayer", &plain),
            ("SseDrainLayer + on_cut", &counting),
        ] {
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_batched(
                    || served(layer.layer(sse_response(raw()))),
                    drain_body,
                    BatchSize::SmallInput,
                )
            });
        }
        group.bench_function(
            BenchmarkId::from_parameter("SseDrainLayer over axum Body"),
            |b| {
                b.iter_batched(
                    || served(plain.layer(sse_response(axum_body()))),
                    drain_body,
                    BatchSize::SmallInput,
                )
            },
        );
        // The whole stack of a streaming route, as the README puts it on an
        // axum router: what a frame costs through both layers.
        group.bench_function(
            BenchmarkId::from_parameter("DrainLayer over axum Body"),
            |b| {
                b.iter_batched(
                    || served(drain.layer().layer(sse_response(axum_body()))),
                    drain_body,
                    BatchSize::SmallInput,
                )
            },
        );
        group.bench_function(
            BenchmarkId::from_parameter("DrainLayer + SseDrainLayer over axum Body"),
            |b| {
                b.iter_batched(
                    || served(drain.layer().layer(plain.layer(sse_response(axum_body())))),
                    drain_body,
                    BatchSize::SmallInput,
                )
            },
        );
        group.finish();
    }
}

/// A service answering one request with `body` as an SSE response.
fn sse_response<B>(
    body: B,
) -> impl Service<
    Request<()>,
    Response = Response<B>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<B>, Infallible>>,
> {
    let mut body = Some(body);
    tower::service_fn(move |_req: Request<()>| {
        let mut res = Response::new(body.take().expect("one request"));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/event-stream"),
        );
        std::future::ready(Ok(res))
    })
}

/// The body `svc` answers one request with: the body the server polls.
fn served<S, B>(svc: S) -> B
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    svc.oneshot(Request::new(()))
        .now_or_never()
        .expect("ready")
        .expect("no error")
        .into_body()
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = sse
}
criterion_main!(benches);
