use std::fmt;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::exempt::RequestHead;
use super::reject::Head;
use super::{DefaultReject, Exempt, NoExempt, Reject, Rejection, ResponseBody, ResponseFuture};
use crate::state::{current_slot, Admission, Registration, ServiceRef};
use crate::BoxError;

/// The service made by [`DrainLayer`](super::DrainLayer).
///
/// While serving, it passes requests on and counts each until its response
/// body ends; its readiness is the inner service's. Once the drain has
/// tripped, it answers with the rejection instead of calling the inner
/// service, and it is ready at once: a refusal never waits for an inner
/// service that is not ready (as tower's `load_shed`), and no request is
/// passed to an inner service that was not polled ready.
///
/// Cloning it writes nothing shared (axum clones a route's service for
/// every request). A service that outlives every `Drain`, `DrainSignal` and
/// `DrainLayer` of its drain passes requests through, uncounted, once the
/// drain's state has been reused: nothing could trip that drain any more.
pub struct DrainService<S, R = DefaultReject, E = NoExempt> {
    inner: S,
    drain: ServiceRef,
    reject: R,
    exempt: E,
    /// The last `poll_ready` found the drain tripped and the inner service
    /// not ready: the next call is refused, whatever it is.
    refusing: bool,
    /// Wakes a `poll_ready` that waits on the inner service at the trip.
    /// Made only once the inner service has made a caller wait (a place in
    /// the slot's list, reused: no allocation per request).
    waiting: Option<Registration>,
}

impl<S: Clone, R: Clone, E: Clone> Clone for DrainService<S, R, E> {
    /// A clone has not been polled ready, as tower's services go.
    fn clone(&self) -> Self {
        Self::new(
            self.inner.clone(),
            self.drain,
            self.reject.clone(),
            self.exempt.clone(),
        )
    }
}

impl<S: fmt::Debug, R: fmt::Debug, E> fmt::Debug for DrainService<S, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainService")
            .field("inner", &self.inner)
            .field("drain", &self.drain)
            .field("reject", &self.reject)
            .finish_non_exhaustive()
    }
}

impl<S, R, E> DrainService<S, R, E> {
    pub(crate) fn new(inner: S, drain: ServiceRef, reject: R, exempt: E) -> Self {
        Self {
            inner,
            drain,
            reject,
            exempt,
            refusing: false,
            waiting: None,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, E, ReqBody, ResBody> Service<Request<ReqBody>> for DrainService<S, R, E>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
    R: Reject,
    E: Exempt,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, R>;

    /// The inner service's readiness while serving, never counted; a drain
    /// never fails it (an error here means "discard this service"). Once
    /// tripped, ready at once: if the inner service is not, the next call is
    /// refused without reaching it.
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(ready) => {
                self.refusing = false;
                Poll::Ready(ready)
            }
            // Backpressure while serving; woken at the trip as well, since a
            // refusal must not wait for the inner service.
            Poll::Pending => {
                if !self
                    .drain
                    .poll_tripped(current_slot(), &mut self.waiting, cx)
                {
                    return Poll::Pending;
                }
                self.refusing = true;
                Poll::Ready(Ok(()))
            }
        }
    }

    #[inline]
    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if self.refusing {
            // The inner service was not ready: it cannot take this request,
            // exempt or not, and the caller may not wait for it.
            self.refusing = false;
            self.drain.count_refusal(current_slot());
            return ResponseFuture::refused(Rejection::refused(&req), self.reject.clone());
        }
        if self.exempt.is_exempt(&RequestHead::new(&req)) {
            return ResponseFuture::passed(self.inner.call(req), self.reject.clone());
        }
        match self.drain.try_admit(current_slot()) {
            Admission::Admitted(guard) => {
                let head = Head::of(&req);
                ResponseFuture::admitted(self.inner.call(req), guard, head, self.reject.clone())
            }
            Admission::Refused => {
                ResponseFuture::refused(Rejection::refused(&req), self.reject.clone())
            }
            Admission::Stale => ResponseFuture::passed(self.inner.call(req), self.reject.clone()),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::Ordering;

    use futures_util::FutureExt;
    use http::{Request, Response, StatusCode};
    use http_body_util::BodyExt;
    use tower::{Layer, Service, ServiceExt};
    use tower_test::mock;

    use crate::test_support::{counting_service, full, request, streaming, TestBody};
    use crate::Drain;

    #[tokio::test]
    async fn exempt_requests_pass_uncounted_and_are_never_refused() {
        let drain = Drain::new();
        let (calls, inner) = counting_service();
        let svc = drain
            .layer()
            .exempt(|req| req.uri().path() == "/readyz")
            .layer(inner);
        let probe = || Request::get("/readyz").body(()).unwrap();

        let res = svc.clone().oneshot(probe()).await.unwrap();
        assert_eq!(drain.in_flight(), 0, "an exempt response is not counted");
        drain.trip();
        drain.drained().await;
        let after = svc.clone().oneshot(probe()).await.unwrap();
        assert_eq!(after.status(), StatusCode::OK);
        assert!(after.headers().get(http::header::CONNECTION).is_none());
        let refused = svc
            .clone()
            .oneshot(Request::get("/").body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "both probes, not the refused one"
        );
        let body = after.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "ok");
        drop(res);
    }

