//! Shared pieces of the benches: the trivial inner service, a way to drive a
//! request to the end of its body without an executor, and a layer that holds
//! a guard per request until the body ends, which is how users wire the
//! peers (`TaskTracker`, `tokio-graceful`, linkerd `drain`) for body-aware
//! tracking.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Empty;
use pin_project_lite::pin_project;
use tower::{Layer, Service, ServiceExt};

/// The response future of [`bare`].
pub type BareFuture = std::future::Ready<Result<Response<Empty<Bytes>>, Infallible>>;

/// The inner service of every case: an empty `200`.
pub fn bare() -> impl Service<
    Request<()>,
    Response = Response<Empty<Bytes>>,
    Error = Infallible,
    Future = BareFuture,
> + Clone {
    tower::service_fn(|_req: Request<()>| std::future::ready(Ok(Response::new(Empty::new()))))
}

/// One request: `ready`, `call`, then the body polled to its end. The
/// futures of every case are ready at once, so one poll each (what an
/// executor does) drives them; no executor is timed.
#[inline]
pub fn drive<S, B>(svc: &mut S)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    let svc = svc
        .ready()
        .now_or_never()
        .expect("ready")
        .expect("no error");
    let res = svc
        .call(Request::new(()))
        .now_or_never()
        .expect("ready")
        .expect("ok");
    let mut body = pin!(res.into_body());
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        frame.expect("frame");
    }
}

/// Holds `G` from `call` until the response body ends.
#[derive(Clone, Debug)]
pub struct HoldLayer<F> {
    make: F,
}

impl<F> HoldLayer<F> {
    /// A guard from `make()` per request.
    pub fn new(make: F) -> Self {
        Self { make }
    }
}

impl<S, F: Clone> Layer<S> for HoldLayer<F> {
    type Service = Hold<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Hold {
            inner,
            make: self.make.clone(),
        }
    }
}

/// The service of [`HoldLayer`].
#[derive(Clone, Debug)]
pub struct Hold<S, F> {
    inner: S,
    make: F,
}

impl<S, F, G, B> Service<Request<()>> for Hold<S, F>
where
    S: Service<Request<()>, Response = Response<B>>,
    F: FnMut() -> G,
{
    type Response = Response<HeldBody<B, G>>;
    type Error = S::Error;
    type Future = HoldFuture<S::Future, G>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        let guard = (self.make)();
        HoldFuture {
            inner: self.inner.call(req),
            guard: Some(guard),
        }
    }
}

pin_project! {
    /// Response future of [`Hold`].
    pub struct HoldFuture<F, G> {
        #[pin]
        inner: F,
        guard: Option<G>,
    }
}

impl<F, G, B, E> Future for HoldFuture<F, G>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<HeldBody<B, G>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx))?;
        let guard = this.guard.take();
        Poll::Ready(Ok(res.map(|inner| HeldBody { inner, guard })))
    }
}

pin_project! {
    /// A body that holds a guard until it ends.
    pub struct HeldBody<B, G> {
        #[pin]
        inner: B,
        guard: Option<G>,
    }
}

impl<B: Body, G> Body for HeldBody<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if frame.is_none() {
            this.guard.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The design users write first: one shared counter, a flag, a `Notify`. It
/// is here to show what sharding buys; it also has the admit/trip race that
/// `DrainLayer` closes.
#[derive(Clone, Debug, Default)]
pub struct SharedCounter(Arc<SharedState>);

#[derive(Debug, Default)]
pub struct SharedState {
    count: AtomicUsize,
    tripped: AtomicBool,
    notify: tokio::sync::Notify,
}

/// What a [`SharedCounter`] hands out per request.
#[derive(Debug)]
pub struct SharedGuard(Arc<SharedState>);

impl SharedCounter {
    /// Counts one request, or `None` once tripped.
    pub fn admit(&self) -> Option<SharedGuard> {
        if self.0.tripped.load(Ordering::Acquire) {
            return None;
        }
        self.0.count.fetch_add(1, Ordering::AcqRel);
        Some(SharedGuard(self.0.clone()))
    }
}

impl Drop for SharedGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1
            && self.0.tripped.load(Ordering::Acquire)
        {
            self.0.notify.notify_waiters();
        }
    }
}

/// The floor the benchmarks issue names: per-core padded state words and
/// nothing else. Each thread admits on its own word (one `fetch_add`; the
/// tripped bit is in the same word, so admission and trip cannot race) and
/// releases with one `fetch_sub`. No rejection response, no deadline cut, no
/// `Connection: close`, no waiting: it is here to show, in the same run, what
/// the counting alone costs in this harness, against the whole `DrainLayer`.
#[derive(Clone, Copy, Debug)]
pub struct ShardedCounter {
    shards: &'static [Shard],
}

/// One word on its own cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Shard(AtomicUsize);

