use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{HeaderValue, CONNECTION};
use http::Response;
use pin_project_lite::pin_project;

use super::reject::Head;
use super::{EarlyEnd, Reject, Rejection, ResponseBody};
use crate::state::Guard;

pin_project! {
    /// Response future of [`DrainService`](super::DrainService).
    pub struct ResponseFuture<F, R> {
        #[pin]
        state: State<F>,
        reject: R,
    }

    // Dropped unanswered once the unwind after the deadline is over (its
    // connection dropped by the server): the request was cut.
    impl<F, R> PinnedDrop for ResponseFuture<F, R> {
        fn drop(this: Pin<&mut Self>) {
            let mut state = this.project().state;
            if let StateProj::Admitted { guard, .. } = state.as_mut().project() {
                if guard.is_unwound() {
                    if let StateOwn::Admitted { guard, .. } = state.project_replace(State::Done) {
                        guard.record_cut();
                    }
                }
            }
        }
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateOwn]
    enum State<F> {
        // Counted until its response (then its body) ends; answered with the
        // rejection if the deadline comes first.
        Admitted {
            #[pin]
            inner: F,
            guard: Guard,
            head: Head,
        },
        // Exempt, or admitted by a drain that is gone: passed through.
        Passed {
            #[pin]
            inner: F,
        },
        // Refused: the inner service is never called.
        Refused {
            rejection: Rejection,
        },
        Done,
    }
}

impl<F, R: Reject> ResponseFuture<F, R> {
    #[inline]
    pub(crate) fn admitted(inner: F, mut guard: Guard, head: Head, reject: R) -> Self {
        guard.set_grpc(head.is_grpc());
        Self {
            state: State::Admitted { inner, guard, head },
            reject,
        }
    }

    pub(crate) fn passed(inner: F, reject: R) -> Self {
        Self {
            state: State::Passed { inner },
            reject,
        }
    }

    pub(crate) fn refused(rejection: Rejection, reject: R) -> Self {
        crate::metrics::refused(rejection.is_grpc());
        Self {
            state: State::Refused { rejection },
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
        let answer = match this.state.as_mut().project() {
            StateProj::Admitted { inner, guard, .. } => match inner.poll(cx) {
                Poll::Ready(answer) => Some(answer),
                // The task is woken at the deadline, to be cut here.
                Poll::Pending if guard.poll_deadline(cx) => None,
                Poll::Pending => return Poll::Pending,
            },
            StateProj::Passed { inner } => {
                let answer = std::task::ready!(inner.poll(cx));
                this.state.set(State::Done);
                return Poll::Ready(answer.map(|res| res.map(ResponseBody::passed)));
            }
            StateProj::Refused { rejection } => {
                let rejection = *rejection;
                this.state.set(State::Done);
                return Poll::Ready(Ok(respond(this.reject, &rejection)));
            }
            StateProj::Done => panic!("ResponseFuture polled after completion"),
        };
        // Admitted, and answered or cut. The replacement drops the handler's
        // future before the guard goes, so that at a cut `drained` means the
        // handler has unwound.
        let StateOwn::Admitted { guard, head, .. } = this.state.project_replace(State::Done) else {
            unreachable!("matched as admitted above")
        };
        match answer {
            Some(Ok(mut res)) => {
                // Answered after the trip: tell a keep-alive client to go
                // (P9), unless the answer is the handshake of an upgrade or a
                // tunnel, whose `Connection` header must stay as it is.
                if head.is_http1()
                    && guard.is_tripped()
                    && !head.takes_over_the_connection(res.status())
                {
                    res.headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                // A wrapper inside that may end its stream early says so
                // through the response (`tower-drain-sse`'s streams).
                if let Some(early) = res.extensions().get::<EarlyEnd>() {
                    early.arm(&guard);
                }
                Poll::Ready(Ok(res.map(|body| ResponseBody::tracked(body, guard))))
            }
            // An error ends the request: there is no body to wait for.
            Some(Err(err)) => Poll::Ready(Err(err)),
            None => {
                guard.record_cut();
                drop(guard);
                Poll::Ready(Ok(respond(this.reject, &head.cut())))
            }
        }
    }
}

impl<F, R> fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Admitted { .. } => "admitted",
            State::Passed { .. } => "passed",
            State::Refused { .. } => "refused",
            State::Done => "done",
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
    use http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER, UPGRADE};
    use http::{Method, Request, Response, StatusCode, Version};
    use http_body_util::BodyExt;
    use tower::{Layer, ServiceExt};

