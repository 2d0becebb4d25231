use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::state::Guard;
use crate::{BoxError, Cut};

pin_project! {
    /// Response body of [`DrainService`](super::DrainService).
    ///
    /// An admitted response's body holds its request's count until it ends:
    /// at its last frame, at an error, or when it is dropped.
    ///
    /// At the drain deadline, a body that is waiting for its next frame is
    /// woken and ends with a [`Cut`] error. One that has frames ready goes on
    /// for the unwind (up to half a second), so that what it has produced,
    /// and a clean end such as `tower-drain-sse`'s terminal frame, still go
    /// out; when the unwind is over, every body still in flight ends with
    /// `Cut` on its next poll, ready or not, or is counted as cut when it is
    /// dropped unfinished (its connection dropped by the server). A
    /// rejection's body is the rejection's bytes.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this;
            if let KindProj::Serving { guard, .. } = this.as_mut().project().kind.project() {
                if guard.as_ref().is_some_and(Guard::is_unwound) {
                    let guard = guard.take();
                    let _ = this.cut(guard);
                }
            }
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        // The application's body. `guard` holds an admitted request's count
        // until the body ends; a passed (exempt) body has none.
        Serving {
            #[pin]
            inner: B,
            guard: Option<Guard>,
        },
        Rejected {
            // Boxed: a refusal is rare and already allocates (its headers),
            // and a pointer keeps every admitted body small.
            data: Option<Box<Bytes>>,
        },
        Ended,
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn tracked(inner: B, guard: Guard) -> Self {
        Self {
            kind: Kind::Serving {
                inner,
                guard: Some(guard),
            },
        }
    }

    pub(crate) fn passed(inner: B) -> Self {
        Self {
            kind: Kind::Serving { inner, guard: None },
        }
    }

    pub(crate) fn rejected(data: Bytes) -> Self {
        Self {
            kind: Kind::Rejected {
                data: (!data.is_empty()).then(|| Box::new(data)),
            },
        }
    }
}

