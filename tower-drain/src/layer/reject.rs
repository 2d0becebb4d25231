use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode, Version};

/// Builds the response for a request the drain refuses.
///
/// Implemented for [`DefaultReject`] and for any
/// `Fn(&Rejection) -> Response<Bytes> + Clone`. The layer adds
/// `Connection: close` on HTTP/1.x itself, whatever this returns.
///
/// A reject is cloned into every admitted request's future (a request cut at
/// the deadline is answered with it), so keep it cheap to clone: `Copy`, or an
/// `Arc` around anything large.
pub trait Reject: Clone {
    /// The response for `rejection`.
    fn reject(&self, rejection: &Rejection) -> Response<Bytes>;
}

impl<F> Reject for F
where
    F: Fn(&Rejection) -> Response<Bytes> + Clone,
{
    fn reject(&self, rejection: &Rejection) -> Response<Bytes> {
        self(rejection)
    }
}

/// Why a request is being answered with a rejection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// It arrived after the drain tripped and was never passed on.
    Draining,
    /// It was admitted, but its response was still pending at the deadline.
    Deadline,
}

/// What a [`Reject`] knows about the request it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    version: Version,
    grpc: bool,
    cause: Cause,
}

impl Rejection {
    pub(crate) fn new<B>(req: &Request<B>) -> Self {
        let version = req.version();
        Self {
            version,
            // gRPC is defined over HTTP/2; HTTP/1.x requests skip the lookup.
            grpc: version >= Version::HTTP_2 && is_grpc(req.headers()),
            cause: Cause::Draining,
        }
    }

    pub(crate) fn at_deadline(self) -> Self {
        Self {
            cause: Cause::Deadline,
            ..self
        }
    }

    /// The request's HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Whether the request is gRPC: HTTP/2 (or later) with
    /// `content-type: application/grpc*`. (gRPC-Web over HTTP/1.1 is a
    /// different protocol; it is answered like any HTTP/1.1 request.)
    pub fn is_grpc(&self) -> bool {
        self.grpc
    }

    /// Why it is rejected.
    pub fn cause(&self) -> Cause {
        self.cause
    }

    pub(crate) fn is_http1(&self) -> bool {
        self.version <= Version::HTTP_11
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"))
}

/// The default rejection: `503 Service Unavailable` with `Retry-After`; for
/// gRPC a trailers-only response with `grpc-status: 14` (`UNAVAILABLE`).
///
/// Configure it through [`DrainLayer::retry_after`] and
/// [`DrainLayer::grpc_message`].
///
/// [`DrainLayer::retry_after`]: crate::DrainLayer::retry_after
/// [`DrainLayer::grpc_message`]: crate::DrainLayer::grpc_message
#[derive(Clone, Copy)]
pub struct DefaultReject {
    /// Whole seconds, rounded up: `Retry-After: 0` would invite an immediate
    /// retry against the same draining server. (Kept small: a reject is
    /// copied into every admitted request's future.)
    retry_after_secs: u32,
    message: &'static str,
}

impl DefaultReject {
    const DEFAULT_RETRY_AFTER_SECS: u32 = 5;
    const DEFAULT_MESSAGE: &'static str = "server is shutting down";

    pub(crate) fn retry_after(self, retry_after: Duration) -> Self {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        Self {
            retry_after_secs: u32::try_from(secs).unwrap_or(u32::MAX),
            ..self
        }
    }

    pub(crate) fn message(self, message: &'static str) -> Self {
        Self { message, ..self }
    }
}

impl Default for DefaultReject {
    fn default() -> Self {
        Self {
            retry_after_secs: Self::DEFAULT_RETRY_AFTER_SECS,
            message: Self::DEFAULT_MESSAGE,
        }
    }
}

impl Reject for DefaultReject {
    fn reject(&self, rejection: &Rejection) -> Response<Bytes> {
        if rejection.is_grpc() {
            return grpc_unavailable(self.message);
        }
        let mut body = String::with_capacity(self.message.len() + 1);
        body.push_str(self.message);
        body.push('\n');
        let mut res = Response::new(Bytes::from(body));
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let headers = res.headers_mut();
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res
    }
}

impl fmt::Debug for DefaultReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultReject")
            .field("retry_after_secs", &self.retry_after_secs)
            .field("message", &self.message)
            .finish()
    }
}

/// A trailers-only gRPC response: HTTP 200, no body, status in the headers.
pub(crate) fn grpc_unavailable(message: &str) -> Response<Bytes> {
    let mut res = Response::new(Bytes::new());
    *res.headers_mut() = crate::grpc::unavailable(message);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    res
}