    #[tokio::test]
    async fn refused_after_trip_never_reaches_the_service() {
        let drain = Drain::new();
        let (calls, inner) = counting_service();
        let mut svc = drain.layer().layer(inner);

        request(&mut svc).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        drain.trip();
        for _ in 0..3 {
            let res = request(&mut svc).await;
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "inner saw a request after trip"
        );
    }

    #[tokio::test]
    async fn a_request_counts_until_its_body_ends_not_its_future() {
        let drain = Drain::new();
        let (tx, res) = streaming(&drain).await;
        assert_eq!(drain.in_flight(), 1, "resolved future, body still open");

        drain.trip();
        let mut drained = std::pin::pin!(drain.drained());
        assert!(drained.as_mut().now_or_never().is_none(), "body still open");

        tx.send(Ok("chunk".into())).unwrap();
        drop(tx);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "chunk");
        assert_eq!(drain.in_flight(), 0);
        drained.await;
    }

    #[tokio::test]
    async fn the_count_returns_to_zero_on_an_inner_error() {
        let drain = Drain::new();
        let mut svc = drain
            .layer()
            .layer(tower::service_fn(|_req: Request<()>| async {
                Err::<Response<TestBody>, _>("handler failed")
            }));
        let err = svc
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap_err();
        assert_eq!(err, "handler failed");
        assert_eq!(drain.in_flight(), 0);
    }

    #[tokio::test]
    async fn the_count_returns_to_zero_when_the_handler_panics() {
        let drain = Drain::new();
        let svc = drain
            .layer()
            .layer(tower::service_fn(|_req: Request<()>| async {
                if true {
                    panic!("handler panicked");
                }
                Ok::<Response<TestBody>, Infallible>(Response::new(full("")))
            }));
        let task = tokio::spawn(svc.oneshot(Request::new(())));
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(drain.in_flight(), 0);
    }

    #[tokio::test]
    async fn the_count_returns_to_zero_when_the_future_is_dropped() {
        let drain = Drain::new();
        let mut svc = drain
            .layer()
            .layer(tower::service_fn(|_req: Request<()>| async {
                std::future::pending::<()>().await;
                Ok::<Response<TestBody>, Infallible>(Response::new(full("")))
            }));
        let fut = svc.ready().await.unwrap().call(Request::new(()));
        assert_eq!(drain.in_flight(), 1);
        drop(fut);
        assert_eq!(drain.in_flight(), 0);
    }

    #[tokio::test]
    async fn the_count_returns_to_zero_when_the_body_is_dropped_mid_stream() {
        let drain = Drain::new();
        let (tx, res) = streaming(&drain).await;
        tx.send(Ok("first".into())).unwrap();
        let mut body = Box::pin(res.into_body());
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "first");
        assert_eq!(drain.in_flight(), 1);
        drop(body);
        assert_eq!(drain.in_flight(), 0);
    }

    #[tokio::test]
    async fn the_count_returns_to_zero_when_the_body_errors() {
        let drain = Drain::new();
        let (tx, res) = streaming(&drain).await;
        tx.send(Err(std::io::Error::other("upstream broke")))
            .unwrap();
        let mut body = Box::pin(res.into_body());
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "upstream broke");
        // Given back at the error, not at the drop.
        assert_eq!(drain.in_flight(), 0);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn readiness_is_the_inner_services_and_never_counts() {
        let drain = Drain::new();
        let (mut svc, mut handle) =
            mock::spawn_layer::<Request<()>, Response<TestBody>, _>(drain.layer());

        handle.allow(0);
        assert!(
            svc.poll_ready().is_pending(),
            "inner not ready, layer not ready"
        );
        handle.send_error("broken");
        let err = match svc.poll_ready() {
            std::task::Poll::Ready(Err(err)) => err,
            other => panic!("expected the inner error, got {other:?}"),
        };
        assert_eq!(err.to_string(), "broken");
        assert_eq!(drain.in_flight(), 0);

        let (mut svc, mut handle) =
            mock::spawn_layer::<Request<()>, Response<TestBody>, _>(drain.layer());
        handle.allow(1);
        drain.trip();
        // Tripped, yet readiness is the inner service's and nothing is counted.
        assert!(svc.poll_ready().is_ready());
        assert_eq!(drain.in_flight(), 0);
    }

    /// A refusal never waits for the inner service: with a concurrency limit
    /// held by a slow handler, a request after the trip is answered at once.
    #[tokio::test]
    async fn a_refusal_does_not_wait_for_an_inner_service_that_is_not_ready() {
        let drain = Drain::new();
        let (mut svc, mut handle) =
            mock::spawn_layer::<Request<()>, Response<TestBody>, _>(drain.layer());
        handle.allow(0);
        assert!(svc.poll_ready().is_pending(), "backpressure while serving");

        drain.trip();
        assert!(
            svc.is_woken(),
            "the wait for readiness is woken at the trip"
        );
        assert!(svc.poll_ready().is_ready(), "ready at once once tripped");
        let res = svc.call(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            handle.poll_request().is_pending(),
            "the inner service never saw the request"
        );
        assert_eq!(drain.in_flight(), 0);

        // Once the inner service is ready again, the drain refuses as usual.
        handle.allow(1);
        assert!(svc.poll_ready().is_ready());
        let res = svc.call(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(handle.poll_request().is_pending());
        let report = drain.shutdown(std::time::Duration::ZERO).await;
        assert_eq!(report.refused(), 2);
    }

    /// An exempt request after the trip still needs the inner service: when
    /// it is not ready, the request is refused, not passed to it unready and
    /// not kept waiting.
    #[tokio::test]
    async fn an_exempt_request_is_refused_while_the_tripped_inner_service_is_not_ready() {
        let drain = Drain::new();
        let (mut svc, mut handle) =
            mock::spawn_layer::<Request<()>, Response<TestBody>, _>(drain.layer().exempt(|_| true));
        handle.allow(0);
        drain.trip();
        assert!(svc.poll_ready().is_ready());
        let res = svc.call(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(handle.poll_request().is_pending());

        handle.allow(1);
        assert!(svc.poll_ready().is_ready());
        let answered = svc.call(Request::new(()));
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(Response::new(full("probe")));
        assert_eq!(answered.await.unwrap().status(), StatusCode::OK);
    }

    /// A clone has not been polled ready: it does not inherit a refusal
    /// decided for the service it was cloned from.
    #[tokio::test]
    async fn a_clone_starts_unpolled() {
        let drain = Drain::new();
        let (_, inner) = counting_service();
        let mut svc = drain.layer().layer(inner);
        svc.refusing = true;
        assert!(!svc.clone().refusing);
        assert!(svc.clone().waiting.is_none());
    }

    #[test]
    fn the_error_is_the_inner_error_so_axum_needs_no_handle_error() {
        fn assert_error<S, Req>(_: &S)
        where
            S: tower::Service<Req, Error = Infallible>,
        {
        }
        let drain = Drain::new();
        let (_, inner) = counting_service();
        assert_error::<_, Request<()>>(&drain.layer().layer(inner));

        let _app: axum::Router = axum::Router::new()
            .route("/", axum::routing::get(|| async { "hi" }))
            .layer(drain.layer());
    }

    #[test]
    fn handles_are_send_sync_clone() {
        fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync_clone::<crate::Drain>();
        assert_send_sync_clone::<crate::DrainSignal>();
        assert_send_sync_clone::<crate::DrainLayer>();
        assert_send_sync_clone::<crate::DrainService<tower::util::BoxCloneSyncService<(), (), ()>>>(
        );
        fn assert_send<T: Send + 'static>() {}
        assert_send::<crate::drain::Drained>();
        assert_send::<crate::drain::Tripped>();
        assert_send::<crate::layer::ResponseBody<TestBody>>();
    }
}
