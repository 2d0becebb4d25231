//! P5: the layer allocates nothing per admitted request. A counting global
//! allocator (per thread, so the test harness's own threads do not count)
//! compares a bare service with the same service behind `DrainLayer`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service};
use tower_drain::Drain;

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
        // Pinned in place, as a server does: `ResponseBody` is `!Unpin`.
        let mut body = std::pin::pin!(res.into_body());
        while let Some(frame) = body.as_mut().frame().now_or_never().unwrap() {
            frame.unwrap();
        }
    }
    allocations() - before
}

#[test]
fn p5_no_allocation_per_request() {
    const N: usize = 1_000;
    let inner = tower::service_fn(|_req: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Full::new(
            Bytes::from_static(b"ok"),
        ))))
    });
    let drain = Drain::new();
    let mut bare = inner;
    let mut layered = drain.layer().layer(inner);
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
