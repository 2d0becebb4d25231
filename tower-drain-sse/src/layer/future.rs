use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;

use super::SseBody;
use crate::framing::Framing;
use crate::terminal::Config;

pin_project! {
    /// Response future of [`SseDrainService`](super::SseDrainService).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        config: &'static Config,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, config: &'static Config) -> Self {
        Self { inner, config }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<SseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        let config = *this.config;
        let framing = Framing::of_response(&res);
        Poll::Ready(Ok(res.map(|body| match framing {
            Some(framing) => SseBody::watched(body, framing, config),
            None => SseBody::passthrough(body),
        })))
    }
}
