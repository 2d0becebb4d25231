//! Where a streaming body's events begin and end.
//!
//! A `Scanner` reads the bytes a body passes through, without copying them,
//! and knows at every point whether the client has received whole events only,
//! that is, whether a terminal frame may be appended there.

mod grpc;
mod ndjson;
mod sse;

use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};
use http_body::Body;

pub(crate) use self::grpc::GrpcScanner;
pub(crate) use self::ndjson::NdjsonScanner;
pub(crate) use self::sse::SseScanner;

/// The streaming formats this crate understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// Server-Sent Events, `text/event-stream`: events end at a blank line.
    Sse,
    /// Newline-delimited JSON, `application/x-ndjson` or `application/jsonl`:
    /// every line is an event.
    Ndjson,
    /// gRPC, `application/grpc*`: every length-prefixed message is an event,
    /// and the stream ends with trailers (`grpc-status: 14`, `UNAVAILABLE`)
    /// instead of a data frame.
    Grpc,
    /// A WebSocket (see the `ws` module): every data message is an event,
    /// and a Close frame (`1001 Going Away`) is the terminal frame. Never a
    /// response body's framing.
    WebSocket,
}

impl Framing {
    /// The framing a `content-type` announces, if it is one of this crate's
    /// streams. gRPC is recognised as by
    /// [`tower_drain::grpc::is_grpc`], so both crates agree on it.
    ///
    /// A response of such a type is watched only if its headers leave room
    /// for a terminal frame (see [`SseDrainLayer`](crate::SseDrainLayer)).
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let ct = headers.get(CONTENT_TYPE)?.as_bytes();
        if ct.len() >= 16 && ct[..16].eq_ignore_ascii_case(b"application/grpc") {
            return tower_drain::grpc::is_grpc(headers).then_some(Framing::Grpc);
        }
        let essence = trim(ct.split(|&b| b == b';').next()?);
        if essence.eq_ignore_ascii_case(b"text/event-stream") {
            Some(Framing::Sse)
        } else if essence.eq_ignore_ascii_case(b"application/x-ndjson")
            || essence.eq_ignore_ascii_case(b"application/jsonl")
        {
            Some(Framing::Ndjson)
        } else {
            None
        }
    }

    /// The framing of a response this crate may end with a terminal frame:
    /// a stream by its content type, answered with success, whose headers
    /// leave room for one more frame. A declared length (`Content-Length`,
    /// or a body of known size) says the response is complete and would be
    /// contradicted by added bytes; a `Content-Encoding` would be given
    /// plaintext. Such a response is left alone: it ends on its own (or
    /// `DrainLayer` cuts it at the deadline).
    pub(crate) fn of_response<B: Body>(res: &Response<B>) -> Option<Self> {
        let framing = Self::of(res.headers())?;
        let headers = res.headers();
        // 204 and 205 have no body at all.
        let has_body = !matches!(
            res.status(),
            StatusCode::NO_CONTENT | StatusCode::RESET_CONTENT
        );
        let open_ended = res.status().is_success()
            && has_body
            && !headers.contains_key(CONTENT_LENGTH)
            && res.body().size_hint().exact().is_none()
            && headers
                .get_all(CONTENT_ENCODING)
                .iter()
                .flat_map(|codings| codings.as_bytes().split(|&b| b == b','))
                .all(|coding| trim(coding).eq_ignore_ascii_case(b"identity"));
        open_ended.then_some(framing)
    }
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

/// What a scanner has seen pass: reported to the cut hook.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) events: u64,
    pub(crate) bytes: u64,
    /// The last event ID the client holds, if `has_last_event_id`. Kept as
    /// bytes: it becomes text only when the hook asks for it.
    pub(crate) last_event_id: Vec<u8>,
    pub(crate) has_last_event_id: bool,
}

impl Seen {
    pub(crate) fn last_event_id(&self) -> Option<&str> {
        // The stream is UTF-8 (SSE); an id cut at `MAX_ID` inside a
        // character keeps its whole characters.
        self.has_last_event_id
            .then(|| match std::str::from_utf8(&self.last_event_id) {
                Ok(id) => id,
                Err(err) => std::str::from_utf8(&self.last_event_id[..err.valid_up_to()])
                    .unwrap_or_default(),
            })
    }
}

/// A scanner for one of the framings.
#[derive(Debug)]
pub(crate) enum Scanner {
    Sse(SseScanner),
    Ndjson(NdjsonScanner),
    Grpc(GrpcScanner),
}

