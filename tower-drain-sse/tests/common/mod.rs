//! What the integration tests share: an application's body paced by the
//! test (frames, waits, an end), through an `SseDrainLayer`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use tower::{Layer, ServiceExt};
use tower_drain_sse::{SseBody, SseDrainLayer};

/// One step of an application's body.
#[derive(Clone, Debug)]
#[allow(dead_code)] // Not every test binary uses every step.
pub(crate) enum Part {
    /// A data frame, ready.
    Data(Bytes),
    /// A trailers frame, ready.
    Trailers(HeaderMap),
    /// The application has nothing ready for one poll (it wakes the task
    /// itself, as a timer or a channel would), then goes on.
    Wait,
    /// The application never has anything again (a stream that would run
    /// forever). Without it, the body ends after its last part.
    Hang,
}

/// An application's body made of [`Part`]s.
#[derive(Debug)]
pub(crate) struct Paced {
    parts: VecDeque<Part>,
}

impl Paced {
    pub(crate) fn new(parts: impl IntoIterator<Item = Part>) -> Self {
        Self {
            parts: parts.into_iter().collect(),
        }
    }
}

impl Body for Paced {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.parts.pop_front() {
            None => Poll::Ready(None),
            Some(Part::Data(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Some(Part::Trailers(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Some(Part::Wait) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(Part::Hang) => {
                self.parts.push_front(Part::Hang);
                Poll::Pending
            }
        }
    }
}

/// The body `layer` makes of a response of `parts` served as `content_type`.
pub(crate) fn through(
    layer: &SseDrainLayer,
    content_type: &'static str,
    parts: Vec<Part>,
) -> SseBody<Paced> {
    let mut parts = Some(parts);
    let svc = layer.layer(tower::service_fn(move |_req: Request<()>| {
        let parts = parts.take().expect("one request");
        let mut res = Response::new(Paced::new(parts));
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        std::future::ready(Ok::<_, Infallible>(res))
    }));
    let res = svc.oneshot(Request::new(())).now_or_never();
    res.expect("the service is ready at once")
        .expect("the service never fails")
        .into_body()
}

/// How a body driven by [`drive`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum Stop {
    /// It ended.
    Ended,
    /// It waited twice in a row without a frame between: it hangs.
    Hangs,
}

/// Polls `body` as a server would, calling `before_poll` with the number of
/// frames received so far before each poll, until it ends or hangs.
#[allow(dead_code)]
pub(crate) fn drive<B>(
    body: Pin<&mut B>,
    mut before_poll: impl FnMut(usize),
) -> (Vec<Frame<Bytes>>, Stop)
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let mut body = body;
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut frames, mut waited) = (Vec::new(), false);
    loop {
        before_poll(frames.len());
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(frame)) => {
                frames.push(frame.expect("an in-memory body never fails"));
                waited = false;
            }
            Poll::Ready(None) => return (frames, Stop::Ended),
            Poll::Pending if waited => return (frames, Stop::Hangs),
            Poll::Pending => waited = true,
        }
    }
}

/// Cases per property: 512 in CI, more with `PROPTEST_CASES` for a long run
/// (`PROPTEST_CASES=100000 cargo test --release -p tower-drain-sse --test sse_boundary`).
#[allow(dead_code)] // Not every test binary has properties.
pub(crate) fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(512)
}