    use crate::test_support::{channel_body, counting_service, full, serving, TestBody};
    use crate::Drain;

    fn request(version: Version, content_type: Option<&str>) -> Request<()> {
        let mut req = Request::builder().version(version);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        req.body(()).unwrap()
    }

    /// Sends `req` through a drain whose handler answers with `answer` only
    /// once the drain has tripped.
    async fn answered_after_the_trip(
        req: Request<()>,
        answer: Response<TestBody>,
    ) -> Response<crate::layer::ResponseBody<TestBody>> {
        let drain = Drain::new();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let mut parts = Some((wait, answer));
        let svc = drain
            .layer()
            .layer(tower::service_fn(move |_req: Request<()>| {
                let (wait, answer) = parts.take().expect("one request");
                async move {
                    wait.await.unwrap();
                    Ok::<_, Infallible>(answer)
                }
            }));
        let admitted = tokio::spawn(svc.oneshot(req));
        tokio::task::yield_now().await;
        assert_eq!(drain.in_flight(), 1);
        drain.trip();
        go.send(()).unwrap();
        admitted.await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn a_response_after_the_trip_carries_connection_close_on_http1_only() {
        for (version, expect_close) in [
            (Version::HTTP_10, true),
            (Version::HTTP_11, true),
            (Version::HTTP_2, false),
        ] {
            let res =
                answered_after_the_trip(request(version, None), Response::new(full("late"))).await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(
                res.headers().get(CONNECTION).map(|v| v.as_bytes()),
                expect_close.then_some(&b"close"[..]),
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

    /// A WebSocket handshake answered after the trip: RFC 6455 clients fail
    /// a `101` whose `Connection` is not `upgrade`.
    #[tokio::test]
    async fn an_upgrade_answered_after_the_trip_keeps_its_handshake_headers() {
        let mut switching = Response::new(full(""));
        *switching.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        switching
            .headers_mut()
            .insert(CONNECTION, "upgrade".parse().unwrap());
        switching
            .headers_mut()
            .insert(UPGRADE, "websocket".parse().unwrap());
        let res = answered_after_the_trip(request(Version::HTTP_11, None), switching).await;
        assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(res.headers()[CONNECTION], "upgrade");
        assert_eq!(res.headers()[UPGRADE], "websocket");

        // A tunnel: a successful answer to CONNECT is not HTTP any more.
        let mut connect = request(Version::HTTP_11, None);
        *connect.method_mut() = Method::CONNECT;
        let res = answered_after_the_trip(connect, Response::new(full(""))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().get(CONNECTION).is_none());

        // A failed CONNECT is an ordinary answer: the connection may go.
        let mut connect = request(Version::HTTP_11, None);
        *connect.method_mut() = Method::CONNECT;
        let mut refused = Response::new(full(""));
        *refused.status_mut() = StatusCode::FORBIDDEN;
        let res = answered_after_the_trip(connect, refused).await;
        assert_eq!(res.headers()[CONNECTION], "close");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_response_is_dropped_and_answered_at_the_deadline() {
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
        // Not the refusal's 503 + Retry-After: the handler had been running.
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.headers().get(RETRY_AFTER).is_none());
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
    async fn a_waiting_streaming_body_ends_with_cut_at_the_deadline() {
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
