use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{HeaderValue, CONNECTION};
use http::Response;
use pin_project_lite::pin_project;

use super::{Reject, Rejection, ResponseBody};
use crate::state::Guard;

pin_project! {
    /// Response future of [`DrainService`](super::DrainService).
    pub struct ResponseFuture<F, R> {
        // The inner service's future; `None` for a refused request (the
        // service was never called) and once cut at the deadline.
        #[pin]
        inner: Option<F>,
        // The request's count while it waits for its response; `None` for an
        // exempt or refused request, and once answered.
        guard: Option<Guard>,
        rejection: Rejection,
        reject: R,
    }
}

impl<F, R: Reject> ResponseFuture<F, R> {
    #[inline]
    pub(crate) fn admitted(inner: F, mut guard: Guard, rejection: Rejection, reject: R) -> Self {
        guard.set_grpc(rejection.is_grpc());
        Self {
            inner: Some(inner),
            guard: Some(guard),
            rejection,
            reject,
        }
    }

    pub(crate) fn exempt(inner: F, rejection: Rejection, reject: R) -> Self {
        Self {
            inner: Some(inner),
            guard: None,
            rejection,
            reject,
        }
    }

    pub(crate) fn rejected(rejection: Rejection, reject: R) -> Self {
        crate::metrics::rejected(rejection.is_grpc());
        Self {
            inner: None,
            guard: None,
            rejection,
            reject,
        }
    }
}

/// The rejection response, with `Connection: close` on HTTP/1.x so that a
/// keep-alive client reconnects (to another instance) instead of reusing this
/// connection. HTTP/2 forbids connection-specific headers; there the server's
/// GOAWAY does that job.
fn respond<R: Reject, B>(reject: &R, rejection: &Rejection) -> Response<ResponseBody<B>> {
    let mut res = reject.reject(rejection);
    if rejection.is_http1() {
        res.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    res.map(ResponseBody::rejected)
}

impl<F, R, B, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<Response<B>, E>>,
    R: Reject,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Ok(respond(this.reject, this.rejection)));
        };
        match inner.poll(cx) {
            Poll::Ready(Ok(mut res)) => Poll::Ready(Ok(match this.guard.take() {
                Some(guard) => {
                    // P9: answered after the trip, so tell a keep-alive client to go.
                    if this.rejection.is_http1() && guard.is_tripped() {
                        res.headers_mut()
                            .insert(CONNECTION, HeaderValue::from_static("close"));
                    }
                    res.map(|body| ResponseBody::tracked(body, guard))
                }
                None => res.map(ResponseBody::exempt),
            })),
            // An error ends the request: there is no body to wait for.
            Poll::Ready(Err(err)) => {
                *this.guard = None;
                Poll::Ready(Err(err))
            }
            Poll::Pending => {
                let Some(guard) = this.guard.as_mut() else {
                    return Poll::Pending;
                };
                if !guard.poll_deadline(cx) {
                    return Poll::Pending;
                }
                // Cut at the deadline: the handler is dropped before the
                // count goes back, so `drained` means it has unwound.
                guard.record_cut();
                this.inner.set(None);
                *this.guard = None;
                Poll::Ready(Ok(respond(this.reject, &this.rejection.at_deadline())))
            }
        }
    }
}

