//! Allocation counts (P5, S4): the layers allocate nothing per request, per
//! service clone, or per passed frame. Counts, not durations.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{stream, FutureExt};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, StreamBody};
use tower::{Layer, Service, ServiceExt};
use tower_drain::Drain;
use tower_drain_sse::SseDrainLayer;
use tower_drain_tests::alloc::{allocations, Counting};

#[global_allocator]
static COUNTING: Counting = Counting;

/// Allocations for `n` requests through `svc`, bodies read to their end.
fn allocations_for<S, B>(svc: &mut S, n: usize) -> usize
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    let before = allocations();
    for _ in 0..n {
        let res = svc.call(Request::new(())).now_or_never().unwrap().unwrap();
        // Pinned in place, as a server does: the bodies are `!Unpin`.
        let mut body = std::pin::pin!(res.into_body());
        while let Some(frame) = body.as_mut().frame().now_or_never().unwrap() {
            frame.unwrap();
        }
    }
    allocations() - before
}

type Answer = Result<Response<Full<Bytes>>, Infallible>;

/// A service that answers `{}` at once.
fn ok() -> impl Service<
    Request<()>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = std::future::Ready<Answer>,
> + Clone {
    tower::service_fn(|_req: Request<()>| {
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"{}")))))
    })
}

#[test]
fn drain_layer_allocates_nothing_per_request() {
    const N: usize = 1_000;
    let drain = Drain::new();
    let mut bare = ok();
    let mut layered = drain.layer().layer(ok());
    // Warm up: the first admission on a thread picks its slot.
    allocations_for(&mut layered, 1);
    allocations_for(&mut bare, 1);

    let bare = allocations_for(&mut bare, N);
    let layered = allocations_for(&mut layered, N);
    assert_eq!(bare, 0, "the baseline itself allocates nothing");
    assert_eq!(
        layered, 0,
        "the layer allocated {layered} times for {N} requests"
    );
    assert_eq!(drain.in_flight(), 0);
}

/// An inner service that is never ready: backpressure.
#[derive(Clone)]
struct Busy;

impl Service<Request<()>> for Busy {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Pending
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        unreachable!("never ready")
    }
}

/// Where axum and hyper-util clone the service per request, and the inner
/// service pushes back: waiting to be told of the trip costs no allocation
/// per clone (a place in the slot's list, reused).
#[test]
fn waiting_on_a_busy_inner_service_allocates_nothing_per_clone() {
    const N: usize = 1_000;
    let drain = Drain::new();
    let svc = drain.layer().layer(Busy);
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut wait = || {
        let mut clone = svc.clone();
        assert!(clone.poll_ready(&mut cx).is_pending());
    };
    wait();
    let before = allocations();
    for _ in 0..N {
        wait();
    }
    let made = allocations() - before;
    assert_eq!(made, 0, "{made} allocations for {N} clones' poll_ready");

    // And the trip still reaches a clone that waits.
    let mut clone = svc.clone();
    let ready = std::future::poll_fn(|cx| clone.poll_ready(cx));
    let mut ready = std::pin::pin!(ready);
    assert!(ready.as_mut().poll(&mut cx).is_pending());
    drain.trip();
    assert!(matches!(ready.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
}

/// Allocations while `n` SSE frames pass through the wrapper.
fn allocations_for_frames(n: usize) -> usize {
    let drain = Drain::new();
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = (0..n)
        .map(|i| {
            Ok(Frame::data(Bytes::from(format!(
                "id: {i}\ndata: token {i}\n\n"
            ))))
        })
        .collect();
    let mut frames = Some(frames);
    let svc =
        SseDrainLayer::new(drain.signal()).layer(tower::service_fn(move |_req: Request<()>| {
            let body = StreamBody::new(stream::iter(frames.take().expect("one request")));
            let mut res = Response::new(body);
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            std::future::ready(Ok::<_, Infallible>(res))
        }));
    let res = svc
        .oneshot(Request::new(()))
        .now_or_never()
        .unwrap()
        .unwrap();
    let mut body: Pin<&mut _> = std::pin::pin!(res.into_body());

    let before = allocations();
    let mut passed = 0;
    while let Some(frame) = body.frame().now_or_never().unwrap() {
        frame.unwrap();
        passed += 1;
    }
    assert_eq!(passed, n);
    allocations() - before
}

#[test]
fn sse_drain_layer_allocates_nothing_per_passed_frame() {
    let few = allocations_for_frames(10);
    let many = allocations_for_frames(10_000);
    assert!(few <= 3, "{few} allocations for 10 frames");
    assert_eq!(many, few, "allocations grew with the frame count");
}

#[test]
fn sse_drain_layer_allocates_nothing_for_a_response_that_is_not_a_stream() {
    let drain = Drain::new();
    let mut svc = SseDrainLayer::new(drain.signal()).layer(ok());
    allocations_for(&mut svc, 1);
    let made = allocations_for(&mut svc, 100);
    assert_eq!(made, 0, "allocations for 100 JSON responses");
}
