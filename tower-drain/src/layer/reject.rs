use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};

/// Builds the response for a request the drain refuses, or cuts at the
/// deadline before it was answered.
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
    /// It arrived after the drain tripped and was never passed on: nothing
    /// of it ran, so it is safe to send again, to another instance.
    Draining,
    /// It was admitted, but its response was still pending at the deadline:
    /// its handler was dropped part-way, so some of its work may have been
    /// done. The default answer does not invite a retry (see
    /// [`DefaultReject`]).
    Deadline,
}

/// The few facts of an admitted request that its response future keeps: how
/// to answer it if the deadline cuts it, and whether the response may be
/// told to close its connection. Small, since every admitted request carries
/// it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head {
    version: Version,
    grpc: bool,
    connect: bool,
}

impl Head {
    #[inline]
    pub(crate) fn of<B>(req: &Request<B>) -> Self {
        let version = req.version();
        Self {
            version,
            // gRPC is defined over HTTP/2; HTTP/1.x requests skip the lookup.
            grpc: version >= Version::HTTP_2 && crate::grpc::is_grpc(req.headers()),
            connect: req.method() == Method::CONNECT,
        }
    }

    #[inline]
    pub(crate) fn is_grpc(&self) -> bool {
        self.grpc
    }

    #[inline]
    pub(crate) fn is_http1(&self) -> bool {
        self.version <= Version::HTTP_11
    }

    /// Whether a response with `status` to this request opens a tunnel or
    /// switches protocols (a `101`, a successful `CONNECT`): its connection
    /// headers are the handshake and must stay as they are.
    #[inline]
    pub(crate) fn takes_over_the_connection(&self, status: StatusCode) -> bool {
        status == StatusCode::SWITCHING_PROTOCOLS || (self.connect && status.is_success())
    }

    /// The rejection for this request, cut at the deadline.
    pub(crate) fn cut(self) -> Rejection {
        Rejection {
            version: self.version,
            grpc: self.grpc,
            event_stream: false,
            cause: Cause::Deadline,
        }
    }
}

/// What a [`Reject`] knows about the request it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    version: Version,
    grpc: bool,
    event_stream: bool,
    cause: Cause,
}

impl Rejection {
    /// The rejection for `req`, refused because the drain has tripped.
    pub(crate) fn refused<B>(req: &Request<B>) -> Self {
        let head = Head::of(req);
        Self {
            version: head.version,
            grpc: head.grpc,
            event_stream: req.method() == Method::GET && accepts_event_stream(req.headers()),
            cause: Cause::Draining,
        }
    }

    /// The request's HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Whether the request is gRPC: HTTP/2 (or later) with
    /// `content-type: application/grpc*` (see [`grpc::is_grpc`]). gRPC-Web is
    /// a different protocol; it is answered like any HTTP request.
    ///
    /// [`grpc::is_grpc`]: crate::grpc::is_grpc
    pub fn is_grpc(&self) -> bool {
        self.grpc
    }

    /// Whether the request is a `GET` that accepts `text/event-stream`, as a
    /// browser's `EventSource` sends. Such a client gives up for good on any
    /// answer but `200 text/event-stream` (WHATWG HTML, "the `EventSource`
    /// interface"), so [`DefaultReject`] answers it with an event stream.
    ///
    /// Known for refused requests; a request cut at the deadline did not keep
    /// its headers, and reports `false`.
    pub fn is_event_stream(&self) -> bool {
        self.event_stream
    }

    /// Why it is rejected.
    pub fn cause(&self) -> Cause {
        self.cause
    }

    pub(crate) fn is_http1(&self) -> bool {
        self.version <= Version::HTTP_11
    }
}