impl<F, R> fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match (&self.inner, &self.guard) {
            (None, _) => "rejected",
            (Some(_), Some(_)) => "admitted",
            (Some(_), None) => "exempt or answered",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use bytes::Bytes;
    use http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER};
    use http::{Request, Response, StatusCode, Version};
    use http_body_util::BodyExt;
    use tower::{Layer, ServiceExt};

    use crate::layer::{Cause, Rejection};
    use crate::test_support::{channel_body, counting_service, full, serving, TestBody};
    use crate::Drain;

    fn request(version: Version, content_type: Option<&str>) -> Request<()> {
        let mut req = Request::builder().version(version);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        req.body(()).unwrap()
    }

    #[tokio::test]
    async fn p6_http1_rejection_is_503_with_retry_after_and_connection_close() {
        let drain = Drain::new();
        let (_, inner) = counting_service();
        let svc = drain
            .layer()
            .retry_after(Duration::from_millis(1500))
            .layer(inner);
        drain.trip();

        for version in [Version::HTTP_10, Version::HTTP_11] {
            let res = svc.clone().oneshot(request(version, None)).await.unwrap();
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                res.headers()[RETRY_AFTER],
                "2",
                "rounded up to whole seconds"
            );
            assert_eq!(res.headers()[CONNECTION], "close");
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, "server is shutting down\n");
        }
    }

    #[tokio::test]
    async fn p6_http2_rejection_has_no_connection_header() {
        let drain = Drain::new();
        let (_, inner) = counting_service();
        let svc = drain.layer().layer(inner);
        drain.trip();

        let res = svc.oneshot(request(Version::HTTP_2, None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[RETRY_AFTER], "5");
        assert!(res.headers().get(CONNECTION).is_none());
    }

    #[tokio::test]
    async fn p7_grpc_rejection_is_trailers_only_unavailable() {
        let drain = Drain::new();
        let (_, inner) = counting_service();
        let svc = drain
            .layer()
            .grpc_message("draining: 100% done, bye ✓")
            .layer(inner);
        drain.trip();

        for ct in ["application/grpc", "application/grpc+proto"] {
            let res = svc
                .clone()
                .oneshot(request(Version::HTTP_2, Some(ct)))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let headers = res.headers();
            assert_eq!(headers[CONTENT_TYPE], "application/grpc");
            assert_eq!(headers["grpc-status"], "14");
            assert_eq!(
                headers["grpc-message"], "draining: 100%25 done, bye %E2%9C%93",
                "percent-encoded per the gRPC spec"
            );
            assert!(headers.get(CONNECTION).is_none());
            let body = res.into_body();
            assert!(
                http_body::Body::is_end_stream(&body),
                "trailers-only: no body"
            );
        }
    }

    #[tokio::test]
    async fn p7_grpc_is_recognised_on_http2_only() {
        let drain = Drain::new();
        let (_, inner) = counting_service();
        let svc = drain.layer().layer(inner);
        drain.trip();

        // gRPC-Web rides HTTP/1.1 and is a different protocol: a plain 503.
        let res = svc
            .oneshot(request(Version::HTTP_11, Some("application/grpc-web")))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().get("grpc-status").is_none());
    }

    #[tokio::test]
    async fn p8_rejection_is_customisable() {
        let drain = Drain::new();
        let (_, inner) = counting_service();
        let svc = drain
            .layer()
            .reject_with(|rejection: &Rejection| {
                assert_eq!(rejection.cause(), Cause::Draining);
                let mut res = Response::new(Bytes::from_static(b"{\"error\":\"draining\"}"));
                *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                res
            })
            .layer(inner);
        drain.trip();

        let res = svc.oneshot(request(Version::HTTP_11, None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[CONNECTION], "close", "added by the layer");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "{\"error\":\"draining\"}");
    }

    #[tokio::test]
    async fn p9_response_after_trip_carries_connection_close_on_http1_only() {
        for (version, expect_close) in [(Version::HTTP_11, true), (Version::HTTP_2, false)] {
            let drain = Drain::new();
            let (go, wait) = tokio::sync::oneshot::channel::<()>();
            let mut wait = Some(wait);
            let svc = drain
                .layer()
                .layer(tower::service_fn(move |_req: Request<()>| {
                    let wait = wait.take().unwrap();
                    async move {
                        wait.await.unwrap();
                        Ok::<_, Infallible>(Response::new(full("late")))
                    }
                }));
            let admitted = tokio::spawn(svc.oneshot(request(version, None)));
            tokio::task::yield_now().await;
            assert_eq!(drain.in_flight(), 1);
            drain.trip();
            go.send(()).unwrap();

            let res = admitted.await.unwrap().unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(
                res.headers().get(CONNECTION).is_some(),
                expect_close,
                "{version:?}"
            );
        }

        // Before the trip: no header.
        let drain = Drain::new();
        let (_, inner) = counting_service();
        let res = drain
            .layer()
            .layer(inner)
            .oneshot(request(Version::HTTP_11, None))
            .await
            .unwrap();
        assert!(res.headers().get(CONNECTION).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn pending_response_is_answered_with_the_rejection_at_the_deadline() {
        let drain = Drain::new();
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        let mut dropped_tx = Some(dropped_tx);
        let svc = drain
            .layer()
            .layer(tower::service_fn(move |_req: Request<()>| {
                // Dropped along with the handler's future.
                let _on_drop = dropped_tx.take().unwrap();
                async move {
                    let _on_drop = _on_drop;
                    std::future::pending::<()>().await;
                    Ok::<Response<TestBody>, Infallible>(Response::new(full("never")))
                }
            }));
        let stuck = tokio::spawn(svc.oneshot(request(Version::HTTP_11, None)));
        tokio::task::yield_now().await;

        assert!(!drain.signal().is_forced());
        let report = drain.shutdown(Duration::from_secs(30)).await;
        assert!(drain.signal().is_forced());
        let res = stuck.await.unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[CONNECTION], "close");
        assert!(
            dropped_rx.await.is_err(),
            "the handler's future was dropped"
        );
        assert!(report.deadline_reached());
        assert_eq!(
            (report.cut(), report.completed(), report.unfinished()),
            (1, 0, 0)
        );
        assert_eq!(drain.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn streaming_body_ends_with_cut_error_at_the_deadline() {
        let drain = Drain::new();
        let (tx, body) = channel_body();
        let svc = drain.layer().layer(serving(body));
        let res = svc.oneshot(request(Version::HTTP_11, None)).await.unwrap();
        tx.send(Ok("partial".into())).unwrap();

        let client = tokio::spawn(async move {
            let mut body = Box::pin(res.into_body());
            let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
            let err = body.frame().await.unwrap().unwrap_err();
            (first, err.is::<crate::Cut>(), body.frame().await.is_none())
        });
        let report = drain.shutdown(Duration::from_secs(5)).await;
        assert_eq!(client.await.unwrap(), (Bytes::from("partial"), true, true));
        assert!(tx.is_closed(), "the application's body was dropped");
        assert_eq!((report.in_flight_at_trip(), report.cut()), (1, 1));
        assert!(!report.is_clean());
    }
}