impl Scanner {
    /// `counting`: keep what `Seen` reports (events, last event ID). Without
    /// it, only where the events end is tracked, and a frame that ends an
    /// event where the last one ended is checked at its tail alone.
    pub(crate) fn new(framing: Framing, counting: bool) -> Self {
        match framing {
            Framing::Sse => Scanner::Sse(SseScanner::new(counting)),
            Framing::Ndjson => Scanner::Ndjson(NdjsonScanner::new(counting)),
            // Message headers are read anyway to find the boundaries, so the
            // count costs nothing extra.
            Framing::Grpc => Scanner::Grpc(GrpcScanner::default()),
            // `Framing::of` never gives it: a WebSocket has no body to scan.
            Framing::WebSocket => unreachable!("a response body is never a WebSocket"),
        }
    }

    /// Reads `data`, the next bytes the client will receive.
    #[inline]
    pub(crate) fn feed(&mut self, data: &[u8]) {
        match self {
            Scanner::Sse(s) => s.feed(data),
            Scanner::Ndjson(s) => s.feed(data),
            Scanner::Grpc(s) => s.feed(data),
        }
    }

    /// Whether everything passed so far is whole events: a frame appended now
    /// is read as an event of its own.
    #[inline]
    pub(crate) fn at_boundary(&self) -> bool {
        match self {
            Scanner::Sse(s) => s.at_boundary(),
            Scanner::Ndjson(s) => s.at_boundary(),
            Scanner::Grpc(s) => s.at_boundary(),
        }
    }

    pub(crate) fn seen(&self) -> &Seen {
        match self {
            Scanner::Sse(s) => s.seen(),
            Scanner::Ndjson(s) => s.seen(),
            Scanner::Grpc(s) => s.seen(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use futures_util::stream;
    use http::header::{HeaderValue, CONTENT_TYPE};
    use http::{HeaderMap, Response, StatusCode};
    use http_body::{Body, Frame};
    use http_body_util::{Full, StreamBody};

    use super::Framing;

    #[test]
    fn framing_follows_the_content_type() {
        let of = |ct: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            Framing::of(&headers)
        };
        assert_eq!(of("text/event-stream"), Some(Framing::Sse));
        assert_eq!(of("Text/Event-Stream; charset=utf-8"), Some(Framing::Sse));
        assert_eq!(of("application/x-ndjson"), Some(Framing::Ndjson));
        assert_eq!(of("application/jsonl"), Some(Framing::Ndjson));
        assert_eq!(of("application/grpc"), Some(Framing::Grpc));
        assert_eq!(of("application/grpc+proto"), Some(Framing::Grpc));
        assert_eq!(of("Application/GRPC; charset=utf-8"), Some(Framing::Grpc));
        assert_eq!(of("application/grpc-web"), None);
        assert_eq!(of("application/grpc-web+proto"), None);
        assert_eq!(of("application/json"), None);
        assert_eq!(of("text/plain"), None);
        assert_eq!(Framing::of(&HeaderMap::new()), None);
    }

    /// Bytes added to a response must not contradict what its headers
    /// promise: such a response is left alone.
    #[test]
    fn a_stream_whose_headers_leave_no_room_for_a_frame_is_not_watched() {
        fn response(
            status: u16,
            headers: &[(&'static str, &'static str)],
            body: impl Body,
        ) -> Option<Framing> {
            let mut res = Response::new(body);
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            res.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
            for &(name, value) in headers {
                res.headers_mut()
                    .insert(name, HeaderValue::from_static(value));
            }
            Framing::of_response(&res)
        }
        let open = || StreamBody::new(stream::empty::<Result<Frame<Bytes>, Infallible>>());

        assert_eq!(response(200, &[], open()), Some(Framing::Ndjson));
        assert_eq!(
            response(200, &[("content-encoding", "identity")], open()),
            Some(Framing::Ndjson)
        );
        for headers in [
            &[("content-length", "16")][..],
            &[("content-encoding", "gzip")],
            &[("content-encoding", "br")],
            &[("content-encoding", "identity, gzip")],
        ] {
            assert_eq!(response(200, headers, open()), None, "{headers:?}");
        }
        // Every field counts, not only the first.
        let mut res = Response::new(open());
        let headers = res.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        headers.append("content-encoding", HeaderValue::from_static("identity"));
        headers.append("content-encoding", HeaderValue::from_static("gzip"));
        assert_eq!(Framing::of_response(&res), None);
        assert_eq!(
            response(200, &[], Full::new(Bytes::from_static(b"{}\n"))),
            None,
            "a body of known size is complete"
        );
        for status in [101, 204, 205, 304, 404, 500] {
            assert_eq!(response(status, &[], open()), None, "{status}");
        }
    }
}
