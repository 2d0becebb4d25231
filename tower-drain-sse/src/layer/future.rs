use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;
use tower_drain::layer::EarlyEnd;

use super::SseBody;
use crate::framing::Framing;
use crate::terminal::Config;

pin_project! {
    /// Response future of [`SseDrainService`](super::SseDrainService).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        config: Option<Arc<Config>>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, config: Arc<Config>) -> Self {
        Self {
            inner,
            config: Some(config),
        }
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
        let config = this
            .config
            .take()
            .expect("ResponseFuture polled after completion");
        let Some(framing) = Framing::of_response(&res) else {
            return Poll::Ready(Ok(res.map(SseBody::passthrough)));
        };
        // `DrainLayer` outside learns through the response that the stream
        // ended early, and counts it so.
        let early = EarlyEnd::new();
        let mut res = res.map(|body| SseBody::watched(body, framing, config, early.clone()));
        res.extensions_mut().insert(early);
        Poll::Ready(Ok(res))
    }
}