/// Whether an `Accept` header lists `text/event-stream` (parameters and
/// letter case aside) as acceptable: not with `q=0`, which RFC 9110
/// (§12.4.2) makes "not acceptable".
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .flat_map(|accept| accept.as_bytes().split(|&b| b == b','))
        .any(|range| {
            let mut parts = range.split(|&b| b == b';').map(trim);
            parts
                .next()
                .is_some_and(|essence| essence.eq_ignore_ascii_case(b"text/event-stream"))
                && !parts.any(|param| {
                    param.len() > 2
                        && param[..2].eq_ignore_ascii_case(b"q=")
                        && std::str::from_utf8(&param[2..])
                            .ok()
                            .and_then(|q| q.parse::<f32>().ok())
                            == Some(0.0)
                })
        })
}

/// `bytes` without leading and trailing ASCII whitespace.
fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace());
    match (start, end) {
        (Some(start), Some(end)) => &bytes[start..=end],
        _ => &[],
    }
}

/// The default rejection.
///
/// | request | refused after the trip ([`Cause::Draining`]) | cut at the deadline ([`Cause::Deadline`]) |
/// |---|---|---|
/// | HTTP | `503 Service Unavailable`, `Retry-After` | `500 Internal Server Error`, no `Retry-After` |
/// | gRPC | trailers-only `grpc-status: 14` (`UNAVAILABLE`) | trailers-only `grpc-status: 10` (`ABORTED`) |
/// | `EventSource` ([`Rejection::is_event_stream`]) | `200` event stream: one `end` event with a `retry:` hint | as HTTP |
///
/// Why they differ:
///
/// - A refused request never ran, so it is safe to send again elsewhere:
///   `503` is the "temporarily unable to handle" of RFC 9110 (§15.6.4), with
///   `Retry-After` (§10.2.3), and `UNAVAILABLE` is the code the gRPC status
///   guide gives for "the client can retry just the failing call".
/// - A request cut at the deadline was running: its handler may have done
///   part of its work. `500` (RFC 9110 §15.6.1: the server "encountered an
///   unexpected condition that prevented it from fulfilling the request")
///   says it failed without saying it is safe to repeat, and sends no
///   `Retry-After`. `ABORTED` is the gRPC guide's code for "retry at a
///   higher level": the client should find out what happened before it
///   calls again, and gRPC retry policies, which list `UNAVAILABLE`, do not
///   replay it.
/// - An `EventSource` gives up for good on any answer but
///   `200 text/event-stream`. Answered with a stream that carries only the
///   terminal event (`event: end`, the same JSON as `tower-drain-sse`'s
///   frame) and `retry:` (the `Retry-After` in milliseconds), it reconnects
///   after that time, with `Last-Event-ID`, through the load balancer to an
///   instance that serves. A `GET` is safe to repeat (RFC 9110 §9.2.1).
///
/// Configure it through [`DrainLayer::retry_after`] and
/// [`DrainLayer::grpc_message`].
///
/// [`DrainLayer::retry_after`]: crate::DrainLayer::retry_after
/// [`DrainLayer::grpc_message`]: crate::DrainLayer::grpc_message
#[derive(Clone, Copy)]
pub struct DefaultReject {
    /// Whole seconds, rounded up and at least one: `Retry-After: 0` would
    /// invite an immediate retry against the same draining server. (Kept
    /// small: a reject is copied into every admitted request's future.)
    retry_after_secs: u32,
    message: &'static str,
}

impl DefaultReject {
    const DEFAULT_RETRY_AFTER_SECS: u32 = 5;
    const DEFAULT_MESSAGE: &'static str = "server is shutting down";
    const DEADLINE_MESSAGE: &'static str =
        "server shut down before the request finished; it may have partly run";

    pub(crate) fn retry_after(self, retry_after: Duration) -> Self {
        let secs = retry_after
            .as_secs()
            .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
            .max(1);
        Self {
            retry_after_secs: u32::try_from(secs).unwrap_or(u32::MAX),
            ..self
        }
    }

    pub(crate) fn message(self, message: &'static str) -> Self {
        Self { message, ..self }
    }