impl<B> ResponseBody<B> {
    /// Ends a body the deadline cut: the application's body is dropped
    /// first, then the cut is counted and the count given back, so that a
    /// request counts as cut or unfinished, never both.
    #[cold]
    #[inline(never)]
    fn cut(
        self: Pin<&mut Self>,
        guard: Option<Guard>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // A stream that had sent its terminal frame is cut all the same
        // (it may not have reached the client): it does not count as ended
        // early as it is dropped here.
        super::early::cutting(|| self.project().kind.set(Kind::Ended));
        if let Some(guard) = guard {
            guard.record_cut();
        }
        Poll::Ready(Some(Err(Cut::new().into())))
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let ended = match self.as_mut().project().kind.project() {
            KindProj::Serving { inner, guard } => {
                // The unwind after the deadline is over: cut now, without
                // asking the application's body for more (a frame it made
                // now could only be dropped).
                if guard.as_ref().is_some_and(|tracked| tracked.is_unwound()) {
                    let guard = guard.take();
                    return self.cut(guard);
                }
                match inner.poll_frame(cx) {
                    // Trailers are a body's last frame: the request ends
                    // with them (hyper's HTTP/2 server drops a body after its
                    // trailers without asking for the end).
                    Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => Some(Ok(frame)),
                    Poll::Ready(Some(Ok(frame))) => return Poll::Ready(Some(Ok(frame))),
                    Poll::Pending => {
                        // A passed body is never cut.
                        let Some(tracked) = guard else {
                            return Poll::Pending;
                        };
                        if !tracked.poll_deadline(cx) {
                            return Poll::Pending;
                        }
                        let guard = guard.take();
                        return self.cut(guard);
                    }
                    // Ended by itself, or by its error: the count goes back now.
                    Poll::Ready(last) => last.map(|last| last.map_err(Into::into)),
                }
            }
            KindProj::Rejected { data } => {
                return Poll::Ready(data.take().map(|data| Ok(Frame::data(*data))))
            }
            KindProj::Ended => return Poll::Ready(None),
        };
        // Dropping the variant drops the inner body before the guard (field
        // order).
        self.project().kind.set(Kind::Ended);
        Poll::Ready(ended)
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Serving { inner, .. } => inner.is_end_stream(),
            Kind::Rejected { data } => data.is_none(),
            Kind::Ended => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Serving { inner, .. } => inner.size_hint(),
            Kind::Rejected { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
            Kind::Ended => SizeHint::with_exact(0),
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Serving { guard: Some(_), .. } => "tracked",
            Kind::Serving { guard: None, .. } => "passed",
            Kind::Rejected { .. } => "rejected",
            Kind::Ended => "ended",
        };
        f.debug_struct("ResponseBody")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::stream;
    use http::{HeaderMap, Request};
    use http_body::Frame;
    use http_body_util::{BodyExt, Full, StreamBody};
    use tower::{Layer, ServiceExt};

    use crate::test_support::serving;
    use crate::Drain;

    /// A body that always has a frame ready never waits, so the deadline's
    /// wake-up does not reach it: it must be cut when the unwind is over all the
    /// same (it used to stream on after the report said "0 cut").
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_that_never_waits_is_cut_at_the_deadline() {
        let drain = Drain::new();
        let endless = stream::repeat_with(|| {
            Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"tick\n")))
        });
        let svc = drain
            .layer()
            .layer(serving(StreamBody::new(endless).boxed_unsync()));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        // A client that keeps reading, as fast as the body goes.
        let client = tokio::spawn(async move {
            let mut body = Box::pin(res.into_body());
            let mut frames = 0u64;
            let err = loop {
                match body.frame().await {
                    Some(Ok(_)) => frames += 1,
                    Some(Err(err)) => break err,
                    None => panic!("an endless body ended"),
                }
                if frames & 63 == 0 {
                    tokio::task::yield_now().await;
                }
            };
            (frames, err.is::<crate::Cut>(), body.frame().await.is_none())
        });
        while drain.in_flight() == 0 {
            tokio::task::yield_now().await;
        }

        let report = drain.shutdown(Duration::ZERO).await;
        let (frames, cut, ended) = tokio::time::timeout(Duration::from_secs(20), client)
            .await
            .expect("the body was cut")
            .unwrap();
        assert!(frames > 0);
        assert!(cut && ended);
        assert_eq!(drain.in_flight(), 0);
        assert_eq!((report.cut(), report.unfinished()), (1, 0), "{report}");
    }

    /// Runs a shutdown with a deadline of zero, and returns once it has cut.
    async fn cut_now(drain: &Drain) -> tokio::task::JoinHandle<crate::DrainReport> {
        let shutdown = tokio::spawn({
            let drain = drain.clone();
            async move { drain.shutdown(Duration::ZERO).await }
        });
        while !drain.signal().is_forced() {
            tokio::task::yield_now().await;
        }
        shutdown
    }

    /// Past the deadline, a frame that ends the body still goes out: the
    /// response ends whole instead of being cut one frame short.
    #[tokio::test]
    async fn a_last_frame_ready_at_the_deadline_still_goes_out() {
        let drain = Drain::new();
        let full = Full::new(Bytes::from_static(b"complete"))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync();
        let svc = drain.layer().layer(serving(full));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        let shutdown = cut_now(&drain).await;
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "complete");
        let report = shutdown.await.unwrap();
        assert_eq!((report.cut(), report.completed()), (0, 1), "{report}");

        // Trailers end a body too.
        let drain = Drain::new();
        let frames = stream::iter([
            Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"message"))),
            Ok(Frame::trailers(HeaderMap::new())),
        ]);
        let svc = drain
            .layer()
            .layer(serving(StreamBody::new(frames).boxed_unsync()));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        let mut body = Box::pin(res.into_body());
        body.frame().await.unwrap().unwrap();
        let shutdown = cut_now(&drain).await;
        assert!(body.frame().await.unwrap().unwrap().is_trailers());
        assert!(body.frame().await.is_none());
        let report = shutdown.await.unwrap();
        assert_eq!((report.cut(), report.completed()), (0, 1), "{report}");
    }

    /// hyper's HTTP/2 server drops a body after its trailers without asking
    /// for the end: the request has completed all the same, even when the
    /// drop comes after the unwind.
    #[tokio::test]
    async fn a_body_dropped_after_its_trailers_has_completed() {
        use futures_util::StreamExt as _;

        let drain = Drain::new();
        let frames = stream::iter([
            Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"message"))),
            Ok(Frame::trailers(HeaderMap::new())),
        ])
        .chain(stream::pending());
        let svc = drain
            .layer()
            .layer(serving(StreamBody::new(frames).boxed_unsync()));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        let mut body = Box::pin(res.into_body());
        body.frame().await.unwrap().unwrap();
        assert!(body.frame().await.unwrap().unwrap().is_trailers());
        assert_eq!(drain.in_flight(), 0, "the trailers ended the request");
        let report = drain.shutdown(Duration::ZERO).await;
        drop(body);
        assert!(report.is_clean(), "{report}");
    }

    /// A server that drops the connections still open once the unwind is
    /// over (as `serve` does) drops their bodies and futures unpolled: the
    /// requests were cut, not completed.
    #[tokio::test]
    async fn a_body_or_future_dropped_unfinished_after_the_unwind_counts_as_cut() {
        let drain = Drain::new();
        let never = stream::pending::<Result<Frame<Bytes>, std::io::Error>>();
        let svc = drain
            .layer()
            .layer(serving(StreamBody::new(never).boxed_unsync()));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        let body = Box::pin(res.into_body());
        // A task that never polls its request again.
        let waiting = tower::service_fn(|_: Request<()>| {
            std::future::pending::<Result<http::Response<Full<Bytes>>, Infallible>>()
        });
        let mut future = Box::pin(drain.layer().layer(waiting).oneshot(Request::new(())));
        let pending = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(future.as_mut(), cx).is_pending())
        });
        assert!(pending.await);
        assert_eq!(drain.in_flight(), 2);
        // Never polled again: neither sees the deadline, and the report
        // (made when the unwind is over) finds both unfinished.
        let report = drain.shutdown(Duration::ZERO).await;
        assert_eq!(report.unfinished(), 2, "{report}");
        drop((body, future));
        assert_eq!(drain.in_flight(), 0);
        assert_eq!(drain.block().cut(), 2);
    }
}

