//! `SseDrainLayer`'s body wrapper against the raw body it wraps: frames per
//! second for small SSE frames and for 64 KiB frames.

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
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

/// One case: the time to poll to its end a body that `make` builds (outside
/// the timing).
fn case<B>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, mut make: impl FnMut() -> B)
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    group.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter_batched(&mut make, drain_body, BatchSize::SmallInput)
    });
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
        let counting = SseDrainLayer::new(drain.signal()).on_stream_end(|cut| {
            std::hint::black_box(cut.events());
        });
        // The raw body as a struct the compiler sees through, and as the
        // boxed `axum::body::Body` an axum handler's response carries (what
        // `SseDrainLayer` wraps on an axum router).
        let raw = || RepeatBody::new(frame.clone(), n);
        let axum_body = || axum::body::Body::new(RepeatBody::new(frame.clone(), n));
        case(&mut group, "raw body", raw);
        case(&mut group, "axum Body", axum_body);
        // References, not peers: what any wrapper costs, and the least a
        // shutdown-aware one does per frame.
        case(&mut group, "pass-through over raw body", || {
            PassThrough::new(raw())
        });
        case(&mut group, "pass-through over axum Body", || {
            PassThrough::new(axum_body())
        });
        case(&mut group, "floor sketch over raw body", || {
            SseFloor::new(raw(), tripped.clone())
        });
        case(&mut group, "floor sketch over axum Body", || {
            SseFloor::new(axum_body(), tripped.clone())
        });
        case(&mut group, "SseDrainLayer", || {
            served(plain.layer(sse_response(raw())))
        });
        case(&mut group, "SseDrainLayer + on_stream_end", || {
            served(counting.layer(sse_response(raw())))
        });
        case(&mut group, "SseDrainLayer over axum Body", || {
            served(plain.layer(sse_response(axum_body())))
        });
        // The whole stack of a streaming route, as the README puts it on an
        // axum router: what a frame costs through both layers.
        case(&mut group, "DrainLayer over axum Body", || {
            served(drain.layer().layer(sse_response(axum_body())))
        });
        case(
            &mut group,
            "DrainLayer + SseDrainLayer over axum Body",
            || served(drain.layer().layer(plain.layer(sse_response(axum_body())))),
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