/// What a [`ShardedCounter`] hands out per request: the shard it counted on.
#[derive(Debug)]
pub struct ShardGuard(&'static Shard);

const SHARD_TRIPPED: usize = 1;
const SHARD_ONE: usize = 2;

impl ShardedCounter {
    /// A counter with `shards` words (rounded up to a power of two), leaked
    /// for the life of the bench.
    pub fn new(shards: usize) -> Self {
        let shards = shards.next_power_of_two();
        Self {
            shards: Vec::from_iter((0..shards).map(|_| Shard::default())).leak(),
        }
    }

    /// Counts one request on this thread's word, or `None` once tripped.
    #[inline]
    pub fn admit(&self) -> Option<ShardGuard> {
        let shard = &self.shards[thread_index() & (self.shards.len() - 1)];
        let prev = shard.0.fetch_add(SHARD_ONE, Ordering::Acquire);
        if prev & SHARD_TRIPPED != 0 {
            shard.0.fetch_sub(SHARD_ONE, Ordering::Release);
            return None;
        }
        Some(ShardGuard(shard))
    }

    /// Sets the tripped bit in every word: no admission from then on.
    pub fn trip(&self) {
        for shard in self.shards {
            shard.0.fetch_or(SHARD_TRIPPED, Ordering::AcqRel);
        }
    }

    /// Requests counted and not yet released, over all words.
    pub fn in_flight(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.0.load(Ordering::Acquire) / SHARD_ONE)
            .sum()
    }
}

impl Drop for ShardGuard {
    #[inline]
    fn drop(&mut self) {
        self.0 .0.fetch_sub(SHARD_ONE, Ordering::Release);
    }
}

/// This thread's number, in the order threads first ask.
#[inline]
fn thread_index() -> usize {
    use std::cell::Cell;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        if index.get() == usize::MAX {
            index.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        index.get()
    })
}

/// A body that yields the same frame `n` times: the raw stream the SSE bench
/// compares against.
#[derive(Clone, Debug)]
pub struct RepeatBody {
    frame: Bytes,
    left: usize,
}

impl RepeatBody {
    /// `frame`, `n` times.
    pub fn new(frame: Bytes, n: usize) -> Self {
        Self { frame, left: n }
    }
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(self.frame.clone()))))
    }
}

pin_project! {
    /// A body wrapper that does nothing but delegate: what wrapping a body
    /// costs by itself (one more call and one more copy of each frame's
    /// `Poll`), before a wrapper does any work of its own. A reference for
    /// the SSE bench, not a peer.
    pub struct PassThrough<B> {
        #[pin]
        inner: B,
    }
}

impl<B> PassThrough<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self { inner }
    }
}

impl<B: Body> Body for PassThrough<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// The least a shutdown-aware SSE wrapper does per frame, as a sketch:
    /// read the trip (one relaxed load) and note whether the frame ends
    /// at an event boundary (its last two bytes). No grace, no terminal
    /// frame, no CR handling: the SSE bench's floor, not a peer.
    pub struct SseFloor<B> {
        #[pin]
        inner: B,
        tripped: Arc<AtomicBool>,
        at_boundary: bool,
    }
}

impl<B> SseFloor<B> {
    /// Wraps `inner`, watching `tripped`.
    pub fn new(inner: B, tripped: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            tripped,
            at_boundary: true,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for SseFloor<B> {
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if this.tripped.load(Ordering::Relaxed) && *this.at_boundary {
            return Poll::Ready(None);
        }
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                *this.at_boundary = data.ends_with(b"\n\n");
            }
        }
        polled
    }
}

/// Clones its service for every request and calls the clone, as axum does
/// with a route's service (`Router::layer` puts a layer inside every route),
/// so a layer's `Clone` is paid per request.
#[derive(Clone, Debug)]
pub struct ClonePerRequest<S>(pub S);

impl<S, Req> Service<Req> for ClonePerRequest<S>
where
    S: Service<Req> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let mut svc = self.0.clone();
        svc.call(req)
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use bytes::Bytes;
    use http_body::Body;

    use super::{PassThrough, RepeatBody, ShardedCounter, SseFloor};

    /// The data frames `body` yields until it ends.
    fn frames(body: impl Body<Data = Bytes>) -> Vec<Bytes> {
        let mut body = pin!(body);
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = body.as_mut().poll_frame(&mut cx) {
            out.extend(frame.into_data().ok());
        }
        out
    }

    #[test]
    fn the_sse_references_pass_frames_and_the_floor_ends_at_a_boundary_once_tripped() {
        let event = Bytes::from_static(b"data: x\n\n");
        assert_eq!(
            frames(PassThrough::new(RepeatBody::new(event.clone(), 3))).len(),
            3
        );

        let tripped = Arc::new(AtomicBool::new(false));
        assert_eq!(
            frames(SseFloor::new(
                RepeatBody::new(event.clone(), 3),
                tripped.clone()
            ))
            .len(),
            3
        );
        tripped.store(true, Ordering::Relaxed);
        assert!(frames(SseFloor::new(RepeatBody::new(event, 3), tripped)).is_empty());
        // Tripped mid-event, the floor does not end there.
        let open = Arc::new(AtomicBool::new(false));
        let half = Bytes::from_static(b"data: x\n");
        let mut floor = pin!(SseFloor::new(RepeatBody::new(half, 3), open.clone()));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            floor.as_mut().poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        open.store(true, Ordering::Relaxed);
        assert!(matches!(
            floor.as_mut().poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
    }

    #[test]
    fn the_floor_sketch_counts_until_release_and_refuses_after_the_trip() {
        let counter = ShardedCounter::new(3);
        let first = counter.admit().expect("admitted while serving");
        let second = counter.admit().expect("admitted while serving");
        assert_eq!(counter.in_flight(), 2);
        counter.trip();
        assert!(counter.admit().is_none(), "refused once tripped");
        assert_eq!(counter.in_flight(), 2, "a refusal leaves no count behind");
        drop((first, second));
        assert_eq!(counter.in_flight(), 0);
    }
}