#[cfg(all(test, not(loom)))]
mod unwinding {
    use std::time::Duration;

    use bytes::Bytes;
    use http::Request;
    use http_body::Frame;
    use http_body_util::BodyExt;
    use tower::{Layer, ServiceExt};

    use crate::test_support::serving;
    use crate::Drain;

    /// An application body that waits forever, and takes long to drop.
    struct SlowToDrop;

    impl http_body::Body for SlowToDrop {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            std::task::Poll::Pending
        }
    }

    impl Drop for SlowToDrop {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(1500));
        }
    }

    /// A request is cut or unfinished, never both: the cut is counted once
    /// what it cut has been dropped, with its count given back just after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cut_request_is_counted_cut_or_unfinished_never_both() {
        let drain = Drain::new();
        let svc = drain.layer().layer(serving(SlowToDrop.boxed_unsync()));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        let client = tokio::spawn(async move { res.into_body().frame().await.map(|f| f.is_err()) });
        let report = drain.shutdown(Duration::ZERO).await;
        assert_eq!(report.cut() + report.unfinished(), 1, "{report}");
        assert_eq!(client.await.unwrap(), Some(true), "the client sees the cut");
        let after = drain.shutdown(Duration::ZERO).await;
        assert_eq!((after.cut(), after.unfinished()), (1, 0), "{after}");
    }
}
