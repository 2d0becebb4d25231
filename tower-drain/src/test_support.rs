//! Helpers for the unit tests.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, StreamBody};
use tokio::sync::mpsc;

pub(crate) type TestBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A streaming body fed through a channel: it ends when the sender is
/// dropped, and errors when an `Err` is sent.
pub(crate) fn channel_body() -> (
    mpsc::UnboundedSender<Result<Bytes, std::io::Error>>,
    TestBody,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let frames = stream::unfold(
        rx,
        |mut rx: mpsc::UnboundedReceiver<Result<Bytes, std::io::Error>>| async move {
            let item = rx.recv().await?;
            Some((item.map(Frame::data), rx))
        },
    );
    (tx, StreamBody::new(frames).boxed_unsync())
}

pub(crate) fn full(data: &'static str) -> TestBody {
    http_body_util::Full::new(Bytes::from_static(data.as_bytes()))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// A service that answers `"ok"` and counts the requests that reach it.
pub(crate) fn counting_service() -> (
    Arc<AtomicUsize>,
    impl tower_service::Service<
            Request<()>,
            Response = Response<TestBody>,
            Error = Infallible,
            Future: Send,
        > + Clone,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let svc = tower::service_fn(move |_req: Request<()>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(full("ok"))) }
    });
    (calls, svc)
}

/// A service that answers its one request with `body`.
pub(crate) fn serving(
    body: TestBody,
) -> impl tower_service::Service<
    Request<()>,
    Response = Response<TestBody>,
    Error = Infallible,
    Future: Send,
> {
    let mut body = Some(body);
    tower::service_fn(move |_req: Request<()>| {
        let body = body.take().expect("one request per test service");
        async move { Ok::<_, Infallible>(Response::new(body)) }
    })
}

/// One request through `svc`, driven to its response.
pub(crate) async fn request<S>(svc: &mut S) -> S::Response
where
    S: tower_service::Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    use tower::ServiceExt;
    svc.ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap()
}

/// A request admitted into `drain` whose response body is fed by the returned
/// sender (see [`channel_body`]).
pub(crate) async fn streaming(
    drain: &crate::Drain,
) -> (
    mpsc::UnboundedSender<Result<Bytes, std::io::Error>>,
    Response<crate::layer::ResponseBody<TestBody>>,
) {
    use tower::Layer;
    let (tx, body) = channel_body();
    let res = request(&mut drain.layer().layer(serving(body))).await;
    (tx, res)
}