    fn refused(&self, rejection: &Rejection) -> Response<Bytes> {
        if rejection.is_grpc() {
            return trailers_only(crate::grpc::unavailable(self.message));
        }
        if rejection.is_event_stream() {
            return self.end_event();
        }
        let mut res = text(StatusCode::SERVICE_UNAVAILABLE, self.message);
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs),
        );
        res
    }

    fn cut(&self, rejection: &Rejection) -> Response<Bytes> {
        if rejection.is_grpc() {
            return trailers_only(crate::grpc::aborted(Self::DEADLINE_MESSAGE));
        }
        text(StatusCode::INTERNAL_SERVER_ERROR, Self::DEADLINE_MESSAGE)
    }

    /// `200 text/event-stream` whose one event ends the stream and asks the
    /// client to come back after `Retry-After`.
    fn end_event(&self) -> Response<Bytes> {
        let mut body = String::with_capacity(128 + self.message.len());
        body.push_str(
            "event: end\ndata: {\"type\":\"end\",\"reason\":\"server_shutdown\",\"message\":",
        );
        push_json_string(&mut body, self.message);
        body.push_str("}\nretry: ");
        body.push_str(&(u64::from(self.retry_after_secs) * 1000).to_string());
        body.push_str("\n\n");
        let mut res = Response::new(Bytes::from(body));
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
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
        match rejection.cause() {
            Cause::Draining => self.refused(rejection),
            Cause::Deadline => self.cut(rejection),
        }
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

/// `message` and a line end, as `text/plain`.
fn text(status: StatusCode, message: &str) -> Response<Bytes> {
    let mut body = String::with_capacity(message.len() + 1);
    body.push_str(message);
    body.push('\n');
    let mut res = Response::new(Bytes::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// A trailers-only gRPC response: HTTP 200, no body, the status in the
/// headers.
fn trailers_only(status: HeaderMap) -> Response<Bytes> {
    let mut res = Response::new(Bytes::new());
    *res.headers_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    res
}

/// Appends `s` as a JSON string literal. (The one string this crate writes
/// as JSON; the escapes are those RFC 8259 §7 requires.)
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http::header::{ACCEPT, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
    use http::{Request, Response, StatusCode, Version};
    use http_body_util::BodyExt;
    use tower::{Layer, ServiceExt};

    use super::{Cause, DefaultReject, Head, Reject, Rejection};
    use crate::test_support::counting_service;
    use crate::Drain;

    fn request(version: Version, content_type: Option<&str>) -> Request<()> {
        let mut req = Request::builder().version(version);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        req.body(()).unwrap()
    }

    fn event_source(accept: &str) -> Request<()> {
        Request::get("/chat")
            .header(ACCEPT, accept)
            .body(())
            .unwrap()
    }

    fn body_text(res: Response<Bytes>) -> String {
        String::from_utf8(res.into_body().to_vec()).unwrap()
    }
    #[tokio::test]
    async fn a_refused_http1_request_gets_503_retry_after_and_connection_close() {
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
    async fn a_refused_http2_request_gets_no_connection_header() {
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
    async fn a_refused_grpc_call_gets_trailers_only_unavailable() {
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
    async fn grpc_web_and_http1_requests_get_the_http_refusal() {
        let drain = Drain::new();
        let (_, inner) = counting_service();
        let svc = drain.layer().layer(inner);
        drain.trip();

        // gRPC-Web is a different protocol, over HTTP/1.1 or HTTP/2: its
        // clients read the status from the body. And gRPC is HTTP/2 only.
        for (version, ct) in [
            (Version::HTTP_11, "application/grpc-web"),
            (Version::HTTP_2, "application/grpc-web"),
            (Version::HTTP_2, "application/grpc-web-text"),
            (Version::HTTP_11, "application/grpc"),
        ] {
            let res = svc
                .clone()
                .oneshot(request(version, Some(ct)))
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{version:?} {ct}"
            );
            assert!(res.headers().get("grpc-status").is_none());
        }
    }

    #[tokio::test]
    async fn the_rejection_is_customisable() {
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

    #[test]
    fn retry_after_is_whole_seconds_at_least_one_and_saturates() {
        let sent = |d: Duration| {
            let rejection = Rejection::refused(&request(Version::HTTP_11, None));
            let res = DefaultReject::default().retry_after(d).reject(&rejection);
            res.headers()[RETRY_AFTER].to_str().unwrap().to_owned()
        };
        assert_eq!(
            sent(Duration::ZERO),
            "1",
            "0 would invite an immediate retry"
        );
        assert_eq!(sent(Duration::from_nanos(1)), "1");
        assert_eq!(sent(Duration::from_secs(1)), "1");
        assert_eq!(sent(Duration::from_millis(1001)), "2");
        assert_eq!(sent(Duration::MAX), u32::MAX.to_string());
        assert_eq!(
            sent(Duration::from_secs(u64::from(u32::MAX) + 1)),
            u32::MAX.to_string()
        );
    }

    /// A browser's `EventSource` gives up for good on a 503; it reconnects
    /// after an event stream that ends.
    #[test]
    fn an_event_source_request_is_refused_with_an_end_event_it_reconnects_from() {
        for accept in [
            "text/event-stream",
            "Text/Event-Stream",
            "text/html, text/event-stream;q=0.9",
            "text/event-stream;q=0.001",
            " text/event-stream ; charset=utf-8",
        ] {
            let rejection = Rejection::refused(&event_source(accept));
            assert!(rejection.is_event_stream(), "{accept}");
            let res = DefaultReject::default()
                .retry_after(Duration::from_secs(2))
                .message("bye \"now\"\n\u{1}")
                .reject(&rejection);
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
            assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
            assert!(res.headers().get(RETRY_AFTER).is_none());
            let body = body_text(res);
            let lines: Vec<&str> = body.split('\n').collect();
            assert_eq!(lines[0], "event: end");
            assert_eq!(lines[2], "retry: 2000");
            assert_eq!(&lines[3..], ["", ""], "one event, then a blank line");
            let data: serde_json::Value =
                serde_json::from_str(lines[1].strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(
                data,
                serde_json::json!({"type": "end", "reason": "server_shutdown", "message": "bye \"now\"\n\u{1}"})
            );
        }

        // Not an event stream, or not a GET: the plain refusal.
        for req in [
            event_source("text/event-streams"),
            event_source("application/json"),
            event_source("application/json, text/event-stream;q=0"),
            event_source("text/event-stream; Q=0.000"),
            Request::get("/").body(()).unwrap(),
            Request::post("/chat")
                .header(ACCEPT, "text/event-stream")
                .body(())
                .unwrap(),
        ] {
            let rejection = Rejection::refused(&req);
            assert!(!rejection.is_event_stream(), "{req:?}");
            let res = DefaultReject::default().reject(&rejection);
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
    }

    /// A request cut at the deadline was running: its answer must not say
    /// "refused, try again", as the refusal's does.
    #[test]
    fn a_request_cut_at_the_deadline_is_not_invited_to_retry() {
        let http = Head::of(&request(Version::HTTP_11, None)).cut();
        assert_eq!(http.cause(), Cause::Deadline);
        let res = DefaultReject::default().reject(&http);
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.headers().get(RETRY_AFTER).is_none());
        assert!(body_text(res).contains("may have partly run"));

        let grpc = Head::of(&request(Version::HTTP_2, Some("application/grpc"))).cut();
        let res = DefaultReject::default().reject(&grpc);
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()["grpc-status"],
            "10",
            "ABORTED, not UNAVAILABLE"
        );
        assert!(res.headers()["grpc-message"]
            .to_str()
            .unwrap()
            .contains("may have partly run"));
        assert!(res.into_body().is_empty(), "trailers-only");

        // An event stream cut before its handler answered gets the same: its
        // head was not kept.
        assert!(!Head::of(&event_source("text/event-stream"))
            .cut()
            .is_event_stream());
    }
}
