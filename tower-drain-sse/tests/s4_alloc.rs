//! S4: frames pass through the wrapper without an allocation per frame. A
//! counting global allocator (per thread) shows the count does not grow with
//! the number of frames, `id:` lines included. A response that is not a
//! stream costs no allocation at all.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::BodyExt;
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};
use tower_drain::Drain;
use tower_drain_sse::SseDrainLayer;

mod common;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Allocations while `n` SSE frames pass through the wrapper.
fn allocations_for(n: usize) -> usize {
    let drain = Drain::new();
    let frames: Vec<Bytes> = (0..n)
        .map(|i| Bytes::from(format!("id: {i}\ndata: token {i}\n\n")))
        .collect();
    let layer = SseDrainLayer::new(drain.signal());
    let parts = frames.into_iter().map(common::Part::Data).collect();
    let mut body = std::pin::pin!(common::through(&layer, "text/event-stream", parts));

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
fn s4_no_allocation_per_passed_frame() {
    let few = allocations_for(10);
    let many = allocations_for(10_000);
    // The last-event-id buffers grow once; nothing is allocated per frame.
    assert!(few <= 3, "{few} allocations for 10 frames");
    assert_eq!(many, few, "allocations grew with the frame count");
}

#[test]
fn s4_a_response_that_is_not_a_stream_allocates_nothing() {
    let drain = Drain::new();
    let mut svc =
        SseDrainLayer::new(drain.signal()).layer(tower::service_fn(|_req: Request<()>| {
            std::future::ready(Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                Bytes::from_static(b"{}"),
            ))))
        }));
    let mut serve = || {
        let res = svc
            .ready()
            .now_or_never()
            .unwrap()
            .unwrap()
            .call(Request::new(()))
            .now_or_never()
            .unwrap()
            .unwrap();
        let mut body = std::pin::pin!(res.into_body());
        let frame = body.frame().now_or_never().unwrap().unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "{}");
        assert!(body.frame().now_or_never().unwrap().is_none());
    };
    serve();

    let before = allocations();
    for _ in 0..100 {
        serve();
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations for 100 JSON responses"
    );
}
