//! What the integration tests share: a response of given frames, through an
//! `SseDrainLayer`.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::{stream, FutureExt};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::StreamBody;
use tower::{Layer, ServiceExt};
use tower_drain_sse::{SseBody, SseDrainLayer};

/// An application's frames: `Ok` data, `Err` trailers.
pub(crate) type Parts = Vec<Result<Bytes, HeaderMap>>;

/// The application's body, made of [`Parts`].
pub(crate) type PartsBody =
    StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// The body `layer` makes of a response of `parts` served as `content_type`.
pub(crate) fn through(
    layer: &SseDrainLayer,
    content_type: &'static str,
    parts: Parts,
) -> SseBody<PartsBody> {
    let svc = layer.layer(tower::service_fn(move |_req: Request<()>| {
        let frames: Vec<_> = parts
            .clone()
            .into_iter()
            .map(|part| Ok(part.map_or_else(Frame::trailers, Frame::data)))
            .collect();
        let mut res = Response::new(StreamBody::new(stream::iter(frames)));
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        std::future::ready(Ok::<_, Infallible>(res))
    }));
    let res = svc.oneshot(Request::new(())).now_or_never();
    res.expect("the service is ready at once")
        .expect("the service never fails")
        .into_body()
}

/// Cases per property: 512 in CI, more with `PROPTEST_CASES` for a long run
/// (`PROPTEST_CASES=100000 cargo test --release -p tower-drain-sse --test s1_boundary`).
#[allow(dead_code)] // Not every test binary has properties.
pub(crate) fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(512)
}
