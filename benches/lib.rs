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
