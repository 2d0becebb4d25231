//! Helpers shared by this crate's integration tests.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::stream::Pending;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::StreamBody;
use tower::{Layer, ServiceExt};
use tower_drain::layer::ResponseBody;
use tower_drain::Drain;

/// A response body that never ends.
pub(crate) type Endless = StreamBody<Pending<Result<Frame<Bytes>, Infallible>>>;

/// Admits one request through `drain`'s layer, answered with a body that
/// never ends: it stays in flight until it is cut or dropped.
pub(crate) async fn admit_endless(drain: &Drain) -> Response<ResponseBody<Endless>> {
    drain
        .layer()
        .layer(tower::service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(StreamBody::new(
                futures_util::stream::pending(),
            )))
        }))
        .oneshot(Request::new(()))
        .await
        .unwrap()
}
